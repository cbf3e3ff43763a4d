//! The journal: durable state of runs, steps, attempts, fencing epochs, approvals and the
//! audit trail, in one SQLite file per service (WAL mode, synchronous commits).
//!
//! The executor writes before and after every side effect, so a crash at any point leaves
//! enough behind to finish the job. Every executor write carries a `Fence` (the run and
//! the fencing epoch it holds) and is refused when a newer epoch exists. Opening checks
//! the file's identity, schema version and integrity; a journal that cannot be read is
//! an error, never silently replaced, because acting on lost records could promote twice.
//!
//! Calls are synchronous and short (one small transaction each). Async callers make them
//! directly: a journal write is a few milliseconds and the ordering it gives is the point.

pub mod backup;
mod error;
mod fenced;
pub mod fs;
mod read;
mod records;
mod runs;
mod schema;
mod service;
mod sql;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use error::JournalError;
pub use fenced::{AttemptId, Fence};
pub use records::{
    ApprovalRecord, AttemptRecord, AuditRecord, RunDetail, RunRecord, ServiceState, StepRecord,
};

use crate::core::model::Policy;

/// How long a writer waits for another process holding the write lock (the CLI approving
/// while the daemon runs) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a service's journal lives: the policy's `journal.path` (already resolved against
/// the policy file's directory), else `<state_dir>/<service>.db`.
pub fn location(policy: &Policy, state_dir: &Path) -> PathBuf {
    match &policy.journal.path {
        Some(p) => p.clone(),
        None => state_dir.join(format!("{}.db", policy.service)),
    }
}

/// An open, verified journal. Cheap to share behind an `Arc`; calls serialize on one
/// connection, and other processes coordinate through SQLite's locks.
pub struct Journal {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

impl Journal {
    /// Opens an existing journal and checks it before anything reads it.
    ///
    /// Guarantees: on success the file is a lifeboat journal of a schema version this
    /// binary understands and SQLite's `quick_check` found no damage.
    /// Errors: `Missing` when there is no file; `Corrupt` when it is empty, truncated or
    /// not a database; `NotAJournal` for another application's database; `TooNew` for a
    /// newer schema. Callers must not act on a journal that failed to open.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(JournalError::Missing {
                    path: path.to_path_buf(),
                });
            }
            Err(e) => return Err(io(path, e)),
            Ok(m) if !m.is_file() => {
                return Err(corrupt(path, "it is not a regular file"));
            }
            // lifeboat creates journals complete (see `create`), so an empty file is a
            // truncated one; SQLite would happily treat it as a new, empty database.
            Ok(m) if m.len() == 0 => {
                return Err(corrupt(
                    path,
                    "the file is empty (0 bytes), so it was truncated",
                ));
            }
            Ok(_) => {}
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn =
            Connection::open_with_flags(path, flags).map_err(|e| JournalError::sqlite(path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| JournalError::sqlite(path, e))?;
        check_identity(&conn, path)?;
        check_integrity(&conn, path)?;
        // WAL on a local disk; a rollback journal held exclusively on a network one.
        fs::configure(&conn, path)?;
        migrate(&mut conn, path)?;
        // The integrity check read every page into the cache; a daemon of many services
        // would keep them all. Later reads bring back the few they need.
        conn.execute_batch("PRAGMA shrink_memory;")
            .map_err(|e| JournalError::sqlite(path, e))?;
        Ok(Journal {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    /// Opens the journal, creating it (and its directory) when there is no file yet.
    ///
    /// Guarantees: a new journal appears at `path` complete or not at all (it is built
    /// under a temporary name and linked into place), so a crash during creation never
    /// leaves an empty file that would later be mistaken for a truncated journal.
    /// Errors: as `open`, plus I/O errors creating the directory or file.
    pub fn open_or_create(path: &Path) -> Result<Journal, JournalError> {
        if !path.exists() {
            create(path)?;
        }
        Journal::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock dropped its transaction (rolled back), so the
        // connection is still consistent.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn err(&self, e: rusqlite::Error) -> JournalError {
        JournalError::sqlite(&self.path, e)
    }

    /// Runs `f` in an IMMEDIATE transaction: the write lock is taken up front, so what `f`
    /// reads (the epoch, a status) cannot change before it writes.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        fs::check_lock(&self.path)?;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let out = f(&tx)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Runs `f` in a read transaction, so everything it reads is one consistent snapshot.
    fn read<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let out = f(&tx)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }
}

fn corrupt(path: &Path, detail: impl Into<String>) -> JournalError {
    JournalError::corrupt(path, detail)
}

fn io(path: &Path, e: std::io::Error) -> JournalError {
    JournalError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// The file says it is a lifeboat journal of a version this binary reads.
fn check_identity(conn: &Connection, path: &Path) -> Result<(), JournalError> {
    let pragma = |name: &str| -> Result<i64, JournalError> {
        conn.pragma_query_value(None, name, |r| r.get(0))
            .map_err(|e| JournalError::sqlite(path, e))
    };
    let app = pragma("application_id")?;
    let version = pragma("user_version")?;
    if app != schema::APPLICATION_ID {
        return Err(JournalError::NotAJournal {
            path: path.to_path_buf(),
            detail: format!(
                "application id {app:#x}, expected {:#x}",
                schema::APPLICATION_ID
            ),
        });
    }
    if version > schema::VERSION {
        return Err(JournalError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported: schema::VERSION,
        });
    }
    if version < 1 {
        return Err(corrupt(
            path,
            format!("schema version {version}: the journal was never fully created"),
        ));
    }
    Ok(())
}

/// Brings an older journal to this binary's schema, one version at a time, each in one
/// IMMEDIATE transaction with its version bump (so two processes opening an old journal
/// at once migrate it once, and a crash leaves it at a whole version).
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), JournalError> {
    let sqlite = |e| JournalError::sqlite(path, e);
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sqlite)?;
        if version >= schema::VERSION {
            return Ok(());
        }
        let step = usize::try_from(version - 1)
            .ok()
            .and_then(|i| schema::MIGRATIONS.get(i))
            .ok_or_else(|| corrupt(path, format!("no migration from schema version {version}")))?;
        tx.execute_batch(step).map_err(sqlite)?;
        tx.pragma_update(None, "user_version", version + 1)
            .map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
    }
}

/// SQLite's `quick_check`: every page readable, every b-tree well formed. It reads the
/// whole file, which for a journal (kilobytes to a few megabytes) takes milliseconds.
fn check_integrity(conn: &Connection, path: &Path) -> Result<(), JournalError> {
    let mut stmt = conn
        .prepare("PRAGMA quick_check(5)")
        .map_err(|e| JournalError::sqlite(path, e))?;
    let problems: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| JournalError::sqlite(path, e))?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(corrupt(
        path,
        format!("integrity check failed: {}", problems.join("; ")),
    ))
}

/// Builds a new journal under a temporary name and links it into place.
fn create(path: &Path) -> Result<(), JournalError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(path, e))?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".creating-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    {
        let conn = Connection::open(&tmp).map_err(|e| JournalError::sqlite(&tmp, e))?;
        // Rollback-journal mode while creating: COMMIT writes the main file itself, so
        // the file linked into place is complete. `open` switches it to WAL and migrates
        // it from version 1, the one path every journal takes.
        conn.execute_batch(&format!(
            "BEGIN;
             {}
             PRAGMA application_id = {};
             PRAGMA user_version = {};
             COMMIT;",
            schema::V1,
            schema::APPLICATION_ID,
            1
        ))
        .map_err(|e| JournalError::sqlite(&tmp, e))?;
    }
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(&tmp, e))?;
    // A hard link creates `path` only if it does not exist yet: when two processes
    // create the journal at once, one wins and the other opens the winner's file.
    let linked = match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(path, e)),
    };
    let _ = std::fs::remove_file(&tmp);
    linked?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the new directory entry durable too.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(path, e))?;
    }
    Ok(())
}
