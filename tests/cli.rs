//! The `history`, `show`, `approve` and `abort` commands, run as the real binary against
//! journals the tests fill through the library (on tokio's paused clock, so times and
//! durations in the output are exact).

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use expect_test::expect;
use lifeboat::core::ids::RunId;
use lifeboat::core::step::RunStatus;
use lifeboat::journal::Journal;
use lifeboat::runbook::{Backoff, RetrySettings, RunOutcome, StepError};
use support::{Behaviour, Target, executor, plan, sandbox_plan};
use tokio::sync::Notify;

const RUN: &str = "fo-20261123-123456-7f3a";

fn lifeboat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .env_remove("LIFEBOAT_STATE_DIR")
        .output()
        .expect("run lifeboat")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fixed delays, so the journaled times are the same on every run.
fn steady_retries() -> RetrySettings {
    let b = Backoff {
        first: Duration::from_secs(2),
        max: Duration::from_secs(2),
        factor: 1.0,
        jitter: false,
    };
    RetrySettings {
        apply: b,
        verify: b,
    }
}

/// A failover that host A starts, that dies in the middle of promoting the standby,
/// and that host B resumes and finishes 30 s later.
async fn resumed_run(path: &Path) {
    let journal = Arc::new(Journal::open_or_create(path).expect("journal"));
    let t = Target::in_memory();
    t.script(
        "promote-standby",
        Behaviour {
            apply_errors: [StepError::retryable(
                "Throttling on pg_promote of lifeboat@127.0.0.1:15433/orders: too many connections; retrying",
            )]
            .into(),
            hang_after_apply: Some(Arc::new(Notify::new())),
            ..Behaviour::default()
        },
    );
    let a = executor(journal.clone(), &t, "lifeboat on host-a (pid 101)").retry(steady_retries());
    let task = tokio::spawn(async move { a.start(sandbox_plan(RUN), "controller (auto)").await });
    while !t.effect_counts().contains_key("promote-standby") {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();
    let _ = task.await;

    tokio::time::advance(Duration::from_secs(30)).await;
    t.script(
        "move-dns",
        Behaviour {
            verify_not_yet: 2,
            ..Behaviour::default()
        },
    );
    t.script(
        "tell-ops",
        Behaviour {
            apply_errors: [StepError::fatal(
                "SNS topic arn:aws:sns:us-east-1:123456789012:sandbox-orders-ops not found: create it or fix channels.ops.topic_arn",
            )]
            .into(),
            ..Behaviour::default()
        },
    );
    let b = executor(journal, &t, "lifeboat on host-b (pid 202)").retry(steady_retries());
    let out = b.resume(&RunId(RUN.into())).await.expect("resume");
    assert_eq!(out, RunOutcome::Completed);
}

#[tokio::test(start_paused = true)]
async fn show_prints_the_timeline_of_a_resumed_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    resumed_run(&path).await;
    let j = path.to_str().expect("utf-8 path");
    let out = lifeboat(&["show", RUN, "--journal", j]);
    assert!(out.status.success(), "{}", stderr(&out));
    expect![[r#"
        Run fo-20261123-123456-7f3a · failover of `sandbox-orders`: us-east-1 → us-west-2
          status     completed at 2026-11-23T12:35:32.100Z (took 36.1s)
          started    2026-11-23T12:34:56.000Z by controller (auto)
          why        requested by test: primary region down: 3 failed rounds of db
          epoch      2
          data loss  not accepted

        Stage 1
          fence-old-primary  verified  took 0s  [postgres_fence in us-east-1]
                   +0s  check      #1       not in place             0s  epoch 1  fence-old-primary absent
                   +0s  apply      #1       done                     0s  epoch 1  fence-old-primary applied at epoch 1
                   +0s  verify     1 obs.   done                     0s  epoch 1  fence-old-primary visible
              → fence-old-primary visible

        Stage 2
          promote-standby  verified  took 32.1s  [postgres_promote in us-west-2]
                   +0s  check      #1       not in place             0s  epoch 1  promote-standby absent
                   +0s  apply      #1       error (retryable)        0s  epoch 1  Throttling on pg_promote of lifeboat@127.0.0.1:15433/orders: too many connections; retrying
                   +2s  apply      #2       interrupted               —  epoch 1  the process stopped during this attempt
                +32.1s  check      #1       in place                 0s  epoch 2  promote-standby found
                +32.1s  verify     1 obs.   done                     0s  epoch 2  promote-standby visible
              → promote-standby visible

        Stage 3
          move-dns  verified  took 4s  [route53_switch in us-west-2]
                +32.1s  check      #1       not in place             0s  epoch 2  move-dns absent
                +32.1s  apply      #1       done                     0s  epoch 2  move-dns applied at epoch 2
                +32.1s  verify     3 obs.   done                     4s  epoch 2  move-dns visible
              → move-dns visible

        Stage 4 · capacity — in parallel
          scale-up-workers  verified  took 0s  [asg_scale in us-west-2]
                +36.1s  check      #1       not in place             0s  epoch 2  scale-up-workers absent
                +36.1s  apply      #1       done                     0s  epoch 2  scale-up-workers applied at epoch 2
                +36.1s  verify     1 obs.   done                     0s  epoch 2  scale-up-workers visible
              → scale-up-workers visible
          flush-cache  verified  took 0s  [redis_invalidate in us-west-2]
                +36.1s  check      #1       not in place             0s  epoch 2  flush-cache absent
                +36.1s  apply      #1       done                     0s  epoch 2  flush-cache applied at epoch 2
                +36.1s  verify     1 obs.   done                     0s  epoch 2  flush-cache visible
              → flush-cache visible

        Stage 5
          tell-ops  failed  took 0s  [notify in us-west-2]
                +36.1s  check      #1       not in place             0s  epoch 2  tell-ops absent
                +36.1s  apply      #1       error (fatal)            0s  epoch 2  SNS topic arn:aws:sns:us-east-1:123456789012:sandbox-orders-ops not found: create it or fix channels.ops.topic_arn
                +36.1s  compensate          done                     0s  epoch 2  compensated
              → SNS topic arn:aws:sns:us-east-1:123456789012:sandbox-orders-ops not found: create it or fix channels.ops.topic_arn (fatal)

        Audit trail
          2026-11-23T12:34:56.000Z  run_started      epoch 1   controller (auto)
              failover us-east-1 → us-west-2 because: requested by test: primary region down: 3 failed rounds of db; fencing epoch raised to 1
          2026-11-23T12:35:28.100Z  run_resumed      epoch 2   lifeboat on host-b (pid 202)
              resumed the unfinished run; fencing epoch raised from 1 to 2
          2026-11-23T12:35:32.100Z  run_completed    epoch 2   lifeboat on host-b (pid 202)
              every step done; `sandbox-orders` now runs in us-west-2
    "#]].assert_eq(&stdout(&out));

    let out = lifeboat(&["show", RUN, "--journal", j, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    support::contract::assert_output_valid("show", &out.stdout);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["run"]["status"], "completed");
    assert_eq!(doc["run"]["epoch"], 2);
    assert_eq!(doc["steps"][1]["name"], "promote-standby");
    assert_eq!(
        doc["steps"][1]["attempts"][2]["finished_at"],
        serde_json::Value::Null
    );
}

#[tokio::test(start_paused = true)]
async fn history_lists_runs_newest_first_with_why_and_how_they_ended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    resumed_run(&path).await;
    let journal = Journal::open(&path).expect("journal");
    let mut second = sandbox_plan("fb-20261123-130000-0001");
    second.trigger = lifeboat::core::reason::Trigger::Operator {
        by: "drill".to_string(),
        note: "fail back".to_string(),
    };
    journal
        .begin_run(
            second,
            "bob via lifeboat failback",
            lifeboat::core::time::Ts(support::T0 + 60_000),
        )
        .expect("begin");
    journal
        .abort(
            &RunId("fb-20261123-130000-0001".into()),
            "bob",
            "drill cancelled",
            lifeboat::core::time::Ts(support::T0 + 61_000),
        )
        .expect("abort");

    let out = lifeboat(&["history", "--journal", path.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    expect![[r#"
        RUN                      DIRECTION  FROM → TO              STATUS     STARTED                   TOOK   STARTED BY
        fb-20261123-130000-0001  failover   us-east-1 → us-west-2  aborted    2026-11-23T12:35:56.000Z  1s     bob via lifeboat failback
            why: requested by drill: fail back
            end: aborted by bob: drill cancelled
        fo-20261123-123456-7f3a  failover   us-east-1 → us-west-2  completed  2026-11-23T12:34:56.000Z  36.1s  controller (auto)
            why: requested by test: primary region down: 3 failed rounds of db
    "#]].assert_eq(&stdout(&out));

    let out = lifeboat(&[
        "history",
        "--journal",
        path.to_str().expect("utf-8"),
        "--json",
    ]);
    support::contract::assert_output_valid("history", &out.stdout);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc[0]["status"], "aborted");
    assert_eq!(doc[1]["run_id"], RUN);
}

#[tokio::test(start_paused = true)]
async fn approve_records_who_approved_and_a_second_approval_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("checkout.db");
    let journal = Arc::new(Journal::open_or_create(&path).expect("journal"));
    let t = Target::in_memory();
    let out = executor(journal.clone(), &t, "daemon")
        .start(
            plan("examples/aurora-global.toml", "a1"),
            "controller (auto)",
        )
        .await
        .expect("run");
    assert!(matches!(out, RunOutcome::AwaitingApproval(_)), "{out:?}");
    let j = path.to_str().expect("utf-8");

    let out = lifeboat(&[
        "approve",
        "a1",
        "--by",
        "alice",
        "--allow-data-loss",
        "--journal",
        j,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Approved step(s) confirm of run a1 as alice. Data loss accepted"),
        "{}",
        stdout(&out)
    );
    let run = journal.run(&RunId("a1".into())).expect("run");
    assert_eq!(run.status, RunStatus::Running);
    assert!(run.allow_data_loss);

    let out = lifeboat(&["approve", "a1", "--by", "alice", "--journal", j]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("run a1 is running: it is not waiting for an approval"),
        "{}",
        stderr(&out)
    );

    let out = lifeboat(&["show", "a1", "--journal", j]);
    assert!(
        stdout(&out).contains("alice approved `confirm`, data loss accepted"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(start_paused = true)]
async fn abort_ends_an_unfinished_run_and_refuses_a_finished_or_unknown_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    resumed_run(&path).await;
    let journal = Journal::open(&path).expect("journal");
    let (_, _) = journal
        .begin_run(
            sandbox_plan("r2"),
            "test",
            lifeboat::core::time::Ts(support::T0 + 90_000),
        )
        .expect("begin");
    let j = path.to_str().expect("utf-8");

    let out = lifeboat(&["abort", RUN, "--reason", "x", "--by", "bob", "--journal", j]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("run {RUN} is completed: it already ended at")),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("there is nothing to abort"),
        "{}",
        stderr(&out)
    );

    let out = lifeboat(&[
        "abort",
        "nope",
        "--reason",
        "x",
        "--by",
        "bob",
        "--journal",
        j,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no run `nope`"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("lifeboat history"),
        "{}",
        stderr(&out)
    );

    let out = lifeboat(&["approve", "nope", "--by", "bob", "--journal", j]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no run `nope`"), "{}", stderr(&out));

    let out = lifeboat(&[
        "abort",
        "r2",
        "--reason",
        "operator chose to stay",
        "--by",
        "bob",
        "--journal",
        j,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("fencing epoch now 4"),
        "{}",
        stdout(&out)
    );
    let run = journal.run(&RunId("r2".into())).expect("run");
    assert_eq!(run.status, RunStatus::Aborted);
    assert_eq!(run.outcome.as_deref(), Some("operator chose to stay"));
    assert_eq!(run.ended_by.as_deref(), Some("bob"));
}

#[test]
fn a_damaged_journal_is_reported_with_what_to_do_and_exit_status_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    std::fs::write(&path, b"not a database at all ".repeat(100)).expect("write");
    let j = path.to_str().expect("utf-8");
    for args in [
        vec!["history", "--journal", j],
        vec!["show", RUN, "--journal", j],
        vec!["approve", RUN, "--by", "a", "--journal", j],
        vec!["abort", RUN, "--reason", "x", "--by", "a", "--journal", j],
    ] {
        let out = lifeboat(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("journal {j} cannot be read")),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("lifeboat will not act on it"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn the_journal_is_found_from_the_policy_or_the_state_dir_and_never_created_by_reading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples/rds-replica.toml");
    let state = dir.path().to_str().expect("utf-8");
    let out = lifeboat(&[
        "history",
        "--policy",
        policy.to_str().expect("utf-8"),
        "--state-dir",
        state,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let expected = dir.path().join("ledger.db");
    assert!(
        stderr(&out).contains(&format!("no journal at {}", expected.display())),
        "{}",
        stderr(&out)
    );
    assert!(!expected.exists(), "reading created a journal");

    // With no --policy, history reads the same service as status and failover: the
    // default policy's journal.
    let here = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(here.path().join("policies")).expect("mkdir");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/sandbox.toml"),
        here.path().join("policies/sandbox.toml"),
    )
    .expect("copy the sandbox policy");
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .arg("history")
        .current_dir(here.path())
        .output()
        .expect("run lifeboat");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("no journal at") && err.contains(".lifeboat/sandbox/journal.db"),
        "{err}"
    );
}

#[test]
fn a_policy_on_the_etcd_backend_validates_but_no_controller_acts_on_it_alone() {
    let dir = support::tempdir();
    let state = dir.path().to_str().expect("utf-8");
    let policy = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/examples/aurora-global-ha.toml"
    );
    let out = lifeboat(&["validate", policy]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    fn run<'a>(policy: &'a str, state: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["run", "--policy", policy, "--state-dir", state];
        args.extend_from_slice(extra);
        args
    }
    for (args, says) in [
        (
            run(policy, state, &[]),
            "name this controller with --node NAME, one of the observers it lists (ctl-use1, ctl-usw2, obs-use2)",
        ),
        (
            run(policy, state, &["--node", "ctl-euw1"]),
            "--node ctl-euw1 is not among the policy's observers",
        ),
        (
            vec![
                "failover",
                "--policy",
                policy,
                "--state-dir",
                state,
                "--by",
                "alice",
                "--yes",
            ],
            "cannot act for `checkout` on its own: its policy selects [coordination] backend = \"etcd\"",
        ),
    ] {
        let out = lifeboat(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
