//! The runbook executor: runs a `Plan` stage by stage (the steps of a stage in parallel),
//! journaling before and after every side effect, retrying retryable errors with
//! exponential backoff and jitter within each step's deadline, pausing for approvals,
//! and resuming an unfinished run after a crash.
//!
//! Invariant: every `apply` is preceded by a journaled apply attempt carrying the
//! executor's fencing epoch; when the journal refuses it (a newer executor took over, or
//! the run was aborted) the executor stops without calling `apply`.

pub mod authority;
mod cancel;
mod executor;
pub mod failpoint;
mod progress;
mod run_step;
mod step;

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

pub use authority::{Authority, AuthorityError, Local, SharedOutcome};
pub use cancel::Cancel;
pub use executor::Executor;
pub use progress::{Progress, ProgressKind, ProgressSink};
pub use step::{Applied, Check, ReadyCtx, Step, StepCtx, StepError, StepFactory, Verify};

/// An exponential backoff: `first`, then × `factor` up to `max`; with `jitter`, each
/// delay is stretched by a random 0–100 % so a fleet of retries does not synchronise.
/// There is no retry count: the step's deadline bounds the retries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub factor: f32,
    pub jitter: bool,
}

impl Backoff {
    /// The successive delays (endless; the caller stops at its deadline).
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        let mut b = ExponentialBuilder::new()
            .with_min_delay(self.first)
            .with_max_delay(self.max)
            .with_factor(self.factor)
            .without_max_times();
        if self.jitter {
            b = b.with_jitter();
        }
        b.build()
    }
}

/// How the executor spaces retries and verification polls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetrySettings {
    /// Between `check` and `apply` attempts that failed with a retryable error.
    pub apply: Backoff,
    /// Between `verify` observations that did not see the effect yet.
    pub verify: Backoff,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            // AWS APIs throttle in bursts: start short, back off to half a minute.
            apply: Backoff {
                first: Duration::from_millis(500),
                max: Duration::from_secs(30),
                factor: 2.0,
                jitter: true,
            },
            // Promotions and DNS changes take seconds to minutes: poll briskly at first.
            verify: Backoff {
                first: Duration::from_secs(1),
                max: Duration::from_secs(15),
                factor: 1.5,
                jitter: true,
            },
        }
    }
}

/// How an executor session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every step is verified or skipped (or failed without stopping the run); the
    /// journal records the run's `to` region as active.
    Completed,
    /// Steps failed and stopped the run: (step, message saying what to do), plan order.
    Failed(Vec<(String, String)>),
    /// The run waits for `lifeboat approve`: (step, why), plan order.
    AwaitingApproval(Vec<(String, String)>),
    /// Told to shut down: the run stopped at a journaled point and the next executor
    /// start resumes it.
    Interrupted,
    /// The journal refused a write because a newer executor owns the run (or it was
    /// aborted); this executor stopped acting.
    Superseded(String),
    /// The shared record refused the run before any step (a vote the decision counted
    /// changed): nothing acted, the local record of the run is closed, and the decision
    /// is to be taken again.
    NotStarted(String),
}
