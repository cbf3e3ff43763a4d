//! What can go wrong with the journal, worded for the operator who has to act on it.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;
use thiserror::Error;

use crate::core::ids::{Epoch, RunId};
use crate::core::step::{RunStatus, StepState};

#[derive(Debug, Error)]
pub enum JournalError {
    #[error(
        "no journal at {}: no run has been recorded for this service here (check --policy, --journal or --state-dir)",
        .path.display()
    )]
    Missing { path: PathBuf },

    /// The file exists but cannot be trusted. Nothing may act on it: acting on a journal
    /// that lost its records could promote twice or skip the DNS change.
    #[error(
        "journal {} cannot be read: {detail}. lifeboat will not act on it. Move it aside (mv {} {}.broken), restore the latest backup to {}, then start lifeboat again",
        .path.display(), .path.display(), .path.display(), .path.display()
    )]
    Corrupt { path: PathBuf, detail: String },

    #[error(
        "{} is an SQLite database but not a lifeboat journal ({detail}); point --journal or the policy's journal.path at the service's journal",
        .path.display()
    )]
    NotAJournal { path: PathBuf, detail: String },

    #[error(
        "journal {} has schema version {found}, but this lifeboat understands versions up to {supported}; upgrade lifeboat before using this journal",
        .path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    /// A write carried an epoch older than the service's current one: another executor
    /// (or an abort) took over. The writer must stop acting.
    #[error(
        "refused: fencing epoch {ours} of `{service}` is stale (the journal is at epoch {current}); a newer executor owns run {run_id} or it was aborted, so this one stops acting"
    )]
    StaleEpoch {
        service: String,
        run_id: RunId,
        ours: Epoch,
        current: Epoch,
    },

    #[error(
        "no run `{run_id}` in journal {}; `lifeboat history` lists the runs it holds",
        .path.display()
    )]
    UnknownRun { path: PathBuf, run_id: RunId },

    #[error("run {run_id} is {status}: {what}")]
    WrongStatus {
        run_id: RunId,
        status: RunStatus,
        /// Why that status does not allow the request, and what to do instead.
        what: String,
    },

    #[error(
        "run {run_id} of `{service}` is still {status}; finish it first (resume it, or end it with `lifeboat abort {run_id} --reason …`)"
    )]
    RunInProgress {
        service: String,
        run_id: RunId,
        status: RunStatus,
    },

    #[error("run {run_id} already exists in the journal; use a new run id")]
    DuplicateRun { run_id: RunId },

    #[error(
        "run {run_id} was planned by an older lifeboat (plan format {version}), which this version cannot resume: end it with `lifeboat abort {run_id} --reason …` and start a new run"
    )]
    OldPlan { run_id: RunId, version: i64 },

    /// A bug in the executor: the journal refuses to record an impossible step history.
    #[error("refused: step `{step}` of run {run_id} cannot go from {from} to {to}")]
    IllegalTransition {
        run_id: RunId,
        step: String,
        from: StepState,
        to: StepState,
    },

    #[error("run {run_id} has no step `{step}`")]
    UnknownStep { run_id: RunId, step: String },

    /// On a network filesystem the journal must leave WAL mode, and could not.
    #[error(
        "journal {} is on a network filesystem ({fs}), where SQLite's WAL mode is unsafe, and it could not leave {mode} mode because another process has it open; stop every lifeboat process using it, on every host, and start again",
        .path.display()
    )]
    NetworkFilesystem {
        path: PathBuf,
        fs: &'static str,
        mode: String,
    },

    /// This process took the actor lock of the journal and no longer holds it: another
    /// process may be acting. Nothing more may be written.
    #[error(
        "refused: the lock {} that makes this process the only one acting on the journal is no longer held ({detail}); another lifeboat process may be acting, so this one stops. Check `lifeboat status`, and restart this one once the other is gone",
        .path.display()
    )]
    LockLost { path: PathBuf, detail: String },

    #[error("journal {}: {source}", .path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error("journal {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl JournalError {
    /// Classifies an SQLite error: damage becomes `Corrupt` (never acted on), the rest
    /// stays an SQLite error with the file named.
    pub(crate) fn sqlite(path: &Path, e: rusqlite::Error) -> JournalError {
        let damaged = matches!(
            e.sqlite_error_code(),
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
        );
        if damaged {
            JournalError::Corrupt {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        } else {
            JournalError::Sqlite {
                path: path.to_path_buf(),
                source: e,
            }
        }
    }

    /// Whether the error means the journal must not be acted on at all.
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            JournalError::Corrupt { .. }
                | JournalError::NotAJournal { .. }
                | JournalError::TooNew { .. }
        )
    }
}
