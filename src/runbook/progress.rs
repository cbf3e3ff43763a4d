//! Progress events: what the executor is doing, as it does it, for the CLI and the daemon
//! to render. The journal is the record; these are the live view and may be dropped.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::core::ids::RunId;
use crate::core::reason::Notice;

/// What just happened.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProgressKind {
    RunStarted,
    RunResumed,
    StepStarted,
    /// `check` answered (in place or not; see the message).
    Checked,
    /// An apply attempt is about to be made.
    Applying,
    /// An attempt failed with a retryable error; the next one follows after a backoff.
    Retrying,
    Applied,
    /// `verify` has not observed the effect yet.
    Verifying,
    Verified,
    Skipped,
    StepFailed,
    AwaitingApproval,
    RunCompleted,
    RunFailed,
    RunPaused,
    RunInterrupted,
    /// The journal refused a write: another executor owns the run.
    RunSuperseded,
}

#[derive(Clone, Debug)]
pub struct Progress {
    pub run_id: RunId,
    /// `None` for run-level events.
    pub step: Option<String>,
    pub kind: ProgressKind,
    /// The apply attempt or verify observation number, when there is one.
    pub attempt: u32,
    /// Since the step (or, for run-level events, the executor session) began.
    pub elapsed: Duration,
    pub message: String,
    /// A step's notice for the controller (with `Applied` events).
    pub notice: Option<Notice>,
}

/// Where progress goes: nowhere, or a channel whose receiver may be gone (then events
/// are dropped: the run never waits for its audience).
#[derive(Clone, Debug, Default)]
pub struct ProgressSink(Option<mpsc::UnboundedSender<Progress>>);

impl ProgressSink {
    pub fn channel() -> (ProgressSink, mpsc::UnboundedReceiver<Progress>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ProgressSink(Some(tx)), rx)
    }

    pub fn send(&self, p: Progress) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(p);
        }
    }
}
