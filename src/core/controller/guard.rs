//! The guardrails: which region a failover may go to, and what stops an automatic one.

use super::{HealthSummary, RegionName, State, Verdict};
use crate::core::model::{Mode, Policy};
use crate::core::reason::Hold;
use crate::core::time::Ts;

/// The guardrails of an automatic failover, in the order an operator wants to hear
/// them. Returns the target region, or the first reason not to go.
pub(super) fn automatic_failover(
    policy: &Policy,
    s: &State,
    snap: &HealthSummary,
    now: Ts,
) -> Result<RegionName, Hold> {
    let g = &policy.guardrails;
    if let Some(p) = &s.paused {
        return Err(Hold::Paused {
            by: p.by.clone(),
            reason: p.reason.clone(),
        });
    }
    if let Some((until, cause)) = s.frozen_until
        && now < until
    {
        return Err(Hold::Frozen { until, cause });
    }
    let to = pick_target(policy, s, snap, None)?;
    rpo_gate(policy, snap, &to, false)?;
    if policy.detection.mode == Mode::Manual {
        return Err(Hold::ModeManual);
    }
    if snap.votes() < g.quorum {
        return Err(Hold::NoQuorum {
            votes: snap.votes(),
            quorum: g.quorum,
        });
    }
    if let Some(last) = s.last_switch {
        let until = last.plus(g.cooldown);
        if now < until {
            return Err(Hold::Cooldown { until });
        }
    }
    let window_start = Ts(now
        .as_millis()
        .saturating_sub(crate::core::time::millis(g.failover_window)));
    let count = s
        .auto_failovers
        .iter()
        .filter(|t| **t > window_start)
        .count() as u32;
    if count >= g.max_failovers {
        return Err(Hold::WindowLimit {
            count,
            max: g.max_failovers,
            window: g.failover_window,
        });
    }
    if policy.detection.mode == Mode::Shadow {
        return Err(Hold::ModeShadow);
    }
    Ok(to)
}

/// The first secondary (in priority order, never the serving one) that is healthy, or the
/// requested one if it is not down.
pub(super) fn pick_target(
    policy: &Policy,
    s: &State,
    snap: &HealthSummary,
    wanted: Option<&RegionName>,
) -> Result<RegionName, Hold> {
    let candidates: Vec<RegionName> = match wanted {
        Some(w) => vec![w.clone()],
        None => policy
            .regions
            .secondaries
            .iter()
            .filter(|r| **r != s.active)
            .cloned()
            .collect(),
    };
    let usable = |r: &RegionName| {
        snap.get(r).is_some_and(|h| match (wanted, h.verdict) {
            (_, Verdict::Healthy) => true,
            // An operator's explicit choice may go to a region that is merely unprobed
            // or recovering, never to one that is down.
            (Some(_), Verdict::Unknown | Verdict::Recovering { .. } | Verdict::Suspect { .. }) => {
                true
            }
            _ => false,
        })
    };
    candidates
        .iter()
        .find(|r| usable(r))
        .cloned()
        .ok_or(Hold::NoHealthyTarget { candidates })
}

/// The RPO guardrail: the target's replica lag must be within budget unless the operator
/// accepted the loss.
pub(super) fn rpo_gate(
    policy: &Policy,
    snap: &HealthSummary,
    to: &RegionName,
    allow_data_loss: bool,
) -> Result<(), Hold> {
    let lag = snap.get(to).and_then(|h| h.replica_lag);
    crate::core::rpo::check(lag, policy.guardrails.rpo_budget, allow_data_loss).map_err(|o| {
        Hold::ReplicaLag {
            region: to.clone(),
            lag: o.lag,
            budget: o.budget,
        }
    })
}

/// Failback's preconditions: the primary healthy for the sustained window, its data in
/// sync. Returns how long it has been healthy.
pub(super) fn failback_ready(
    policy: &Policy,
    snap: &HealthSummary,
    now: Ts,
) -> Result<std::time::Duration, Hold> {
    let primary = &policy.regions.primary;
    let needed = policy.guardrails.failback_healthy_for;
    let h = snap.get(primary);
    let healthy_for = h
        .and_then(|h| h.healthy_since)
        .map(|t| now.since(t))
        .unwrap_or_default();
    if healthy_for < needed {
        return Err(Hold::NotHealthyLongEnough {
            region: primary.clone(),
            healthy_for,
            needed,
        });
    }
    match h.and_then(|h| h.in_sync) {
        Some(false) => {
            let lag = h.and_then(|h| h.replica_lag);
            let detail = match lag {
                Some(l) => format!(
                    "its database is a standby {} behind",
                    crate::core::time::fmt_duration(l)
                ),
                None => "its database is not a streaming standby of the serving one".to_string(),
            };
            Err(Hold::NotResynced {
                region: primary.clone(),
                detail,
            })
        }
        _ => Ok(healthy_for),
    }
}
