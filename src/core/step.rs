//! The life of a runbook step and of a run, as data: states, the transitions the journal
//! allows, what a resumed executor does with a step it finds half done, and how a stage's
//! step outcomes decide the run's next move.
//!
//! The executor (`runbook`) and the journal (`journal`) both lean on these functions, so
//! the rules live in one place and are unit tested without a database or a clock.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::time::Ts;

/// Gives a fieldless enum its storage name: `as_str`, `Display`, `FromStr` and `ALL`.
/// The names must match the serde names (`snake_case`); a test checks they do.
macro_rules! named {
    ($ty:ident { $($var:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$var),+];
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$var => $name),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                $ty::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownName(s.to_string()))
            }
        }
    };
}

/// How the executor treats a step's error. Adapters pick the class; the executor decides
/// what follows from it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Throttling, timeouts, 5xx, a connection refused: tried again with backoff until the
    /// step's deadline.
    Retryable,
    /// Access denied, not found, invalid state: the run stops (unless the step may fail
    /// without stopping it) and the message tells the operator what to fix.
    Fatal,
    /// A guardrail wants a human: the run pauses until `lifeboat approve RUN_ID`.
    NeedsApproval,
}

named!(ErrorClass {
    Retryable => "retryable",
    Fatal => "fatal",
    NeedsApproval => "needs_approval",
});

/// Where a step stands, as journaled.
///
/// ```text
/// planned ─► started ─┬─► skipped            (check: already in place, never applied)
///              ▲      ├─► applied ─► verified
///              │      ├─► verified           (resumed: check found our effect in place)
///              │      ├─► failed
///              │      └─► awaiting_approval ─► approved ─┘ (back to started)
/// ```
/// `applied` may also go to `applied` again (re-applied after a resume found the effect
/// missing), to `failed` or to `awaiting_approval`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// In the plan; nothing done yet.
    Planned,
    /// The executor took it up; `apply` may have been called (a crash here is ambiguous,
    /// which is why a resumed executor runs `check` first).
    Started,
    /// `apply` returned success; not yet observed by `verify`.
    Applied,
    /// The effect is in place and observed. Done.
    Verified,
    /// `check` found the effect already in place before this run applied it. Done.
    Skipped,
    /// Gave up: a fatal error or the deadline. Done (the run stops unless the step may
    /// fail without stopping it).
    Failed,
    /// Paused for a human (a manual approval step, or a guardrail).
    AwaitingApproval,
    /// A human approved; the next executor start runs the step again.
    Approved,
}

named!(StepState {
    Planned => "planned",
    Started => "started",
    Applied => "applied",
    Verified => "verified",
    Skipped => "skipped",
    Failed => "failed",
    AwaitingApproval => "awaiting_approval",
    Approved => "approved",
});

impl StepState {
    /// Nothing more will happen to the step in this run.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepState::Verified | StepState::Skipped | StepState::Failed
        )
    }

    /// Whether the journal accepts moving a step from `self` to `to`. Anything else is a
    /// bug in the executor, and the journal refuses it rather than record nonsense.
    pub fn can_become(self, to: StepState) -> bool {
        use StepState::*;
        match self {
            Planned => to == Started,
            Started => matches!(to, Applied | Verified | Skipped | Failed | AwaitingApproval),
            Applied => matches!(to, Applied | Verified | Failed | AwaitingApproval),
            AwaitingApproval => to == Approved,
            Approved => to == Started,
            Verified | Skipped | Failed => false,
        }
    }
}

/// A name read back from storage that matches no variant (a journal from a newer version,
/// or a damaged one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown value `{0}`")]
pub struct UnknownName(pub String);

/// Where a run stands, as journaled.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Unfinished: an executor is driving it, or one was and stopped (crash, shutdown).
    /// The next executor start resumes it.
    Running,
    /// Paused until `lifeboat approve`; no executor drives it meanwhile.
    AwaitingApproval,
    /// Every step is done; the service now runs in the run's `to` region.
    Completed,
    /// A step failed and stopped the run; the message says what to do.
    Failed,
    /// An operator ended it with `lifeboat abort`; the reason is recorded.
    Aborted,
}

named!(RunStatus {
    Running => "running",
    AwaitingApproval => "awaiting_approval",
    Completed => "completed",
    Failed => "failed",
    Aborted => "aborted",
});

impl RunStatus {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Aborted
        )
    }

    /// Whether the journal accepts moving a run from `self` to `to`.
    pub fn can_become(self, to: RunStatus) -> bool {
        use RunStatus::*;
        match self {
            Running => matches!(to, AwaitingApproval | Completed | Failed | Aborted),
            AwaitingApproval => matches!(to, Running | Aborted),
            Completed | Failed | Aborted => false,
        }
    }
}

/// The part of a step an attempt record is about.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptPhase {
    /// One call to `check`: is the effect already in place?
    Check,
    /// One call to `apply`; retries are further attempts.
    Apply,
    /// The whole verification: `verify` polled until it observes the effect.
    Verify,
    /// One call to `compensate` after the step failed.
    Compensate,
}

named!(AttemptPhase {
    Check => "check",
    Apply => "apply",
    Verify => "verify",
    Compensate => "compensate",
});

/// How an attempt ended. An attempt journaled as begun but never ended was cut short by
/// the process stopping (crash, kill, host loss).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// check: in place; apply: succeeded; verify: observed; compensate: done.
    Done,
    /// check: not in place.
    NotDone,
    /// An error; its class is recorded beside it.
    Error,
    /// The step's deadline passed.
    TimedOut,
    /// The executor was told to shut down.
    Cancelled,
}

named!(AttemptOutcome {
    Done => "done",
    NotDone => "not_done",
    Error => "error",
    TimedOut => "timed_out",
    Cancelled => "cancelled",
});

/// What an executor does with a step, given how the journal left it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Resume {
    /// Verified, skipped or failed: leave it.
    Done,
    /// Waiting for a human; the run cannot get past it.
    AwaitApproval,
    /// Run it: `check`, then `apply` only if the effect is not in place, then `verify`.
    /// `mark_started` says whether the executor must first journal `started` (it has not
    /// yet, or it is going round again after an approval).
    Run { mark_started: bool },
}

/// The resume rule of the journal's write-ahead contract. A step found `started` or
/// `applied` may or may not have had its effect: it goes through `check` before anything
/// is applied again, which is what makes a crash at any point safe.
pub fn resume(state: StepState) -> Resume {
    match state {
        StepState::Verified | StepState::Skipped | StepState::Failed => Resume::Done,
        StepState::AwaitingApproval => Resume::AwaitApproval,
        StepState::Planned | StepState::Approved => Resume::Run { mark_started: true },
        StepState::Started | StepState::Applied => Resume::Run {
            mark_started: false,
        },
    }
}

/// The state a step ends in when `check` finds its effect in place (after `verify` has
/// observed it). `skipped` means "lifeboat never applied it", so it is only honest when
/// no apply of this run was ever attempted; otherwise the effect is ours and the step is
/// `verified`.
pub fn when_already_in_place(apply_attempts: u32) -> StepState {
    if apply_attempts == 0 {
        StepState::Skipped
    } else {
        StepState::Verified
    }
}

/// How one step of a stage ended, as far as the run is concerned.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum StepEnd {
    /// Verified or skipped.
    Done,
    /// Failed, but the step may fail without stopping the run.
    FailedContinue,
    /// Failed and stops the run.
    Failed { message: String },
    /// Waits for a human.
    Paused { reason: String },
    /// Stopped at a journaled point because the executor was told to shut down.
    Interrupted,
    /// The journal refused a write: a newer executor owns the run now.
    Superseded,
}

/// What the run does once every step of a stage has ended.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum StageVerdict {
    /// Go on with the next stage (or complete the run after the last).
    Next,
    /// Stop and write nothing more: someone else owns the run.
    Superseded,
    /// Mark the run failed with the failed steps' messages, in plan order.
    Fail(Vec<(String, String)>),
    /// Mark the run awaiting approval with the waiting steps' reasons.
    Pause(Vec<(String, String)>),
    /// Leave the run unfinished for the next executor start.
    Interrupt,
}

/// Decides a stage from its steps' ends (`(step name, end)` in plan order).
///
/// The order of precedence matters: a superseded executor must not write even a failure;
/// a failure ends the run, which makes a pending approval moot; an approval pause is
/// journaled before a shutdown so `status` shows what the run waits for.
pub fn stage_verdict(ends: &[(String, StepEnd)]) -> StageVerdict {
    if ends.iter().any(|(_, e)| *e == StepEnd::Superseded) {
        return StageVerdict::Superseded;
    }
    let failed: Vec<(String, String)> = ends
        .iter()
        .filter_map(|(n, e)| match e {
            StepEnd::Failed { message } => Some((n.clone(), message.clone())),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        return StageVerdict::Fail(failed);
    }
    let paused: Vec<(String, String)> = ends
        .iter()
        .filter_map(|(n, e)| match e {
            StepEnd::Paused { reason } => Some((n.clone(), reason.clone())),
            _ => None,
        })
        .collect();
    if !paused.is_empty() {
        return StageVerdict::Pause(paused);
    }
    if ends.iter().any(|(_, e)| *e == StepEnd::Interrupted) {
        return StageVerdict::Interrupt;
    }
    StageVerdict::Next
}

/// One line of a run's story so far, for notifications and `show`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TimelineEntry {
    pub at: Ts,
    /// The step concerned; `None` for run-level events (started, resumed, approved…).
    pub step: Option<String>,
    pub what: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_or_applied_step_is_checked_again_before_anything_is_reapplied() {
        assert_eq!(
            resume(StepState::Started),
            Resume::Run {
                mark_started: false
            }
        );
        assert_eq!(
            resume(StepState::Applied),
            Resume::Run {
                mark_started: false
            }
        );
    }

    #[test]
    fn finished_steps_are_left_alone_on_resume() {
        for s in [StepState::Verified, StepState::Skipped, StepState::Failed] {
            assert_eq!(resume(s), Resume::Done, "{s}");
            assert!(s.is_terminal());
            for &to in StepState::ALL {
                assert!(!s.can_become(to), "{s} -> {to} must be refused");
            }
        }
    }

    #[test]
    fn an_approved_step_starts_over_and_an_unapproved_one_waits() {
        assert_eq!(resume(StepState::AwaitingApproval), Resume::AwaitApproval);
        assert_eq!(
            resume(StepState::Approved),
            Resume::Run { mark_started: true }
        );
        assert!(StepState::AwaitingApproval.can_become(StepState::Approved));
        assert!(StepState::Approved.can_become(StepState::Started));
        assert!(!StepState::AwaitingApproval.can_become(StepState::Started));
    }

    #[test]
    fn a_step_cannot_be_verified_without_being_started() {
        assert!(!StepState::Planned.can_become(StepState::Verified));
        assert!(!StepState::Planned.can_become(StepState::Applied));
        assert!(StepState::Started.can_become(StepState::Verified));
    }

    #[test]
    fn skipped_is_reserved_for_effects_this_run_never_tried_to_apply() {
        assert_eq!(when_already_in_place(0), StepState::Skipped);
        assert_eq!(when_already_in_place(1), StepState::Verified);
    }

    /// The journal stores `as_str`, `--json` prints serde: they must agree.
    fn names_match_serde<T>(all: &[T])
    where
        T: Copy + fmt::Display + FromStr<Err = UnknownName> + Serialize + PartialEq + fmt::Debug,
    {
        for v in all {
            let name = v.to_string();
            assert_eq!(name.parse::<T>(), Ok(*v));
            assert_eq!(
                serde_json::to_string(v).expect("serializes"),
                format!("\"{name}\"")
            );
        }
    }

    #[test]
    fn stored_names_round_trip_and_match_the_json_names() {
        names_match_serde(ErrorClass::ALL);
        names_match_serde(StepState::ALL);
        names_match_serde(RunStatus::ALL);
        names_match_serde(AttemptPhase::ALL);
        names_match_serde(AttemptOutcome::ALL);
        assert!("exploded".parse::<StepState>().is_err());
    }

    #[test]
    fn finished_runs_never_change_again() {
        for &s in RunStatus::ALL.iter().filter(|s| s.is_finished()) {
            for &to in RunStatus::ALL {
                assert!(!s.can_become(to), "{s} -> {to}");
            }
        }
        assert!(RunStatus::AwaitingApproval.can_become(RunStatus::Running));
        assert!(!RunStatus::AwaitingApproval.can_become(RunStatus::Completed));
    }

    fn ends(list: &[(&str, StepEnd)]) -> Vec<(String, StepEnd)> {
        list.iter()
            .map(|(n, e)| (n.to_string(), e.clone()))
            .collect()
    }

    #[test]
    fn a_superseded_step_silences_the_whole_stage() {
        let v = stage_verdict(&ends(&[
            (
                "a",
                StepEnd::Failed {
                    message: "boom".into(),
                },
            ),
            ("b", StepEnd::Superseded),
        ]));
        assert_eq!(v, StageVerdict::Superseded);
    }

    #[test]
    fn a_failure_wins_over_a_pause_and_a_tolerated_failure_does_not_stop_the_run() {
        let v = stage_verdict(&ends(&[
            (
                "a",
                StepEnd::Paused {
                    reason: "lag".into(),
                },
            ),
            (
                "b",
                StepEnd::Failed {
                    message: "denied".into(),
                },
            ),
        ]));
        assert_eq!(v, StageVerdict::Fail(vec![("b".into(), "denied".into())]));
        let v = stage_verdict(&ends(&[
            ("a", StepEnd::Done),
            ("b", StepEnd::FailedContinue),
        ]));
        assert_eq!(v, StageVerdict::Next);
    }

    #[test]
    fn a_pause_is_recorded_before_a_shutdown() {
        let v = stage_verdict(&ends(&[
            ("a", StepEnd::Interrupted),
            (
                "b",
                StepEnd::Paused {
                    reason: "lag".into(),
                },
            ),
        ]));
        assert_eq!(v, StageVerdict::Pause(vec![("b".into(), "lag".into())]));
        let v = stage_verdict(&ends(&[("a", StepEnd::Interrupted), ("b", StepEnd::Done)]));
        assert_eq!(v, StageVerdict::Interrupt);
    }
}
