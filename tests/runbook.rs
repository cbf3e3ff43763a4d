//! The executor against fake steps, on tokio's paused clock: ordering, retries and
//! deadlines, verification polling, and failures. No test sleeps for real.

mod support;

use std::time::Duration;

use lifeboat::core::ids::{Epoch, RunId};
use lifeboat::core::step::{AttemptOutcome, AttemptPhase, ErrorClass, RunStatus, StepState};
use lifeboat::runbook::{ProgressKind, ProgressSink, RunOutcome, StepError};
use support::{Behaviour, SANDBOX_STEPS, Target, executor, journal, retryable, sandbox_plan};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_run_completes_with_each_effect_applied_once_and_moves_the_active_region() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(&dir);
    let t = Target::in_memory();
    let out = executor(j.clone(), &t, "test executor")
        .start(sandbox_plan("r1"), "alice via lifeboat failover")
        .await
        .expect("run");
    assert_eq!(out, RunOutcome::Completed);
    for s in SANDBOX_STEPS {
        assert_eq!(t.effect_counts().get(s), Some(&1), "{s}");
        assert_eq!(
            (
                t.calls(s, "check"),
                t.calls(s, "apply"),
                t.calls(s, "verify")
            ),
            (1, 1, 1),
            "{s}"
        );
    }
    // Stages run in order: the fence before the promotion before DNS before the rest.
    let order = t.effects();
    let pos = |s: &str| order.iter().position(|e| e == s).expect("applied");
    assert!(pos("fence-old-primary") < pos("promote-standby"));
    assert!(pos("promote-standby") < pos("move-dns"));
    assert!(pos("move-dns") < pos("scale-up-workers") && pos("move-dns") < pos("flush-cache"));
    assert!(pos("tell-ops") == 5);

    let run_id = RunId("r1".into());
    let run = j.run(&run_id).expect("run");
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.started_by, "alice via lifeboat failover");
    assert!(
        j.steps(&run_id)
            .expect("steps")
            .iter()
            .all(|s| s.state == StepState::Verified)
    );
    let state = j
        .service_state("sandbox-orders")
        .expect("read")
        .expect("set");
    assert_eq!(state.active_region.as_str(), "us-west-2");
    // The last step sees the run's story so far, for its notification.
    let ctx = t.last_ctx("tell-ops").expect("called");
    assert!(
        ctx.timeline
            .iter()
            .any(|e| e.step.as_deref() == Some("move-dns"))
    );
    assert_eq!(ctx.epoch, Epoch(1));
}

#[tokio::test(start_paused = true)]
async fn apply_retries_throttling_with_growing_jittered_delays_then_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(&dir);
    let t = Target::in_memory();
    t.script(
        "promote-standby",
        Behaviour {
            apply_errors: retryable(3, "Throttling on orders-db promote: rate exceeded"),
            ..Behaviour::default()
        },
    );
    let (sink, mut progress) = ProgressSink::channel();
    let begun = Instant::now();
    let out = executor(j.clone(), &t, "test")
        .progress(sink)
        .start(sandbox_plan("r1"), "test")
        .await
        .expect("run");
    assert_eq!(out, RunOutcome::Completed);
    assert_eq!(t.calls("promote-standby", "apply"), 4);
    // The live view saw each retry, numbered, with the adapter's words.
    let mut retries = Vec::new();
    while let Ok(p) = progress.try_recv() {
        if p.kind == ProgressKind::Retrying {
            assert_eq!(p.step.as_deref(), Some("promote-standby"));
            assert!(p.message.contains("Throttling"), "{}", p.message);
            retries.push(p.attempt);
        }
    }
    assert_eq!(retries, [1, 2, 3]);
    assert_eq!(t.effect_counts().get("promote-standby"), Some(&1));

    // Default backoff 0.5 s, 1 s, 2 s, each stretched by up to 100 % of jitter.
    let waited = begun.elapsed();
    assert!(
        waited >= Duration::from_millis(3500) && waited < Duration::from_secs(7),
        "{waited:?}"
    );
    let step = j
        .step(&RunId("r1".into()), "promote-standby")
        .expect("step");
    let applies: Vec<_> = step
        .attempts
        .iter()
        .filter(|a| a.phase == AttemptPhase::Apply)
        .collect();
    let outcomes: Vec<_> = applies
        .iter()
        .map(|a| (a.attempt, a.outcome, a.error_class))
        .collect();
    assert_eq!(
        outcomes,
        [
            (1, Some(AttemptOutcome::Error), Some(ErrorClass::Retryable)),
            (2, Some(AttemptOutcome::Error), Some(ErrorClass::Retryable)),
            (3, Some(AttemptOutcome::Error), Some(ErrorClass::Retryable)),
            (4, Some(AttemptOutcome::Done), None),
        ]
    );
    // Jitter keeps each delay within [d, 2d), so the gaps strictly grow: < 1 s ≤ … < 2 s ≤ ….
    let gaps: Vec<u64> = applies
        .windows(2)
        .map(|w| w[1].started_at.0 - w[0].started_at.0)
        .collect();
    assert!(gaps[0] >= 500 && gaps[0] < 1000, "{gaps:?}");
    assert!(gaps[1] >= 1000 && gaps[1] < 2000, "{gaps:?}");
    assert!(gaps[2] >= 2000 && gaps[2] < 4000, "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_step_deadline_and_the_run_fails_saying_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(&dir);
    let t = Target::in_memory();
    t.script(
        "fence-old-primary",
        Behaviour {
            apply_errors: retryable(1000, "503 from orders-db in us-east-1"),
            ..Behaviour::default()
        },
    );
    let begun = Instant::now();
    let out = executor(j.clone(), &t, "test")
        .start(sandbox_plan("r1"), "test")
        .await
        .expect("run");
    // The step's timeout is 1m.
    assert!(
        begun.elapsed() <= Duration::from_secs(60),
        "{:?}",
        begun.elapsed()
    );
    let RunOutcome::Failed(failures) = out else {
        panic!("expected a failure, got {out:?}");
    };
    assert_eq!(failures.len(), 1);
    let (step, msg) = &failures[0];
    assert_eq!(step, "fence-old-primary");
    assert!(msg.contains("within the step's 1m timeout"), "{msg}");
    assert!(msg.contains("503 from orders-db in us-east-1"), "{msg}");
    assert!(msg.contains("start the run again"), "{msg}");
    // Delays 0.5, 1, 2, 4, 8, 16, 30 s (each up to doubled) fit 6 or 7 attempts in 60 s.
    let attempts = t.calls("fence-old-primary", "apply");
    assert!((6..=7).contains(&attempts), "{attempts} attempts");
    assert_eq!(t.calls("fence-old-primary", "compensate"), 1);
    assert_eq!(t.calls("promote-standby", "check"), 0, "the run went on");

    let run = j.run(&RunId("r1".into())).expect("run");
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.outcome.expect("outcome").contains("fence-old-primary"));
    let states: Vec<StepState> = j
        .steps(&run.run_id)
        .expect("steps")
        .iter()
        .map(|s| s.state)
        .collect();
    assert_eq!(states[0], StepState::Failed);
    assert!(states[1..].iter().all(|s| *s == StepState::Planned));
}

#[tokio::test(start_paused = true)]
async fn verify_is_polled_until_the_effect_is_observable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(&dir);
    let t = Target::in_memory();
    t.script(
        "move-dns",
        Behaviour {
            verify_not_yet: 3,
            ..Behaviour::default()
        },
    );
    let out = executor(j.clone(), &t, "test")
        .start(sandbox_plan("r1"), "test")
        .await
        .expect("run");
    assert_eq!(out, RunOutcome::Completed);
    assert_eq!(t.calls("move-dns", "verify"), 4);
    assert_eq!(t.calls("move-dns", "apply"), 1);
    let step = j.step(&RunId("r1".into()), "move-dns").expect("step");
    let verify = step
        .attempts
        .iter()
        .find(|a| a.phase == AttemptPhase::Verify)
        .expect("verify journaled");
    assert_eq!(
        (verify.attempt, verify.outcome),
        (4, Some(AttemptOutcome::Done))
    );
}

#[tokio::test(start_paused = true)]
async fn an_effect_never_observed_fails_its_step_while_the_parallel_sibling_finishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(&dir);
    let t = Target::in_memory();
    t.script(
        "flush-cache",
        Behaviour {
            verify_never: true,
            ..Behaviour::default()
        },
    );
    let out = executor(j.clone(), &t, "test")
        .start(sandbox_plan("r1"), "test")
        .await
        .expect("run");
    let RunOutcome::Failed(failures) = out else {
        panic!("expected a failure, got {out:?}");
    };
    assert_eq!(failures[0].0, "flush-cache");
    assert!(
        failures[0]
            .1
            .contains("not observed within the step's 10m timeout")
    );
    let run_id = RunId("r1".into());
    assert_eq!(
        j.step(&run_id, "scale-up-workers").expect("step").state,
        StepState::Verified
    );
    assert_eq!(t.calls("tell-ops", "check"), 0);
    // The service did not move: the run failed.
    assert_eq!(j.service_state("sandbox-orders").expect("read"), None);
}

#[tokio::test(start_paused = true)]
async fn a_fatal_error_stops_the_run_at_once_with_the_adapters_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(&dir);
    let t = Target::in_memory();
    let denied = "AccessDenied on pg_promote for lifeboat@127.0.0.1:15433/orders: grant the lifeboat role pg_promote, then start the run again";
    t.script(
        "promote-standby",
        Behaviour {
            apply_errors: [StepError::fatal(denied)].into(),
            ..Behaviour::default()
        },
    );
    let out = executor(j.clone(), &t, "test")
        .start(sandbox_plan("r1"), "test")
        .await
        .expect("run");
    assert_eq!(
        out,
        RunOutcome::Failed(vec![("promote-standby".into(), denied.into())])
    );
    assert_eq!(
        t.calls("promote-standby", "apply"),
        1,
        "fatal is not retried"
    );
    assert_eq!(t.calls("promote-standby", "compensate"), 1);
    assert_eq!(t.calls("move-dns", "check"), 0);
    let step = j
        .step(&RunId("r1".into()), "promote-standby")
        .expect("step");
    assert_eq!(step.state, StepState::Failed);
    assert_eq!(step.error_class, Some(ErrorClass::Fatal));
    assert_eq!(step.detail.as_deref(), Some(denied));
}

#[tokio::test(start_paused = true)]
async fn a_failing_notification_is_recorded_and_the_run_still_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(&dir);
    let t = Target::in_memory();
    t.script(
        "tell-ops",
        Behaviour {
            apply_errors: [StepError::fatal("SNS topic sandbox-orders-ops not found")].into(),
            ..Behaviour::default()
        },
    );
    let out = executor(j.clone(), &t, "test")
        .start(sandbox_plan("r1"), "test")
        .await
        .expect("run");
    assert_eq!(out, RunOutcome::Completed);
    let run_id = RunId("r1".into());
    assert_eq!(
        j.step(&run_id, "tell-ops").expect("step").state,
        StepState::Failed
    );
    let state = j
        .service_state("sandbox-orders")
        .expect("read")
        .expect("set");
    assert_eq!(state.active_region.as_str(), "us-west-2");
}

#[tokio::test(start_paused = true)]
async fn a_step_that_cannot_be_built_stops_the_run_before_its_first_action() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(&dir);
    let t = Target::in_memory();
    t.script(
        "move-dns",
        Behaviour {
            build_error: Some(StepError::fatal(
                "target `dns` has no hosted zone in us-west-2: set targets.dns.zone_id",
            )),
            ..Behaviour::default()
        },
    );
    let out = executor(j.clone(), &t, "test")
        .start(sandbox_plan("r1"), "test")
        .await
        .expect("run");
    let RunOutcome::Failed(f) = out else {
        panic!("expected a failure, got {out:?}");
    };
    assert_eq!(f[0].0, "move-dns");
    assert!(f[0].1.contains("before its first action"), "{}", f[0].1);
    assert!(t.effects().is_empty(), "{:?}", t.effects());
    assert_eq!(t.calls("fence-old-primary", "check"), 0);
}

/// The audit's "500000000y" step timeout: `Instant + timeout` overflowed and panicked the
/// executor. Validation now caps timeouts, and the executor saturates for a plan that
/// carries one anyway (journaled before the cap existed).
#[tokio::test(start_paused = true)]
async fn a_step_timeout_too_large_for_the_clock_runs_the_step_instead_of_panicking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(&dir);
    let t = Target::in_memory();
    t.script(
        "fence-old-primary",
        Behaviour {
            apply_errors: retryable(2, "503 from orders-db in us-east-1"),
            ..Behaviour::default()
        },
    );
    let mut plan = sandbox_plan("r1");
    for stage in &mut plan.stages {
        for step in &mut stage.steps {
            step.timeout = Duration::MAX;
        }
    }
    let out = executor(j.clone(), &t, "test")
        .start(plan, "test")
        .await
        .expect("run");
    assert_eq!(out, RunOutcome::Completed);
    assert_eq!(
        t.calls("fence-old-primary", "apply"),
        3,
        "retried, then applied"
    );
}
