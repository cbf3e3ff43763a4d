//! Operator commands: pause, resume, approve, and failover or failback by hand.

use super::guard::{failback_ready, pick_target, rpo_gate};
use super::{
    Command, Evidence, HealthSummary, OperatorCommand, Pause, Phase, RunRequest, State, record,
    start,
};
use crate::core::model::{Direction, Policy, RegionName};
use crate::core::reason::{Hold, Note, Reason, Trigger};
use crate::core::time::Ts;

pub(super) fn operator(
    policy: &Policy,
    s: &mut State,
    cmd: OperatorCommand,
    now: Ts,
    out: &mut Vec<Command>,
) {
    let snap = s.health.clone();
    if let super::Leadership::Following { leader } = &s.leadership {
        // Only the leader acts, and only it writes the shared state a pause lives in.
        out.push(Command::Refuse(Hold::NotLeader {
            leader: leader.clone(),
        }));
        return;
    }
    match cmd {
        OperatorCommand::Pause { by, reason } => {
            s.paused = Some(Pause {
                by: by.clone(),
                reason: reason.clone(),
                since: now,
            });
            let summary = "paused automatic decisions".to_string();
            let hold = Reason::Hold(Hold::Paused { by, reason });
            record(s, out, now, summary, hold, Evidence::default(), false);
        }
        OperatorCommand::Resume { by } => {
            s.paused = None;
            if let Phase::Blocked { .. } = s.phase {
                s.phase = s.resting(policy, now);
            }
            let summary = "resumed automatic decisions".to_string();
            let note = Reason::Note(Note::Resumed { by });
            record(s, out, now, summary, note, Evidence::default(), false);
        }
        OperatorCommand::Failover {
            to,
            allow_data_loss,
            by,
            note,
        } => {
            let why = Trigger::Operator { by, note };
            let request = manual_failover(policy, s, snap.as_ref(), to, allow_data_loss, why);
            decide(policy, s, out, request, now);
        }
        OperatorCommand::Approve {
            allow_data_loss,
            by,
        } => {
            if matches!(s.phase, Phase::Blocked { .. }) && s.active == policy.regions.primary {
                let why = Trigger::Operator {
                    by,
                    note: "approved a held failover".into(),
                };
                let request = manual_failover(policy, s, snap.as_ref(), None, allow_data_loss, why);
                decide(policy, s, out, request, now);
            } else {
                let state = format!("the controller is {} (nothing is held)", s.phase.name());
                out.push(Command::Refuse(Hold::NotNow {
                    state,
                    wanted: Direction::Failover,
                }));
            }
        }
        OperatorCommand::Failback { by, note } => {
            let request = manual_failback(
                policy,
                s,
                snap.as_ref(),
                Trigger::Operator { by, note },
                now,
            );
            decide(policy, s, out, request, now);
        }
    }
}

/// Starts the run, or refuses the command with the hold that stops it.
fn decide(
    policy: &Policy,
    s: &mut State,
    out: &mut Vec<Command>,
    request: Result<RunRequest, Hold>,
    now: Ts,
) {
    match request {
        Ok(r) => start(policy, s, out, r, now),
        Err(hold) => out.push(Command::Refuse(hold)),
    }
}

fn manual_failback(
    policy: &Policy,
    s: &State,
    snap: Option<&HealthSummary>,
    why: Trigger,
    now: Ts,
) -> Result<RunRequest, Hold> {
    if s.phase.run_in_progress() {
        return Err(Hold::NotNow {
            state: "a run is in progress".into(),
            wanted: Direction::Failback,
        });
    }
    if s.active == policy.regions.primary {
        return Err(Hold::NotNow {
            state: format!("{} already serves", s.active),
            wanted: Direction::Failback,
        });
    }
    let Some(snap) = snap else {
        return Err(Hold::NotNow {
            state: "no health has been observed yet".into(),
            wanted: Direction::Failback,
        });
    };
    failback_ready(policy, snap, now)?;
    Ok(RunRequest {
        direction: Direction::Failback,
        from: s.active.clone(),
        to: policy.regions.primary.clone(),
        trigger: why,
        allow_data_loss: false,
        detected_at: None,
    })
}

/// The failover an operator asked for, if the guardrails a person cannot override allow
/// it (a healthy target, the RPO unless the loss is accepted).
fn manual_failover(
    policy: &Policy,
    s: &State,
    snap: Option<&HealthSummary>,
    to: Option<RegionName>,
    allow_data_loss: bool,
    why: Trigger,
) -> Result<RunRequest, Hold> {
    if s.phase.run_in_progress() {
        return Err(Hold::NotNow {
            state: "a run is in progress".into(),
            wanted: Direction::Failover,
        });
    }
    let Some(snap) = snap else {
        return Err(Hold::NotNow {
            state: "no health has been observed yet".into(),
            wanted: Direction::Failover,
        });
    };
    if let Some(t) = &to
        && (*t == s.active
            || *t == policy.regions.primary
            || !policy.regions.secondaries.contains(t))
    {
        return Err(Hold::NotNow {
            state: format!("{t} is not a secondary other than the serving region"),
            wanted: Direction::Failover,
        });
    }
    let target = pick_target(policy, s, snap, to.as_ref())?;
    rpo_gate(policy, snap, &target, allow_data_loss)?;
    Ok(RunRequest {
        direction: Direction::Failover,
        from: s.active.clone(),
        to: target,
        trigger: why,
        allow_data_loss,
        detected_at: None,
    })
}

/// What an operator's command would do now, without doing it: the run it would start,
/// or the hold that refuses it. The daemon answers `--dry-run` previews with this, so the
/// preview names the target the controller itself would choose.
pub fn preview(
    policy: &Policy,
    s: &State,
    cmd: &OperatorCommand,
    now: Ts,
) -> Result<RunRequest, Hold> {
    let snap = s.health.as_ref();
    match cmd.clone() {
        OperatorCommand::Failover {
            to,
            allow_data_loss,
            by,
            note,
        } => manual_failover(
            policy,
            s,
            snap,
            to,
            allow_data_loss,
            Trigger::Operator { by, note },
        ),
        OperatorCommand::Failback { by, note } => {
            manual_failback(policy, s, snap, Trigger::Operator { by, note }, now)
        }
        OperatorCommand::Approve { .. }
        | OperatorCommand::Pause { .. }
        | OperatorCommand::Resume { .. } => Err(Hold::NotNow {
            state: "only failover and failback can be previewed".into(),
            wanted: Direction::Failover,
        }),
    }
}
