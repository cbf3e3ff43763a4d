//! Copies of the journal: a consistent snapshot taken while the daemon runs (SQLite's
//! online backup API, through the journal's own connection, so it works in WAL mode and
//! under the exclusive locking of a network filesystem alike), the check a copy must
//! pass before anyone trusts it, the swap that puts a restored copy in place, and the
//! note beside the journal that names the newest backup (which the "cannot be read"
//! error repeats).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use super::{Journal, JournalError, check_identity, check_integrity, io};
use crate::core::time::Ts;

impl Journal {
    /// Writes a consistent copy of the journal to a new file at `dest` (which must not
    /// exist), in rollback-journal mode so the copy is one self-contained file.
    ///
    /// Guarantees: the copy is the journal as of one transaction; writers wait for the
    /// copy (milliseconds for a journal), never the other way round for long; the copy
    /// is synced to disk before this returns.
    /// Errors: `dest` exists or cannot be written; SQLite's.
    pub fn snapshot(&self, dest: &Path) -> Result<(), JournalError> {
        if dest.exists() {
            return Err(io(
                dest,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "will not overwrite"),
            ));
        }
        let sqlite = |e| JournalError::sqlite(dest, e);
        {
            let conn = self.conn();
            let mut out = Connection::open(dest).map_err(sqlite)?;
            {
                use rusqlite::backup::StepResult;
                let backup = rusqlite::backup::Backup::new(&conn, &mut out).map_err(sqlite)?;
                // All pages in one step (-1): the journal is small, and one step is one
                // consistent snapshot, never restarted by a concurrent writer. Another
                // process holding the write lock makes the step wait, up to 5 s.
                let mut waited = Duration::ZERO;
                loop {
                    match backup.step(-1).map_err(sqlite)? {
                        StepResult::Done => break,
                        StepResult::More => {}
                        _ if waited < Duration::from_secs(5) => {
                            std::thread::sleep(Duration::from_millis(10));
                            waited += Duration::from_millis(10);
                        }
                        _ => {
                            return Err(io(
                                dest,
                                std::io::Error::other(
                                    "the journal stayed locked by another process for 5s",
                                ),
                            ));
                        }
                    }
                }
            }
            // The copy carries the WAL flag of its source; a backup must stand alone.
            out.pragma_update(None, "journal_mode", "DELETE")
                .map_err(sqlite)?;
        }
        std::fs::File::open(dest)
            .and_then(|f| f.sync_all())
            .map_err(|e| io(dest, e))
    }
}

/// Checks a copy without changing it: a lifeboat journal of a schema this binary reads,
/// and `quick_check` clean.
pub fn verify_copy(path: &Path) -> Result<(), JournalError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| JournalError::sqlite(path, e))?;
    check_identity(&conn, path)?;
    check_integrity(&conn, path)
}

/// The files SQLite keeps beside a database.
fn companions(path: &Path) -> [PathBuf; 3] {
    let with = |ext: &str| {
        let mut s = path.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    [with("-wal"), with("-shm"), with("-journal")]
}

/// Puts the verified copy at `copy` in place of the journal at `journal`, keeping the
/// journal it replaces (and its WAL) beside it under `<journal>.replaced-<time>`.
/// Returns where the old journal went, if there was one.
///
/// Assumptions: the caller holds the journal's actor lock (`daemon::discovery::lock`),
/// so no process has the journal open; `copy` is in the journal's directory, so the
/// final rename is atomic.
/// Errors: the copy fails `verify_copy`; a rename fails.
pub fn put_in_place(copy: &Path, journal: &Path, now: Ts) -> Result<Option<PathBuf>, JournalError> {
    verify_copy(copy)?;
    let mut aside = None;
    if journal.exists() {
        let mut name = journal.as_os_str().to_owned();
        name.push(format!(".replaced-{}", now.compact_utc()));
        let target = PathBuf::from(name);
        std::fs::rename(journal, &target).map_err(|e| io(journal, e))?;
        // A WAL left by the old journal must move with it: beside the restored copy it
        // would be replayed into a database it does not belong to.
        for (from, to) in companions(journal).iter().zip(companions(&target)) {
            if from.exists() {
                std::fs::rename(from, &to).map_err(|e| io(from, e))?;
            }
        }
        aside = Some(target);
    }
    std::fs::rename(copy, journal).map_err(|e| io(journal, e))?;
    if let Some(dir) = journal.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(journal, e))?;
    }
    Ok(aside)
}

/// The newest backup of a journal, noted beside it (`<journal>.backup`) when a backup
/// has been taken and verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupNote {
    /// `s3://bucket/key` or a file path.
    pub location: String,
    pub at: Ts,
    pub bytes: u64,
}

pub fn note_path(journal: &Path) -> PathBuf {
    let mut s = journal.as_os_str().to_owned();
    s.push(".backup");
    PathBuf::from(s)
}

/// Records the newest backup beside the journal (replacing the previous note whole).
pub fn write_note(journal: &Path, note: &BackupNote) -> Result<(), JournalError> {
    let json =
        serde_json::to_vec_pretty(note).map_err(|e| io(journal, std::io::Error::other(e)))?;
    crate::clients::files::write_atomic(&note_path(journal), &json, 0o644)
        .map_err(|e| io(journal, std::io::Error::other(e)))
}

/// The newest backup noted beside the journal, if there is a readable note.
pub fn read_note(journal: &Path) -> Option<BackupNote> {
    let text = std::fs::read(note_path(journal)).ok()?;
    serde_json::from_slice(&text).ok()
}
