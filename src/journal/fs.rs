//! Where the journal lives, and what that allows. Two things SQLite cannot see for
//! itself:
//!
//! - A network filesystem (NFS, and so EFS; SMB; CephFS…). WAL keeps its index in
//!   shared memory (`-shm`, mmap'ed), which processes on different hosts cannot share,
//!   so SQLite documents WAL as unsafe there. On such a filesystem the journal uses a
//!   rollback journal with exclusive locking instead of refusing to run. Why that
//!   choice: a Fargate task has no durable disk but EFS (terraform/daemon.tf), and a
//!   controller without a journal cannot act at all. A rollback journal needs only file
//!   locks, which NFSv4 implements (EFS does, through its lock leases). EXCLUSIVE
//!   locking takes the database lock at the first read and keeps it until the
//!   connection closes: a second daemon (a task started before the old one was
//!   stopped, on any host) cannot even read the journal while the first runs, which is
//!   the rule the actor lock states, enforced by the file server itself. The cost: the
//!   CLI cannot open that journal while the daemon runs, and talks to the daemon's API
//!   instead, as it does anyway when one is published.
//! - The actor lock (`<journal>.lock`, taken by `daemon::discovery::lock`) must still be
//!   held when the journal is written, not only when the process started: the lock file
//!   can be deleted and recreated by someone else (a cleanup job, a second daemon), and
//!   on NFS a lock whose lease expired is silently lost. Every write checks it first.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use rusqlite::Connection;

use super::JournalError;

/// What kind of filesystem holds the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    Local,
    /// A network filesystem, by name (`nfs`, `smb`…).
    Network(&'static str),
}

/// The network filesystems among statfs(2) magic numbers.
pub fn network_name(magic: u64) -> Option<&'static str> {
    Some(match magic {
        0x6969 => "nfs",
        0x517B => "smb",
        0xFF53_4D42 => "cifs",
        0xFE53_4D42 => "smb2",
        0x00C3_6400 => "ceph",
        0x5346_414F => "afs",
        0x6B41_4653 => "kafs",
        0x0102_1997 => "9p",
        0x0BD0_0BD0 => "lustre",
        0x0116_1970 => "gfs2",
        0x7461_636F => "ocfs2",
        0x6165_676C => "pvfs2",
        0x7375_7245 => "coda",
        _ => return None,
    })
}

/// The filesystem of `path` (of its directory when the file does not exist yet).
/// Unknown counts as local: statfs fails only on paths that fail everything else too.
pub fn storage_of(path: &Path) -> Storage {
    let probe = if path.exists() {
        path.to_path_buf()
    } else {
        path.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    };
    match rustix::fs::statfs(&probe) {
        // f_type's width differs between architectures; the magic numbers fit any.
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
        Ok(s) => network_name(s.f_type as u64).map_or(Storage::Local, Storage::Network),
        Err(_) => Storage::Local,
    }
}

/// Sets the journal mode and durability for where the journal lives.
///
/// Errors: on a network filesystem, a journal another process holds in WAL mode cannot
/// be switched; that is reported with what to do.
pub fn configure(conn: &Connection, path: &Path) -> Result<(), JournalError> {
    configure_for(conn, path, storage_of(path))
}

pub(crate) fn configure_for(
    conn: &Connection,
    path: &Path,
    storage: Storage,
) -> Result<(), JournalError> {
    let sqlite = |e| JournalError::sqlite(path, e);
    // A journal is small and read a little at a time; the OS caches its file anyway. A
    // bounded cache keeps a daemon of many services small (SQLite's default is 2 MB).
    conn.execute_batch("PRAGMA cache_size = -256;")
        .map_err(sqlite)?;
    match storage {
        Storage::Local => {
            // WAL: readers (the CLI) never block the writer. FULL: a commit survives
            // power loss, which "raised the epoch durably" requires.
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            )
            .map_err(sqlite)?;
        }
        Storage::Network(fs) => {
            // The locking mode first: leaving WAL needs exclusive access, and with it
            // SQLite never maps the shared-memory index a network filesystem cannot share.
            conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE;")
                .map_err(sqlite)?;
            let mode: String = conn
                .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
                .map_err(sqlite)?;
            if !mode.eq_ignore_ascii_case("delete") {
                return Err(JournalError::NetworkFilesystem {
                    path: path.to_path_buf(),
                    fs,
                    mode,
                });
            }
            conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
                .map_err(sqlite)?;
        }
    }
    Ok(())
}

/// An actor lock this process holds: the open, flock'ed lock file.
#[derive(Debug)]
pub struct HeldLock {
    file: File,
    path: PathBuf,
}

impl HeldLock {
    /// Still ours: the file at the lock's path is the one this process locked, and the
    /// lock on it is still granted. Re-requesting an exclusive lock already held is a
    /// no-op locally; on NFS it goes to the server, which refuses it if the lease was
    /// lost and another client took it.
    pub fn check(&self) -> Result<(), String> {
        let ours = self
            .file
            .metadata()
            .map_err(|e| format!("cannot stat the lock this process holds: {e}"))?;
        match std::fs::metadata(&self.path) {
            Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => {}
            Ok(_) => return Err("the lock file was replaced by another one".to_string()),
            Err(e) => return Err(format!("the lock file is gone ({})", e.kind())),
        }
        rustix::fs::flock(
            &self.file,
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        )
        .map_err(|e| format!("the lock is no longer granted ({e})"))
    }
}

type Registry = Mutex<Vec<(PathBuf, Weak<HeldLock>)>>;

/// The actor locks held in this process, by journal. A process-wide table rather than
/// a field of `Journal`: the lock is taken by whoever acts (the daemon, a CLI command)
/// around a journal it opened on its own, and the journal must check it on every write
/// without each of them remembering to hand it over.
fn registry() -> &'static Registry {
    static HELD: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    HELD.get_or_init(|| Mutex::new(Vec::new()))
}

/// The journal's path as a registry key: its directory resolved, so `./a.db` and
/// `/srv/a.db` are the same journal.
fn key(journal: &Path) -> PathBuf {
    let dir = journal
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    match journal.file_name() {
        Some(name) => dir.join(name),
        None => dir,
    }
}

/// Records that this process holds the lock `file` (at `path`) over `journal`; the
/// record lasts as long as the returned value.
pub fn hold(journal: &Path, file: File, path: PathBuf) -> Arc<HeldLock> {
    let held = Arc::new(HeldLock { file, path });
    let mut table = registry().lock().unwrap_or_else(|e| e.into_inner());
    table.retain(|(_, w)| w.strong_count() > 0);
    table.push((key(journal), Arc::downgrade(&held)));
    held
}

/// Before a write: when this process took the actor lock of `journal`, it must still
/// hold it. A process that never took it (a test, a read-only tool) is not checked.
pub fn check_lock(journal: &Path) -> Result<(), JournalError> {
    let held: Vec<Arc<HeldLock>> = {
        let table = registry().lock().unwrap_or_else(|e| e.into_inner());
        if table.is_empty() {
            return Ok(());
        }
        let k = key(journal);
        table
            .iter()
            .filter(|(j, _)| *j == k)
            .filter_map(|(_, w)| w.upgrade())
            .collect()
    };
    for lock in held {
        lock.check().map_err(|detail| JournalError::LockLost {
            path: lock.path.clone(),
            detail,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_filesystems_are_told_apart_from_local_ones_by_their_magic() {
        assert_eq!(network_name(0x6969), Some("nfs"));
        assert_eq!(network_name(0xFE53_4D42), Some("smb2"));
        assert_eq!(network_name(0x00C3_6400), Some("ceph"));
        // ext4, xfs, tmpfs, btrfs, overlayfs
        for local in [0xEF53, 0x5846_5342, 0x0102_1994, 0x9123_683E, 0x794C_7630] {
            assert_eq!(network_name(local), None, "{local:#x}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(storage_of(&dir.path().join("new.db")), Storage::Local);
    }

    #[test]
    fn on_a_network_filesystem_the_journal_leaves_wal_and_keeps_the_database_to_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        let first = Connection::open(&path).expect("open");
        // A journal created before: WAL, as a local filesystem would have it.
        first
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER);")
            .expect("wal");
        configure_for(&first, &path, Storage::Network("nfs")).expect("configure");
        let mode: String = first
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "delete");
        first
            .execute("INSERT INTO t VALUES (1)", [])
            .expect("write");
        assert!(!dir.path().join("j.db-wal").exists(), "no WAL file");
        // Any other connection, of this process or another host's, is locked out.
        let second = Connection::open(&path).expect("open");
        second
            .busy_timeout(std::time::Duration::ZERO)
            .expect("no waiting");
        let read: Result<i64, _> = second.query_row("SELECT count(*) FROM t", [], |r| r.get(0));
        assert!(read.is_err(), "the second reader must be refused: {read:?}");
    }
}
