//! What the journal remembers for the controller, read into `core`'s `Memory`, and the
//! state `core::controller::restore` rebuilds from it.

use crate::core::controller::{self, Memory, Pause, RunFact, State};
use crate::core::model::Policy;
use crate::core::step::{RunStatus, StepState};
use crate::core::time::Ts;
use crate::journal::{Journal, JournalError};

/// How many recent runs restarts look at: far more than any window limit needs.
const RUNS: usize = 200;

/// Reads the serving region, the pause, the recent runs and the last decision.
///
/// Errors: the journal's (including a stored decision that does not parse).
pub fn remember(policy: &Policy, journal: &Journal) -> Result<Memory, JournalError> {
    let service = &policy.service;
    let active = journal
        .service_state(service)?
        .map(|s| s.active_region)
        .unwrap_or_else(|| policy.regions.primary.clone());
    let paused = match journal.latest_record(service, &["paused", "resumed"])? {
        Some(p) if p.action == "paused" => Some(Pause {
            by: p.actor,
            reason: p.detail,
            since: p.at,
        }),
        _ => None,
    };
    let mut runs = Vec::new();
    for r in journal.runs(RUNS)? {
        let waiting = if r.status == RunStatus::AwaitingApproval {
            journal
                .steps(&r.run_id)?
                .into_iter()
                .find(|s| s.state == StepState::AwaitingApproval)
                .map(|s| format!("step {}: {}", s.name, s.detail.unwrap_or_default()))
        } else {
            None
        };
        runs.push(RunFact {
            run: r.run_id,
            direction: r.direction,
            to: r.to,
            status: r.status,
            automatic: r.automatic,
            epoch: r.epoch,
            created_at: r.created_at,
            finished_at: r.finished_at,
            waiting,
        });
    }
    let last_decision = journal.decisions(service, 1)?.pop();
    Ok(Memory {
        active,
        paused,
        runs,
        last_decision,
    })
}

/// The controller's state as the journal leaves it.
pub fn restored_state(policy: &Policy, journal: &Journal, now: Ts) -> Result<State, JournalError> {
    Ok(controller::restore(policy, remember(policy, journal)?, now))
}
