//! Service-level entries of the audit trail: the controller's decisions and an operator's
//! pause or resume, which belong to no run. Pause is read back at startup, so a paused
//! service stays paused across restarts of the daemon.

use rusqlite::{OptionalExtension, params};

use super::{AuditRecord, Journal, JournalError};
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
}
