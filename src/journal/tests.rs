//! Journal tests: integrity on open, fencing, the run life cycle and its records.

use std::path::{Path, PathBuf};

use super::*;
use crate::core::ids::{Epoch, RunId};
use crate::core::model::Direction;
use crate::core::plan::{self, Plan, PlanRequest};
use crate::core::step::{AttemptOutcome, AttemptPhase, ErrorClass, RunStatus, StepState};
use crate::core::time::Ts;

/// The sandbox policy's failover plan: six steps in five stages, one of them parallel.
pub(crate) fn sandbox_plan(run_id: &str) -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/sandbox.toml");
    let (policy, _) = crate::policy::load_valid(&path).expect("the sandbox policy is valid");
    plan::build(
        &policy,
        PlanRequest {
            direction: Direction::Failover,
            from: policy.regions.primary.clone(),
            to: policy.regions.secondaries[0].clone(),
            run_id: RunId(run_id.to_string()),
            epoch: Epoch(0),
            trigger: crate::core::reason::Trigger::Operator {
                by: "test".to_string(),
                note: "primary database down for 3 rounds".to_string(),
            },
            allow_data_loss: false,
        },
    )
    .expect("the sandbox failover plans")
}

fn fresh() -> (tempfile::TempDir, PathBuf, Journal) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state").join("svc.db");
    let j = Journal::open_or_create(&path).expect("create journal");
    (dir, path, j)
}

const T0: Ts = Ts(1_795_437_296_000);

fn at(secs: u64) -> Ts {
    T0.plus(std::time::Duration::from_secs(secs))
}

#[test]
fn a_new_run_raises_the_epoch_and_records_every_planned_step() {
    let (_d, _p, j) = fresh();
    assert_eq!(j.epoch("sandbox-orders").expect("epoch"), Epoch(0));
    let (plan, fence) = j
        .begin_run(sandbox_plan("r1"), "controller (auto)", T0)
        .expect("begin");
    assert_eq!(plan.epoch, Epoch(1));
    assert_eq!(fence.epoch, Epoch(1));
    assert_eq!(j.epoch("sandbox-orders").expect("epoch"), Epoch(1));

    let run = j.run(&RunId("r1".into())).expect("run");
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.started_by, "controller (auto)");
    assert_eq!(
        run.reason,
        "requested by test: primary database down for 3 rounds"
    );
    assert!(!run.automatic, "an operator's run");
    let steps = j.steps(&run.run_id).expect("steps");
    let names: Vec<(&str, u32, StepState)> = steps
        .iter()
        .map(|s| (s.name.as_str(), s.stage, s.state))
        .collect();
    assert_eq!(
        names,
        [
            ("fence-old-primary", 1, StepState::Planned),
            ("promote-standby", 2, StepState::Planned),
            ("move-dns", 3, StepState::Planned),
            ("scale-up-workers", 4, StepState::Planned),
            ("flush-cache", 4, StepState::Planned),
            ("tell-ops", 5, StepState::Planned),
        ]
    );
    // The stored plan is the one that runs after a resume, stamped with the epoch.
    assert_eq!(j.plan(&run.run_id).expect("plan"), plan);
}

#[test]
fn writes_carrying_an_older_epoch_are_refused() {
    let (_d, path, j) = fresh();
    let (_, old) = j.begin_run(sandbox_plan("r1"), "a", T0).expect("begin");
    // A second executor (another process: its own connection) takes the run over.
    let other = Journal::open(&path).expect("open");
    let (_, new) = other
        .take_over(&old.run_id, "executor B", at(1))
        .expect("take over");
    assert_eq!(new.epoch, Epoch(2));

    let refused = j.mark_step(
        &old,
        "fence-old-primary",
        StepState::Started,
        None,
        None,
        at(2),
    );
    assert!(
        matches!(
            refused,
            Err(JournalError::StaleEpoch {
                ours: Epoch(1),
                current: Epoch(2),
                ..
            })
        ),
        "{refused:?}"
    );
    let refused = j.begin_attempt(&old, "fence-old-primary", AttemptPhase::Apply, 1, at(2));
    assert!(matches!(refused, Err(JournalError::StaleEpoch { .. })));
    assert!(matches!(
        j.complete_run(&old, at(2)),
        Err(JournalError::StaleEpoch { .. })
    ));
    // Nothing of the stale writer landed; the new owner writes normally.
    let step = j.step(&old.run_id, "fence-old-primary").expect("step");
    assert_eq!(step.state, StepState::Planned);
    assert!(step.attempts.is_empty());
    other
        .mark_step(
            &new,
            "fence-old-primary",
            StepState::Started,
            None,
            None,
            at(3),
        )
        .expect("the owner writes");
}

#[test]
fn a_second_run_of_the_service_is_refused_while_one_is_unfinished() {
    let (_d, _p, j) = fresh();
    j.begin_run(sandbox_plan("r1"), "a", T0).expect("begin");
    let e = j
        .begin_run(sandbox_plan("r2"), "a", at(1))
        .expect_err("refused");
    assert!(matches!(e, JournalError::RunInProgress { .. }), "{e}");
    assert!(e.to_string().contains("lifeboat abort r1"), "{e}");
    // The refused run raised nothing.
    assert_eq!(j.epoch("sandbox-orders").expect("epoch"), Epoch(1));
}

#[test]
fn completing_a_run_moves_the_active_region_in_the_same_transaction() {
    let (_d, _p, j) = fresh();
    let (plan, fence) = j.begin_run(sandbox_plan("r1"), "a", T0).expect("begin");
    assert_eq!(j.service_state("sandbox-orders").expect("state"), None);
    j.complete_run(&fence, at(9)).expect("complete");
    let state = j
        .service_state("sandbox-orders")
        .expect("state")
        .expect("set");
    assert_eq!(state.active_region, plan.to);
    assert_eq!(state.run_id, plan.run_id);
    let run = j.run(&plan.run_id).expect("run");
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.finished_at, Some(at(9)));
    // A finished run takes no more executor writes, even with a current epoch.
    let e = j.note(&fence, "x", "y", at(10)).expect_err("refused");
    assert!(matches!(e, JournalError::WrongStatus { .. }), "{e}");
}

#[test]
fn impossible_step_histories_are_refused() {
    let (_d, _p, j) = fresh();
    let (_, f) = j.begin_run(sandbox_plan("r1"), "a", T0).expect("begin");
    let e = j
        .mark_step(&f, "move-dns", StepState::Verified, None, None, at(1))
        .expect_err("refused");
    assert!(
        matches!(
            e,
            JournalError::IllegalTransition {
                from: StepState::Planned,
                to: StepState::Verified,
                ..
            }
        ),
        "{e}"
    );
    let e = j
        .mark_step(&f, "no-such-step", StepState::Started, None, None, at(1))
        .expect_err("refused");
    assert!(matches!(e, JournalError::UnknownStep { .. }), "{e}");
}

#[test]
fn attempts_record_write_ahead_and_outcome_and_a_crash_leaves_them_open() {
    let (_d, _p, j) = fresh();
    let (_, f) = j.begin_run(sandbox_plan("r1"), "a", T0).expect("begin");
    let s = "promote-standby";
    j.mark_step(&f, s, StepState::Started, None, None, at(1))
        .expect("started");
    let a1 = j
        .begin_attempt(&f, s, AttemptPhase::Apply, 1, at(1))
        .expect("begin 1");
    j.end_attempt(
        &f,
        a1,
        1,
        AttemptOutcome::Error,
        Some(ErrorClass::Retryable),
        "503 from the API",
        at(2),
    )
    .expect("end 1");
    j.begin_attempt(&f, s, AttemptPhase::Apply, 2, at(3))
        .expect("begin 2");
    // The process "dies" here: attempt 2 never ends.
    let step = j.step(&f.run_id, s).expect("step");
    assert_eq!(step.apply_attempts(), 2);
    assert!(!step.attempts[0].interrupted());
    assert_eq!(step.attempts[0].error_class, Some(ErrorClass::Retryable));
    assert!(step.attempts[1].interrupted());
    assert_eq!(step.started_at, Some(at(1)));
}

#[test]
fn approval_records_who_and_makes_the_run_resumable() {
    let (_d, _p, j) = fresh();
    let (_, f) = j.begin_run(sandbox_plan("r1"), "a", T0).expect("begin");
    let s = "promote-standby";
    j.mark_step(&f, s, StepState::Started, None, None, at(1))
        .expect("started");
    // Approving a run that is not waiting is refused with a pointer to `show`.
    let e = j
        .approve(&f.run_id, "alice", false, at(2))
        .expect_err("refused");
    assert!(e.to_string().contains("not waiting for an approval"), "{e}");

    let why = "replica lag 42s exceeds the RPO budget 5s";
    j.mark_step(
        &f,
        s,
        StepState::AwaitingApproval,
        Some(why),
        Some(ErrorClass::NeedsApproval),
        at(2),
    )
    .expect("awaiting");
    j.pause_run(&f, &[(s.to_string(), why.to_string())], at(2))
        .expect("pause");
    assert_eq!(
        j.run(&f.run_id).expect("run").status,
        RunStatus::AwaitingApproval
    );

    let approved = j.approve(&f.run_id, "alice", true, at(5)).expect("approve");
    assert_eq!(approved, [s]);
    let run = j.run(&f.run_id).expect("run");
    assert_eq!(run.status, RunStatus::Running);
    assert!(run.allow_data_loss);
    assert_eq!(
        j.step(&f.run_id, s).expect("step").state,
        StepState::Approved
    );
    let a = j.approval(&f.run_id, s).expect("read").expect("recorded");
    assert_eq!(
        (a.approved_by.as_str(), a.allow_data_loss, a.at),
        ("alice", true, at(5))
    );
}

#[test]
fn abort_fences_out_the_executor_and_a_finished_run_cannot_be_aborted() {
    let (_d, _p, j) = fresh();
    let (_, f) = j.begin_run(sandbox_plan("r1"), "a", T0).expect("begin");
    let epoch = j
        .abort(&f.run_id, "bob", "wrong region chosen", at(3))
        .expect("abort");
    assert_eq!(epoch, Epoch(2));
    let run = j.run(&f.run_id).expect("run");
    assert_eq!(run.status, RunStatus::Aborted);
    assert_eq!(run.outcome.as_deref(), Some("wrong region chosen"));
    assert_eq!(run.ended_by.as_deref(), Some("bob"));
    let e = j
        .mark_step(
            &f,
            "fence-old-primary",
            StepState::Started,
            None,
            None,
            at(4),
        )
        .expect_err("refused");
    assert!(matches!(e, JournalError::StaleEpoch { .. }), "{e}");

    let e = j
        .abort(&f.run_id, "bob", "again", at(5))
        .expect_err("refused");
    assert!(e.to_string().contains("nothing to abort"), "{e}");
    let e = j
        .abort(&RunId("nope".into()), "bob", "x", at(5))
        .expect_err("refused");
    assert!(matches!(e, JournalError::UnknownRun { .. }), "{e}");
    assert!(e.to_string().contains("lifeboat history"), "{e}");
    // After the abort, a new run may start.
    let (_, f2) = j.begin_run(sandbox_plan("r2"), "a", at(6)).expect("begin");
    assert_eq!(f2.epoch, Epoch(3));
}

#[test]
fn the_audit_trail_and_ended_attempts_cannot_be_rewritten() {
    let (_d, path, j) = fresh();
    let (_, f) = j.begin_run(sandbox_plan("r1"), "a", T0).expect("begin");
    j.mark_step(&f, "move-dns", StepState::Started, None, None, at(1))
        .expect("started");
    let id = j
        .begin_attempt(&f, "move-dns", AttemptPhase::Apply, 1, at(1))
        .expect("begin");
    j.end_attempt(&f, id, 1, AttemptOutcome::Done, None, "ok", at(2))
        .expect("end");
    let e = j.end_attempt(&f, id, 1, AttemptOutcome::Error, None, "rewrite", at(3));
    assert!(e.is_err(), "an ended attempt was rewritten");
    drop(j);
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    assert!(conn.execute("UPDATE audit SET detail = 'x'", []).is_err());
    assert!(conn.execute("DELETE FROM audit", []).is_err());
    assert!(conn.execute("DELETE FROM attempts", []).is_err());
}

#[test]
fn the_epoch_survives_closing_and_reopening() {
    let (_d, path, j) = fresh();
    j.begin_run(sandbox_plan("r1"), "a", T0).expect("begin");
    drop(j);
    let j = Journal::open(&path).expect("reopen");
    assert_eq!(j.epoch("sandbox-orders").expect("epoch"), Epoch(1));
    let (_, f) = j
        .take_over(&RunId("r1".into()), "b", at(1))
        .expect("take over");
    assert_eq!(f.epoch, Epoch(2));
}

#[test]
fn the_timeline_tells_the_story_in_order() {
    let (_d, _p, j) = fresh();
    let (_, f) = j.begin_run(sandbox_plan("r1"), "alice", T0).expect("begin");
    j.mark_step(&f, "move-dns", StepState::Started, None, None, at(1))
        .expect("started");
    let id = j
        .begin_attempt(&f, "move-dns", AttemptPhase::Apply, 1, at(1))
        .expect("begin");
    j.end_attempt(
        &f,
        id,
        1,
        AttemptOutcome::Done,
        None,
        "health check inverted",
        at(2),
    )
    .expect("end");
    let t = j.timeline(&f.run_id).expect("timeline");
    let lines: Vec<String> = t
        .iter()
        .map(|e| format!("{} {}", e.step.as_deref().unwrap_or("-"), e.what))
        .collect();
    assert_eq!(
        lines,
        [
            "- run started: failover us-east-1 → us-west-2 because: requested by test: primary database down for 3 rounds; fencing epoch raised to 1",
            "move-dns apply applied: health check inverted",
        ]
    );
}

// Opening: a journal that cannot be trusted is an error naming the file and what to do.

fn assert_unreadable(path: &Path, e: JournalError) {
    assert!(e.is_unreadable(), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn a_missing_journal_is_not_created_by_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("svc.db");
    let e = Journal::open(&path).expect_err("refused");
    assert!(matches!(e, JournalError::Missing { .. }), "{e}");
    assert!(!path.exists());
}

#[test]
fn a_garbage_file_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("svc.db");
    std::fs::write(
        &path,
        b"this is not a database, just some bytes ".repeat(200),
    )
    .expect("write");
    let e = Journal::open(&path).expect_err("refused");
    assert!(matches!(e, JournalError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains("lifeboat will not act on it"), "{e}");
    assert!(e.to_string().contains("restore the latest backup"), "{e}");
    assert_unreadable(&path, e);
    // `open_or_create` must not paper over it either.
    let e = Journal::open_or_create(&path).expect_err("refused");
    assert_unreadable(&path, e);
}

#[test]
fn a_truncated_journal_is_refused_as_corrupt() {
    let (_d, path, j) = fresh();
    // Enough runs that the file spans many pages.
    for i in 0..20 {
        let (_, f) = j
            .begin_run(sandbox_plan(&format!("r{i}")), "a", at(i))
            .expect("begin");
        j.abort(&f.run_id, "a", "filler", at(i)).expect("abort");
    }
    drop(j);
    let len = std::fs::metadata(&path).expect("meta").len();
    assert!(len > 16 * 4096, "journal is only {len} bytes");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_len(len / 2).expect("truncate");
    drop(f);
    let e = Journal::open(&path).expect_err("refused");
    assert!(matches!(e, JournalError::Corrupt { .. }), "{e:?}");
    assert_unreadable(&path, e);
}

#[test]
fn an_empty_file_is_refused_rather_than_treated_as_a_new_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("svc.db");
    std::fs::write(&path, b"").expect("write");
    let e = Journal::open_or_create(&path).expect_err("refused");
    assert!(e.to_string().contains("empty (0 bytes)"), "{e}");
    assert_unreadable(&path, e);
}

#[test]
fn another_applications_database_is_not_a_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&path).expect("create");
    conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .expect("fill");
    drop(conn);
    let e = Journal::open(&path).expect_err("refused");
    assert!(matches!(e, JournalError::NotAJournal { .. }), "{e:?}");
    assert_unreadable(&path, e);
}

#[test]
fn a_journal_from_a_newer_lifeboat_is_refused() {
    let (_d, path, j) = fresh();
    drop(j);
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    conn.pragma_update(None, "user_version", 99).expect("bump");
    drop(conn);
    let e = Journal::open(&path).expect_err("refused");
    assert!(matches!(e, JournalError::TooNew { found: 99, .. }), "{e:?}");
    assert!(e.to_string().contains("upgrade lifeboat"), "{e}");
}

/// A journal as version 1 of lifeboat wrote it: an automatic failover that completed,
/// an operator's run that an operator aborted, and a run left unfinished, whose plan is
/// in the old format.
fn version_1_journal(path: &Path) {
    let conn = rusqlite::Connection::open(path).expect("create");
    conn.execute_batch(&format!(
        "{}
         PRAGMA application_id = {};
         PRAGMA user_version = 1;",
        schema::V1,
        schema::APPLICATION_ID
    ))
    .expect("schema 1");
    let run = |id: &str, status: &str, by: &str, at: i64| {
        conn.execute(
            "INSERT INTO runs (run_id, service, direction, from_region, to_region, status,
                 epoch, allow_data_loss, started_by, reason, plan_json, created_at, updated_at)
             VALUES (?1, 'svc', 'failover', 'us-east-1', 'us-west-2', ?2, 1, 0, ?3, 'why',
                 '{\"stages\": [{\"steps\": [{\"name\": \"dns\", \"action\": {\"kind\": \"route53_switch\"}}]}]}',
                 ?4, ?4)",
            rusqlite::params![id, status, by, at],
        )
        .expect("run");
    };
    run(
        "auto",
        "completed",
        "lifeboat controller (automatic) (daemon pid 7)",
        1,
    );
    run("manual", "aborted", "alice via lifeboat CLI", 2);
    run("open", "running", "alice via lifeboat CLI", 3);
    conn.execute(
        "INSERT INTO audit (at, service, run_id, epoch, actor, action, detail)
         VALUES (2, 'svc', 'manual', 2, 'bob', 'run_aborted', 'wrong region')",
        [],
    )
    .expect("audit");
}

#[test]
fn a_version_1_journal_is_migrated_and_stays_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    version_1_journal(&path);
    let j = Journal::open(&path).expect("an older journal opens");
    let runs = j.runs(10).expect("runs");
    let get = |id: &str| runs.iter().find(|r| r.run_id.as_str() == id).expect("run");
    assert!(
        get("auto").automatic,
        "the one text version 1 used, read once"
    );
    assert!(!get("manual").automatic);
    assert_eq!(get("manual").ended_by.as_deref(), Some("bob"));
    // History and show still work; the old plan is not resumed by this version.
    let detail = j.detail(&RunId("open".into())).expect("detail");
    assert!(detail.plan.is_none());
    let e = j.plan(&RunId("open".into())).expect_err("old plan");
    assert!(matches!(e, JournalError::OldPlan { version: 1, .. }), "{e}");
    assert!(e.to_string().contains("lifeboat abort open"), "{e}");
    // The new table is there, and a second open migrates nothing more.
    drop(j);
    let j = Journal::open(&path).expect("reopen");
    assert!(j.decisions("svc", 5).expect("decisions").is_empty());
    let conn = rusqlite::Connection::open(&path).expect("raw");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, schema::VERSION);
}

#[test]
fn decisions_are_kept_with_their_evidence_newest_first_and_cannot_be_rewritten() {
    use crate::core::controller::{Decision, Evidence, FailingProbe};
    use crate::core::reason::{Hold, Reason};
    let (_d, path, j) = fresh();
    let hold = Decision {
        at: at(1),
        summary: "blocked".into(),
        reason: Reason::Hold(Hold::NoQuorum {
            votes: 1,
            quorum: 2,
        }),
        evidence: Evidence {
            failing: vec![FailingProbe {
                probe: "db".into(),
                region: crate::core::model::RegionName::new("us-east-1"),
                failures: 3,
                error: "connection refused".into(),
            }],
            guardrail: Some("no_quorum".into()),
            ..Evidence::default()
        },
    };
    let mut later = hold.clone();
    later.at = at(2);
    later.summary = "later".into();
    j.record_decision("svc", &hold).expect("record");
    j.record_decision("svc", &later).expect("record");
    j.record_decision("other", &hold).expect("record");
    let got = j.decisions("svc", 10).expect("read");
    assert_eq!(got, vec![later, hold]);
    let conn = rusqlite::Connection::open(&path).expect("raw");
    assert!(conn.execute("DELETE FROM decisions", []).is_err());
    assert!(
        conn.execute("UPDATE decisions SET summary = 'x'", [])
            .is_err()
    );
}

#[test]
fn the_version_changes_with_every_write_from_this_handle_or_another_and_only_then() {
    let (_d, path, j) = fresh();
    let v0 = j.version().expect("version");
    j.runs(5).expect("read");
    assert_eq!(j.version().expect("version"), v0, "a read changes nothing");
    let (_, fence) = j.begin_run(sandbox_plan("r1"), "a", T0).expect("begin");
    let v1 = j.version().expect("version");
    assert_ne!(v1, v0, "a write through this handle");
    assert_eq!(j.version().expect("version"), v1);
    // Another connection (the CLI, another process) writes: the run is taken over.
    let other = Journal::open(&path).expect("open");
    other
        .take_over(&fence.run_id, "executor B", at(1))
        .expect("take over");
    let v2 = j.version().expect("version");
    assert_ne!(v2, v1, "a commit by another connection");
    j.runs(1).expect("runs");
    assert_eq!(j.version().expect("version"), v2);
}
