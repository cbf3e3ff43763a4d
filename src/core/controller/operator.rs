//! Operator commands: pause, resume, approve, and failover or failback by hand.

use super::guard::{failback_ready, pick_target, rpo_gate};
use super::{
    Command, HealthSummary, OperatorCommand, Pause, Phase, RunRequest, State, record, start,
};
use crate::core::model::{Direction, Policy, RegionName};
use crate::core::reason::Reason;
use crate::core::time::Ts;

pub(super) fn operator(
    policy: &Policy,
    s: &mut State,
    cmd: OperatorCommand,
    now: Ts,
    out: &mut Vec<Command>,
) {
    let snap = s.health.clone();
    match cmd {
        OperatorCommand::Pause { by, reason } => {
            s.paused = Some(Pause {
                by: by.clone(),
                reason: reason.clone(),
                since: now,
            });
            record(
                s,
                out,
                now,
                "paused automatic decisions".to_string(),
                Reason::Paused { by, reason },
                false,
            );
        }
        OperatorCommand::Resume { by } => {
            s.paused = None;
            if let Phase::Blocked { .. } = s.phase {
                s.phase = s.resting(policy, now);
            }
            record(
                s,
                out,
                now,
                "resumed automatic decisions".to_string(),
                Reason::Operator {
                    by,
                    note: "resume".into(),
                },
                false,
            );
        }
        OperatorCommand::Failover {
            to,
            allow_data_loss,
            by,
            note,
        } => {
            manual_failover(
                policy,
                s,
                snap.as_ref(),
                to,
                allow_data_loss,
                Reason::Operator { by, note },
                now,
                out,
            );
        }
        OperatorCommand::Approve {
            allow_data_loss,
            by,
        } => {
            if matches!(s.phase, Phase::Blocked { .. }) && s.active == policy.regions.primary {
                let why = Reason::Operator {
                    by,
                    note: "approved a held failover".into(),
                };
                manual_failover(
                    policy,
                    s,
                    snap.as_ref(),
                    None,
                    allow_data_loss,
                    why,
                    now,
                    out,
                );
            } else {
                let state = format!("the controller is {} (nothing is held)", s.phase.name());
                out.push(Command::Refuse(Reason::NotNow {
                    state,
                    wanted: Direction::Failover,
                }));
            }
        }
        OperatorCommand::Failback { by, note } => {
            if s.phase.run_in_progress() {
                out.push(Command::Refuse(Reason::NotNow {
                    state: "a run is in progress".into(),
                    wanted: Direction::Failback,
                }));
                return;
            }
            if s.active == policy.regions.primary {
                out.push(Command::Refuse(Reason::NotNow {
                    state: format!("{} already serves", s.active),
                    wanted: Direction::Failback,
                }));
                return;
            }
            let Some(snap) = snap else {
                out.push(Command::Refuse(Reason::NotNow {
                    state: "no health has been observed yet".into(),
                    wanted: Direction::Failback,
                }));
                return;
            };
            if let Err(r) = failback_ready(policy, &snap, now) {
                out.push(Command::Refuse(r));
                return;
            }
            let request = RunRequest {
                direction: Direction::Failback,
                from: s.active.clone(),
                to: policy.regions.primary.clone(),
                reason: Reason::Operator { by, note },
                allow_data_loss: false,
                automatic: false,
                detected_at: None,
            };
            start(s, out, request, now);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn manual_failover(
    policy: &Policy,
    s: &mut State,
    snap: Option<&HealthSummary>,
    to: Option<RegionName>,
    allow_data_loss: bool,
    why: Reason,
    now: Ts,
    out: &mut Vec<Command>,
) {
    if s.phase.run_in_progress() {
        out.push(Command::Refuse(Reason::NotNow {
            state: "a run is in progress".into(),
            wanted: Direction::Failover,
        }));
        return;
    }
    let Some(snap) = snap else {
        out.push(Command::Refuse(Reason::NotNow {
            state: "no health has been observed yet".into(),
            wanted: Direction::Failover,
        }));
        return;
    };
    if let Some(t) = &to
        && (*t == s.active
            || *t == policy.regions.primary
            || !policy.regions.secondaries.contains(t))
    {
        out.push(Command::Refuse(Reason::NotNow {
            state: format!("{t} is not a secondary other than the serving region"),
            wanted: Direction::Failover,
        }));
        return;
    }
    let target = match pick_target(policy, s, snap, to.as_ref()) {
        Ok(t) => t,
        Err(r) => {
            out.push(Command::Refuse(r));
            return;
        }
    };
    if let Err(r) = rpo_gate(policy, snap, &target, allow_data_loss) {
        out.push(Command::Refuse(r));
        return;
    }
    let request = RunRequest {
        direction: Direction::Failover,
        from: s.active.clone(),
        to: target,
        reason: why,
        allow_data_loss,
        automatic: false,
        detected_at: None,
    };
    start(s, out, request, now);
}
