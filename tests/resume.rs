//! The executor across interruptions, on tokio's paused clock: approval gates, a stale
//! executor fenced out, abort, cooperative shutdown, and resuming a run abandoned in the
//! middle of a side effect. No test sleeps for real.

mod support;

use std::sync::Arc;

use lifeboat::core::ids::{Epoch, RunId};
use lifeboat::core::step::{AttemptOutcome, AttemptPhase, RunStatus, StepState};
use lifeboat::runbook::{Cancel, RunOutcome};
use support::{Behaviour, SANDBOX_STEPS, Target, executor, journal, plan, sandbox_plan, until};
use tokio::sync::Notify;

#[tokio::test(start_paused = true)]
async fn a_manual_gate_and_an_rpo_gate_pause_the_run_until_operators_approve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(&dir);
    let t = Target::in_memory();
    t.script(
        "promote-aurora",
        Behaviour {
            rpo_gate: true,
            ..Behaviour::default()
        },
    );
    let exec = executor(j.clone(), &t, "test");
    let run_id = RunId("a1".into());
    let out = exec
        .start(
            plan("examples/aurora-global.toml", "a1"),
            "controller (auto)",
        )
        .await
        .expect("run");
    let RunOutcome::AwaitingApproval(waiting) = out else {
        panic!("expected a pause, got {out:?}");
    };
    assert_eq!(waiting[0].0, "confirm");
    assert!(waiting[0].1.contains("Confirm us-east-1 is really down"));
    assert!(t.effects().is_empty());

    // A restart does not run past the gate, and does not even take the run over.
    let again = exec
        .resume_unfinished("checkout")
        .await
        .expect("resume")
        .expect("an unfinished run");
    assert!(matches!(again.1, RunOutcome::AwaitingApproval(_)));
    assert_eq!(j.epoch("checkout").expect("epoch"), Epoch(1));

    let now = lifeboat::core::time::Ts(support::T0 + 60_000);
    assert_eq!(
        j.approve(&run_id, "alice", false, now).expect("approve"),
        ["confirm"]
    );
    let out = exec.resume(&run_id).await.expect("resume");
    let RunOutcome::AwaitingApproval(waiting) = out else {
        panic!("expected the RPO gate, got {out:?}");
    };
    assert_eq!(waiting[0].0, "promote-aurora");
    assert!(
        waiting[0].1.contains("--allow-data-loss"),
        "{}",
        waiting[0].1
    );
    let confirm = j.step(&run_id, "confirm").expect("step");
    assert_eq!(confirm.state, StepState::Verified);
    assert_eq!(confirm.detail.as_deref(), Some("approved by alice"));
    assert_eq!(t.effect_counts().get("promote-aurora"), None);

    j.approve(&run_id, "bob", true, now).expect("approve");
    let out = exec.resume(&run_id).await.expect("resume");
    assert_eq!(out, RunOutcome::Completed);
    let ctx = t.last_ctx("promote-aurora").expect("called");
    assert!(ctx.allow_data_loss);
    assert_eq!(ctx.approved_by.as_deref(), Some("bob"));
    for (step, n) in t.effect_counts() {
        assert_eq!(n, 1, "{step}");
    }
    let detail = j.detail(&run_id).expect("detail");
    let approvals: Vec<_> = detail
        .approvals
        .iter()
        .map(|a| (a.step.as_str(), a.approved_by.as_str(), a.allow_data_loss))
        .collect();
    assert_eq!(
        approvals,
        [("confirm", "alice", false), ("promote-aurora", "bob", true)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stale_executor_is_refused_and_applies_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old_journal = journal(&dir);
    let t = Target::in_memory();
    let hold = Arc::new(Notify::new());
    t.script(
        "fence-old-primary",
        Behaviour {
            hold_check: Some(hold.clone()),
            ..Behaviour::default()
        },
    );
    let old = executor(old_journal.clone(), &t, "executor A");
    let a = tokio::spawn(async move { old.start(sandbox_plan("r1"), "test").await });
    until(|| t.calls("fence-old-primary", "check") == 1).await;

    // Executor A hangs; another process (its own connection) takes the run over.
    t.script("fence-old-primary", Behaviour::default());
    let new_journal = journal(&dir);
    let b = executor(new_journal.clone(), &t, "executor B");
    let out = b.resume(&RunId("r1".into())).await.expect("resume");
    assert_eq!(out, RunOutcome::Completed);
    assert_eq!(
        new_journal.epoch("sandbox-orders").expect("epoch"),
        Epoch(2)
    );

    // A wakes up with its stale epoch: its next write is refused and it stops.
    hold.notify_one();
    let out = a.await.expect("task").expect("run");
    assert!(matches!(out, RunOutcome::Superseded(_)), "{out:?}");
    for s in SANDBOX_STEPS {
        assert_eq!(t.calls(s, "apply"), 1, "{s} applied by B only");
        assert_eq!(t.effect_counts().get(s), Some(&1), "{s}");
    }
    // Nothing A did after the takeover reached the journal: its check never ended.
    let step = new_journal
        .step(&RunId("r1".into()), "fence-old-primary")
        .expect("step");
    let from_a: Vec<_> = step
        .attempts
        .iter()
        .filter(|a| a.epoch == Epoch(1))
        .collect();
    assert_eq!(from_a.len(), 1);
    assert!(from_a[0].interrupted());
}

#[tokio::test(start_paused = true)]
async fn aborting_a_run_stops_its_executor_at_the_next_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(&dir);
    let t = Target::in_memory();
    t.script(
        "move-dns",
        Behaviour {
            verify_never: true,
            ..Behaviour::default()
        },
    );
    let exec = executor(j.clone(), &t, "test");
    let a = tokio::spawn(async move { exec.start(sandbox_plan("r1"), "test").await });
    until(|| t.calls("move-dns", "verify") >= 1).await;
    let now = lifeboat::core::time::Ts(support::T0 + 5_000);
    j.abort(&RunId("r1".into()), "carol", "drill over", now)
        .expect("abort");
    let out = a.await.expect("task").expect("run");
    assert!(matches!(out, RunOutcome::Superseded(_)), "{out:?}");
    assert_eq!(t.calls("scale-up-workers", "check"), 0);
    let run = j.run(&RunId("r1".into())).expect("run");
    assert_eq!(run.status, RunStatus::Aborted);
    assert_eq!(run.outcome.as_deref(), Some("drill over"));
    assert_eq!(run.ended_by.as_deref(), Some("carol"));
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_at_a_journaled_point_and_the_next_start_finishes_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(&dir);
    let t = Target::in_memory();
    t.script(
        "move-dns",
        Behaviour {
            verify_never: true,
            ..Behaviour::default()
        },
    );
    let cancel = Cancel::new();
    let exec = executor(j.clone(), &t, "test").cancel_on(cancel.clone());
    let a = tokio::spawn(async move { exec.start(sandbox_plan("r1"), "test").await });
    until(|| t.calls("move-dns", "verify") >= 2).await;
    cancel.cancel();
    assert_eq!(
        a.await.expect("task").expect("run"),
        RunOutcome::Interrupted
    );

    let run_id = RunId("r1".into());
    assert_eq!(j.run(&run_id).expect("run").status, RunStatus::Running);
    let dns = j.step(&run_id, "move-dns").expect("step");
    assert_eq!(dns.state, StepState::Applied);
    let verify = dns.attempts.last().expect("attempt");
    assert_eq!(verify.outcome, Some(AttemptOutcome::Cancelled));
    assert_eq!(
        t.calls("scale-up-workers", "check"),
        0,
        "no new step started"
    );

    t.script("move-dns", Behaviour::default());
    let out = executor(j.clone(), &t, "test")
        .resume_unfinished("sandbox-orders")
        .await
        .expect("resume")
        .expect("an unfinished run");
    assert_eq!(out, (run_id.clone(), RunOutcome::Completed));
    assert_eq!(t.calls("move-dns", "apply"), 1, "checked, not re-applied");
    let dns = j.step(&run_id, "move-dns").expect("step");
    assert_eq!(
        dns.state,
        StepState::Verified,
        "ours, so verified not skipped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_abandoned_in_the_middle_of_apply_resumes_through_check_without_reapplying() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = journal(&dir);
    let t = Target::in_memory();
    t.script(
        "promote-standby",
        Behaviour {
            hang_after_apply: Some(Arc::new(Notify::new())),
            ..Behaviour::default()
        },
    );
    let exec = executor(j.clone(), &t, "process 1");
    let a = tokio::spawn(async move { exec.start(sandbox_plan("r1"), "test").await });
    until(|| t.effect_counts().contains_key("promote-standby")).await;
    // The process "dies": the effect happened, the journal never heard back.
    a.abort();
    assert!(a.await.expect_err("aborted").is_cancelled());

    let run_id = RunId("r1".into());
    let promote = j.step(&run_id, "promote-standby").expect("step");
    assert_eq!(promote.state, StepState::Started);
    assert!(promote.attempts.last().expect("attempt").interrupted());

    t.script("promote-standby", Behaviour::default());
    let out = executor(j.clone(), &t, "process 2")
        .resume(&run_id)
        .await
        .expect("resume");
    assert_eq!(out, RunOutcome::Completed);
    for s in SANDBOX_STEPS {
        assert_eq!(t.effect_counts().get(s), Some(&1), "{s}");
    }
    assert_eq!(t.calls("promote-standby", "apply"), 1);
    assert_eq!(t.calls("promote-standby", "check"), 2);
    let promote = j.step(&run_id, "promote-standby").expect("step");
    assert_eq!(promote.state, StepState::Verified);
    let phases: Vec<_> = promote
        .attempts
        .iter()
        .map(|a| (a.phase, a.outcome, a.epoch))
        .collect();
    assert_eq!(
        phases,
        [
            (AttemptPhase::Check, Some(AttemptOutcome::NotDone), Epoch(1)),
            (AttemptPhase::Apply, None, Epoch(1)),
            (AttemptPhase::Check, Some(AttemptOutcome::Done), Epoch(2)),
            (AttemptPhase::Verify, Some(AttemptOutcome::Done), Epoch(2)),
        ]
    );
}
