//! Service-level records: the controller's decisions with their evidence (the
//! `decisions` table), and an operator's pause or resume in the audit trail, which belong
//! to no run. Pause and the last decision are read back at startup, so a paused service
//! stays paused across restarts of the daemon and `status` can say at once why the
//! controller is blocked.

use rusqlite::{OptionalExtension, params};

use super::{AuditRecord, Journal, JournalError};
use crate::core::controller::Decision;
use crate::core::time::Ts;

impl Journal {
    /// Appends a service-level entry (no run) to the audit trail.
    pub fn record(
        &self,
        service: &str,
        actor: &str,
        action: &str,
        detail: &str,
        now: Ts,
    ) -> Result<(), JournalError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO audit (at, service, run_id, epoch, actor, action, detail)
                 VALUES (?1, ?2, NULL, NULL, ?3, ?4, ?5)",
                params![now, service, actor, action, detail],
            )
            .map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    /// The newest service-level entry whose action is one of `actions`.
    pub fn latest_record(
        &self,
        service: &str,
        actions: &[&str],
    ) -> Result<Option<AuditRecord>, JournalError> {
        self.read(|tx| {
            let list = actions
                .iter()
                .map(|a| format!("'{}'", a.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(", ");
            tx.query_row(
                &format!(
                    "SELECT at, run_id, epoch, actor, action, detail FROM audit
                     WHERE service = ?1 AND run_id IS NULL AND action IN ({list})
                     ORDER BY id DESC LIMIT 1"
                ),
                [service],
                AuditRecord::from_row,
            )
            .optional()
            .map_err(|e| self.err(e))
        })
    }

    /// Appends a decision, with its evidence, to the service's decisions.
    pub fn record_decision(&self, service: &str, d: &Decision) -> Result<(), JournalError> {
        let json = serde_json::to_string(d).map_err(|e| JournalError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO decisions (at, service, label, summary, decision)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![d.at, service, d.reason.label(), d.summary, json],
            )
            .map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    /// The service's decisions, newest first, at most `limit`.
    ///
    /// Errors: `Corrupt` when a stored decision does not parse.
    pub fn decisions(&self, service: &str, limit: usize) -> Result<Vec<Decision>, JournalError> {
        self.decisions_of(Some(service), limit)
    }

    /// Decisions, newest first: of one service, or (`None`) of every service the
    /// journal holds (a journal file named on its own, without its policy).
    pub fn decisions_of(
        &self,
        service: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Decision>, JournalError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(i64, String)> = self.read(|tx| {
            let mut stmt = tx
                .prepare(
                    "SELECT id, decision FROM decisions WHERE ?1 IS NULL OR service = ?1
                     ORDER BY id DESC LIMIT ?2",
                )
                .map_err(|e| self.err(e))?;
            stmt.query_map(params![service, limit], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|r| r.collect())
                .map_err(|e| self.err(e))
        })?;
        rows.into_iter()
            .map(|(id, json)| {
                serde_json::from_str(&json).map_err(|e| JournalError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("decision {id} does not parse: {e}"),
                })
            })
            .collect()
    }

    /// Writes a consistent copy of the whole journal to `dest` (replacing it), for
    /// keeping beside a report: `VACUUM INTO` reads one snapshot and writes a compact,
    /// complete database.
    pub fn snapshot_to(&self, dest: &std::path::Path) -> Result<(), JournalError> {
        let _ = std::fs::remove_file(dest);
        let target = dest.to_string_lossy().into_owned();
        let conn = self.conn();
        conn.execute("VACUUM INTO ?1", [target])
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}
