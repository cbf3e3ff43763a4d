//! Readiness: "would this step work if the disaster started now?", asked of every step of
//! both runbooks before any disaster, and what changed since the last time it was asked.
//!
//! The checks themselves are I/O and live with the step adapters (`Step::readiness`);
//! this module holds what they answer, the report of one round, and the one rule about
//! rounds: which differences between two reports a person is told about.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::controller::Decision;
use super::kind::StepKind;
use super::model::{Direction, RegionName};
use super::reason::{Note, Reason};
use super::time::Ts;

/// What a readiness check found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Readiness {
    /// Everything the check could look at is as the step needs it; the detail says what
    /// was seen.
    Ready { detail: String },
    /// The step would fail (or do harm): why, and what a person does about it.
    NotReady { why: String, fix: String },
    /// The check could not find out (an API the endpoint lacks, a side effect it would
    /// take to know); the detail says why. Never counted as ready.
    CannotTell { why: String },
}

/// The three answers without their words: for metrics, exit codes and comparisons.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReadyState {
    Ready,
    NotReady,
    CannotTell,
}

impl Readiness {
    pub fn ready(detail: impl Into<String>) -> Readiness {
        Readiness::Ready {
            detail: detail.into(),
        }
    }

    pub fn not_ready(why: impl Into<String>, fix: impl Into<String>) -> Readiness {
        Readiness::NotReady {
            why: why.into(),
            fix: fix.into(),
        }
    }

    pub fn cannot_tell(why: impl Into<String>) -> Readiness {
        Readiness::CannotTell { why: why.into() }
    }

    pub fn state(&self) -> ReadyState {
        match self {
            Readiness::Ready { .. } => ReadyState::Ready,
            Readiness::NotReady { .. } => ReadyState::NotReady,
            Readiness::CannotTell { .. } => ReadyState::CannotTell,
        }
    }

    /// What was seen, or why it is not ready, or why nothing could be told.
    pub fn detail(&self) -> &str {
        match self {
            Readiness::Ready { detail } => detail,
            Readiness::NotReady { why, .. } => why,
            Readiness::CannotTell { why } => why,
        }
    }

    pub fn fix(&self) -> Option<&str> {
        match self {
            Readiness::NotReady { fix, .. } => Some(fix),
            _ => None,
        }
    }

    /// Combines two findings about the same step: the worse one wins (not ready over
    /// cannot tell over ready), so a check made of parts is ready only when every part is.
    pub fn and(self, other: Readiness) -> Readiness {
        match (self, other) {
            (Readiness::Ready { detail: a }, Readiness::Ready { detail: b }) => {
                Readiness::ready(format!("{a}; {b}"))
            }
            (Readiness::NotReady { why: a, fix: f }, Readiness::NotReady { why: b, fix: g }) => {
                Readiness::not_ready(format!("{a}; {b}"), format!("{f}; {g}"))
            }
            (n @ Readiness::NotReady { .. }, _) | (_, n @ Readiness::NotReady { .. }) => n,
            (Readiness::CannotTell { why: a }, Readiness::CannotTell { why: b }) => {
                Readiness::cannot_tell(format!("{a}; {b}"))
            }
            (c @ Readiness::CannotTell { .. }, _) | (_, c @ Readiness::CannotTell { .. }) => c,
        }
    }
}

impl ReadyState {
    pub fn label(self) -> &'static str {
        match self {
            ReadyState::Ready => "ready",
            ReadyState::NotReady => "not_ready",
            ReadyState::CannotTell => "cannot_tell",
        }
    }
}

impl fmt::Display for ReadyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadyState::Ready => "ready",
            ReadyState::NotReady => "not ready",
            ReadyState::CannotTell => "cannot tell",
        })
    }
}

/// One step of one runbook, and what its check found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepReadiness {
    pub step: String,
    pub kind: StepKind,
    /// The region the step would act in (`@to`/`@from` resolved for this runbook).
    pub region: RegionName,
    pub readiness: Readiness,
}

/// One runbook, planned as it would run from the serving region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunbookReadiness {
    pub direction: Direction,
    pub from: RegionName,
    pub to: RegionName,
    /// Whether this is the runbook that would run next (it leaves the serving region):
    /// its checks look at the state a run would find now, not only at what exists.
    pub next: bool,
    pub steps: Vec<StepReadiness>,
    /// Set when the runbook could not be planned at all (always not ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_error: Option<Readiness>,
}

/// The step name a runbook's planning failure goes by.
pub const PLAN: &str = "plan";

/// One round of readiness checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReadinessReport {
    pub service: String,
    pub at: Ts,
    /// The region serving when the round started.
    pub serving: RegionName,
    /// Failover first, then failback.
    pub runbooks: Vec<RunbookReadiness>,
    /// Whether lifeboat's AWS identity holds the IAM actions the planned steps call.
    pub permissions: Readiness,
    /// How long the round took, in milliseconds.
    #[serde(default)]
    pub took_ms: u64,
}

/// The key a finding is compared by between rounds: (direction, step), where the
/// permissions check has no direction and the step name `permissions`.
pub type Key = (Option<Direction>, String);

/// The name the permissions check goes by in reports, metrics and alerts.
pub const PERMISSIONS: &str = "permissions";

impl ReadinessReport {
    /// Every finding with its key, steps first.
    pub fn findings(&self) -> impl Iterator<Item = (Key, &Readiness)> {
        self.runbooks
            .iter()
            .flat_map(|r| {
                r.plan_error
                    .iter()
                    .map(move |e| ((Some(r.direction), PLAN.to_string()), e))
                    .chain(
                        r.steps
                            .iter()
                            .map(move |s| ((Some(r.direction), s.step.clone()), &s.readiness)),
                    )
            })
            .chain(std::iter::once((
                (None, PERMISSIONS.to_string()),
                &self.permissions,
            )))
    }

    /// How many findings are in each state: (ready, not ready, cannot tell).
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for (_, r) in self.findings() {
            match r.state() {
                ReadyState::Ready => c.0 += 1,
                ReadyState::NotReady => c.1 += 1,
                ReadyState::CannotTell => c.2 += 1,
            }
        }
        c
    }

    /// Ready unless some check found a step that would not work. "Cannot tell" does not
    /// make a runbook not ready (it is reported, and never counted as ready).
    pub fn ok(&self) -> bool {
        self.counts().1 == 0
    }

    /// The findings that are not ready, as `((direction, step), why, fix)`.
    pub fn not_ready(&self) -> Vec<(Key, &str, &str)> {
        self.findings()
            .filter_map(|(k, r)| match r {
                Readiness::NotReady { why, fix } => Some((k, why.as_str(), fix.as_str())),
                _ => None,
            })
            .collect()
    }
}

/// Which runbooks a round checks, planned from the serving region: `(direction, from,
/// to, next)`, failover first. With the primary serving, the failover goes to the first
/// secondary and is next; the failback returns from there. With a secondary serving,
/// the failback is next, and the failover is the one that would later leave the
/// primary again for that secondary.
pub fn runbooks(
    policy: &super::model::Policy,
    serving: &RegionName,
) -> Vec<(Direction, RegionName, RegionName, bool)> {
    let primary = &policy.regions.primary;
    let secondary = if serving == primary {
        policy.regions.secondaries.first().cloned()
    } else {
        Some(serving.clone())
    };
    let Some(secondary) = secondary else {
        return Vec::new();
    };
    let on_primary = serving == primary;
    vec![
        (
            Direction::Failover,
            primary.clone(),
            secondary.clone(),
            on_primary,
        ),
        (Direction::Failback, secondary, primary.clone(), !on_primary),
    ]
}

/// What a person is told when a round differs from the one before: one alert per
/// finding whose state changed (ready, not ready, cannot tell), with the reason and the
/// fix. The first round (`before` is `None`) reports only what is not ready, since
/// "ready" is what nobody needs paging about. A finding whose words change but whose
/// state does not (a lag that moved from 12 s to 14 s) is not a change.
///
/// Pure: the decisions carry `now` and nothing is sent here; the driver sends them.
pub fn changes(
    before: Option<&ReadinessReport>,
    after: &ReadinessReport,
    now: Ts,
) -> Vec<Decision> {
    let previous = |key: &Key| -> Option<ReadyState> {
        before?
            .findings()
            .find(|(k, _)| k == key)
            .map(|(_, r)| r.state())
    };
    let mut out = Vec::new();
    for (key, r) in after.findings() {
        let was = previous(&key);
        let now_state = r.state();
        let tell = match was {
            None if before.is_none() => now_state == ReadyState::NotReady,
            // A step new to the runbook (the policy changed): tell unless it is ready.
            None => now_state != ReadyState::Ready,
            Some(w) => w != now_state,
        };
        if !tell {
            continue;
        }
        let (direction, step) = key;
        let where_ = match direction {
            Some(d) => format!("{d} step `{step}`"),
            None => "the IAM permissions".to_string(),
        };
        let summary = match now_state {
            ReadyState::Ready => format!("readiness: {where_} is ready again"),
            ReadyState::NotReady => format!("readiness: {where_} is NOT ready"),
            ReadyState::CannotTell => format!("readiness: cannot tell whether {where_} is ready"),
        };
        out.push(Decision {
            at: now,
            summary,
            reason: Reason::Note(Note::ReadinessChanged {
                direction,
                step,
                was,
                now: now_state,
                detail: r.detail().to_string(),
                fix: r.fix().map(str::to_string),
            }),
            evidence: Default::default(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(move_dns: Readiness, permissions: Readiness) -> ReadinessReport {
        let step = |name: &str, kind, readiness| StepReadiness {
            step: name.to_string(),
            kind,
            region: RegionName::new("us-west-2"),
            readiness,
        };
        ReadinessReport {
            service: "orders".into(),
            at: Ts::from_millis(0),
            serving: RegionName::new("us-east-1"),
            runbooks: vec![RunbookReadiness {
                direction: Direction::Failover,
                from: RegionName::new("us-east-1"),
                to: RegionName::new("us-west-2"),
                next: true,
                steps: vec![
                    step(
                        "promote",
                        StepKind::PostgresPromote,
                        Readiness::ready("a streaming standby"),
                    ),
                    step("move-dns", StepKind::Route53Switch, move_dns),
                ],
                plan_error: None,
            }],
            permissions,
            took_ms: 5,
        }
    }

    fn labels(ds: &[Decision]) -> Vec<String> {
        ds.iter()
            .map(|d| format!("{} — {}", d.summary, d.reason))
            .collect()
    }

    #[test]
    fn the_first_round_tells_only_what_is_not_ready() {
        let all_ready = report(Readiness::ready("pair"), Readiness::cannot_tell("moto"));
        assert!(changes(None, &all_ready, Ts::from_millis(1)).is_empty());
        let broken = report(
            Readiness::not_ready("health check `hc1` does not exist", "recreate it"),
            Readiness::cannot_tell("moto"),
        );
        let got = labels(&changes(None, &broken, Ts::from_millis(1)));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains("failover step `move-dns` is NOT ready"),
            "{got:?}"
        );
        assert!(
            got[0].contains("hc1") && got[0].contains("recreate it"),
            "{got:?}"
        );
    }

    #[test]
    fn every_change_of_state_is_told_once_and_new_words_alone_are_not() {
        let ready = report(Readiness::ready("pair"), Readiness::cannot_tell("moto"));
        let red = report(
            Readiness::not_ready("lag 12s", "check replication"),
            Readiness::cannot_tell("moto"),
        );
        let redder = report(
            Readiness::not_ready("lag 14s", "check replication"),
            Readiness::cannot_tell("moto"),
        );
        let t = Ts::from_millis(9);
        let went_red = changes(Some(&ready), &red, t);
        assert_eq!(went_red.len(), 1);
        assert!(changes(Some(&red), &redder, t).is_empty());
        let back = labels(&changes(Some(&redder), &ready, t));
        assert_eq!(back.len(), 1);
        assert!(back[0].contains("is ready again"), "{back:?}");
        let perms = report(
            Readiness::ready("pair"),
            Readiness::not_ready("rds:PromoteReadReplica denied", "grant it"),
        );
        let got = labels(&changes(Some(&ready), &perms, t));
        assert_eq!(got.len(), 1);
        assert!(got[0].contains("the IAM permissions"), "{got:?}");
    }

    #[test]
    fn the_runbook_that_leaves_the_serving_region_is_the_next_one() {
        let policy = crate::core::testkit::policy(vec![]);
        let primary = policy.regions.primary.clone();
        let secondary = policy.regions.secondaries[0].clone();
        let on_primary = runbooks(&policy, &primary);
        assert_eq!(
            on_primary,
            vec![
                (
                    Direction::Failover,
                    primary.clone(),
                    secondary.clone(),
                    true
                ),
                (
                    Direction::Failback,
                    secondary.clone(),
                    primary.clone(),
                    false
                ),
            ]
        );
        let on_secondary = runbooks(&policy, &secondary);
        assert!(
            !on_secondary[0].3,
            "the failover is not next while the secondary serves"
        );
        assert_eq!(
            on_secondary[1],
            (Direction::Failback, secondary, primary, true)
        );
    }

    #[test]
    fn the_worse_finding_wins_when_parts_combine() {
        let r = Readiness::ready("a").and(Readiness::cannot_tell("b"));
        assert_eq!(r.state(), ReadyState::CannotTell);
        let n = Readiness::cannot_tell("b").and(Readiness::not_ready("c", "fix c"));
        assert_eq!(n, Readiness::not_ready("c", "fix c"));
        assert_eq!(
            Readiness::ready("a").and(Readiness::ready("b")),
            Readiness::ready("a; b")
        );
        assert!(!report(Readiness::not_ready("x", "y"), Readiness::ready("p")).ok());
        assert!(report(Readiness::cannot_tell("x"), Readiness::ready("p")).ok());
    }
}
