//! The controller's state after a restart, rebuilt from what the journal remembers: the
//! serving region, an operator's pause, the runs (for the cooldown, the per-window limit
//! and an unfinished run) and the last decision (so `status` can say at once why the
//! controller is blocked).

use serde::{Deserialize, Serialize};

use super::{Decision, Pause, Phase, State};
use crate::core::ids::{Epoch, RunId};
use crate::core::model::{Direction, Policy, RegionName};
use crate::core::reason::{Hold, Reason};
use crate::core::step::RunStatus;
use crate::core::time::Ts;

/// One run as the journal records it, reduced to what the controller needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFact {
    pub run: RunId,
    pub direction: Direction,
    pub to: RegionName,
    pub status: RunStatus,
    /// Started by the controller itself (counts toward the per-window limit).
    pub automatic: bool,
    pub epoch: Epoch,
    pub created_at: Ts,
    pub finished_at: Option<Ts>,
    /// Why it waits, while it waits for an approval.
    pub waiting: Option<String>,
}

/// Everything the journal remembers that the controller's state depends on.
#[derive(Clone, Debug, PartialEq)]
pub struct Memory {
    pub active: RegionName,
    pub paused: Option<Pause>,
    /// Newest first or in any order.
    pub runs: Vec<RunFact>,
    pub last_decision: Option<Decision>,
}

/// The state at startup.
///
/// Guarantees: the per-window limit counts the automatic failovers the journal marks
/// automatic, inside the window; the cooldown starts at the newest completed run; an
/// unfinished run puts the controller in `FailingOver`/`FailingBack` (the driver resumes
/// it); otherwise a last decision that was a guardrail's or a failed run's hold leaves
/// the controller blocked by it, so `status` says why at once (holds that are not sticky
/// are re-evaluated at the first health snapshot). A pause comes back from its own
/// record.
pub fn restore(policy: &Policy, memory: Memory, now: Ts) -> State {
    let mut s = State::new(policy, memory.active, now);
    s.paused = memory.paused;
    let window = policy.guardrails.failover_window;
    for run in &memory.runs {
        if run.status == RunStatus::Completed
            && let Some(f) = run.finished_at
        {
            s.last_switch = Some(s.last_switch.map_or(f, |l| l.max(f)));
        }
        if run.direction == Direction::Failover
            && run.automatic
            && now.since(run.created_at) < window
        {
            s.auto_failovers.push(run.created_at);
        }
    }
    s.auto_failovers.sort();
    let unfinished = memory
        .runs
        .iter()
        .filter(|r| !r.status.is_finished())
        .max_by_key(|r| r.created_at);
    if let Some(run) = unfinished {
        s.phase = match run.direction {
            Direction::Failover => Phase::FailingOver {
                run: run.run.clone(),
                epoch: run.epoch,
                to: run.to.clone(),
                started: run.created_at,
                waiting: run.waiting.clone(),
            },
            Direction::Failback => Phase::FailingBack {
                run: run.run.clone(),
                epoch: run.epoch,
                started: run.created_at,
                waiting: run.waiting.clone(),
            },
        };
    } else if let Some(Decision {
        reason: Reason::Hold(hold),
        at,
        ..
    }) = &memory.last_decision
        && !matches!(
            hold,
            Hold::Paused { .. } | Hold::AwaitingApproval { .. } | Hold::NotNow { .. }
        )
    {
        s.phase = Phase::Blocked {
            hold: hold.clone(),
            since: *at,
        };
    }
    s.last_decision = memory.last_decision;
    s
}
