//! The executor asks the run's authority before every side effect and tells it after
//! every step. With several controllers that authority is etcd; here a recording fake
//! stands in for it (a pure test of the executor's contract; the etcd implementation has
//! its own tests against a real cluster).

mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lifeboat::core::ids::RunId;
use lifeboat::runbook::{Authority, AuthorityError, RunOutcome, SharedOutcome};
use support::{SANDBOX_STEPS, Target, executor, journal, sandbox_plan};

/// Records every call; refuses to let the executor act, or deposes it, at chosen steps.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
    /// `may_act` refuses once this many intents were recorded.
    stop_after: Option<usize>,
    /// `intent` for this step says a newer epoch owns the run.
    deposed_at: Option<u32>,
}

impl Recorder {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }
    fn intents(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.starts_with("intent"))
            .count()
    }
}

#[async_trait]
impl Authority for Recorder {
    fn may_act(&self) -> Result<(), String> {
        match self.stop_after {
            Some(n) if self.intents() >= n => Err("the lease may have run out".into()),
            _ => Ok(()),
        }
    }

    async fn intent(&self, _run: &RunId, seq: u32, step: &str) -> Result<(), AuthorityError> {
        if self.deposed_at == Some(seq) {
            return Err(AuthorityError::Deposed("epoch 7 owns the run".into()));
        }
        self.calls
            .lock()
            .expect("lock")
            .push(format!("intent {seq} {step}"));
        Ok(())
    }

    async fn done(
        &self,
        _run: &RunId,
        seq: u32,
        step: &str,
        outcome: SharedOutcome,
    ) -> Result<(), AuthorityError> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("done {seq} {step} {outcome:?}"));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn every_step_records_its_intent_before_the_effect_and_its_outcome_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Target::in_memory();
    let auth = Arc::new(Recorder::default());
    let out = executor(journal(&dir), &t, "test")
        .authority(auth.clone())
        .start(sandbox_plan("r1"), "alice")
        .await
        .expect("run");
    assert_eq!(out, RunOutcome::Completed);
    let calls = auth.calls();
    for s in SANDBOX_STEPS {
        let intent = calls
            .iter()
            .position(|c| c.starts_with("intent") && c.ends_with(s));
        let done = calls
            .iter()
            .position(|c| c.starts_with("done") && c.contains(s));
        assert!(
            intent.is_some() && done.is_some() && intent < done,
            "{s}: {calls:?}"
        );
    }
    assert!(
        calls.contains(&"intent 1 fence-old-primary".to_string()),
        "{calls:?}"
    );

    // The same plan again finds every effect in place: outcomes are adopted, and nothing
    // is applied, so no intent is recorded.
    let again = Arc::new(Recorder::default());
    let out = executor(journal(&dir), &t, "test")
        .authority(again.clone())
        .start(sandbox_plan("r2"), "alice")
        .await
        .expect("run");
    assert_eq!(out, RunOutcome::Completed);
    let calls = again.calls();
    assert_eq!(again.intents(), 0, "{calls:?}");
    assert!(calls.iter().any(|c| c.ends_with("Adopted")), "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn a_controller_that_may_not_act_stops_before_the_next_effect_and_leaves_the_run_resumable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Target::in_memory();
    let auth = Arc::new(Recorder {
        stop_after: Some(1),
        ..Recorder::default()
    });
    let out = executor(journal(&dir), &t, "test")
        .authority(auth.clone())
        .start(sandbox_plan("r1"), "alice")
        .await
        .expect("run");
    assert_eq!(out, RunOutcome::Interrupted);
    assert_eq!(t.effects(), vec!["fence-old-primary".to_string()]);

    // Another executor (the next leader) resumes it and finishes.
    let out = executor(journal(&dir), &t, "test")
        .resume(&RunId("r1".into()))
        .await
        .expect("resume");
    assert_eq!(out, RunOutcome::Completed);
    assert_eq!(t.effect_counts().get("fence-old-primary"), Some(&1));
}

#[tokio::test(start_paused = true)]
async fn a_deposed_controller_applies_nothing_more_and_the_run_is_superseded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Target::in_memory();
    let auth = Arc::new(Recorder {
        deposed_at: Some(2),
        ..Recorder::default()
    });
    let out = executor(journal(&dir), &t, "test")
        .authority(auth)
        .start(sandbox_plan("r1"), "alice")
        .await
        .expect("run");
    assert!(matches!(out, RunOutcome::Superseded(_)), "{out:?}");
    assert_eq!(t.effects(), vec!["fence-old-primary".to_string()]);
}
