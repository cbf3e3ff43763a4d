//! Crash tests: the process running a failover is killed at every failpoint (every step ×
//! before/after apply and verify), restarted, and must finish the run with each step's
//! effect applied exactly once and a consistent journal.
//!
//! The killed process is this test binary itself, re-run as a child (`crash_child`) with
//! `LIFEBOAT_FAILPOINT` armed. Effects go to a file, one line per apply, so they survive
//! the kill. Needs `--features failpoints` (Cargo.toml skips this file without it).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use lifeboat::core::ids::{Epoch, RunId};
use lifeboat::core::step::{AttemptPhase, RunStatus, StepState};
use lifeboat::journal::Journal;
use lifeboat::runbook::failpoint::{self, Point};
use lifeboat::runbook::{Executor, RunOutcome};
use support::{Factory, Target, sandbox_plan};

/// Set in a child: the directory holding its journal and effects file.
const CHILD_ENV: &str = "LIFEBOAT_CRASH_CHILD";
const RUN: &str = "fo-crash";
const SERVICE: &str = "sandbox-orders";
/// Child exit status when the journal cannot be opened.
const UNREADABLE: i32 = 3;

/// The child: starts the sandbox failover with fake steps, or resumes it if a previous
/// process left it unfinished, and exits 0 once it is complete.
#[test]
#[ignore = "helper: run by the crash tests in a child process, does nothing on its own"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let code = rt.block_on(async {
        let journal = match Journal::open_or_create(&dir.join("journal.db")) {
            Ok(j) => Arc::new(j),
            Err(e) => {
                eprintln!("error: {e}");
                return UNREADABLE;
            }
        };
        let target = Target::in_file(&dir.join("effects"));
        let exec = Executor::new(journal.clone(), Arc::new(Factory(target)))
            .actor(format!("crash child (pid {})", std::process::id()));
        let run_id = RunId(RUN.to_string());
        let outcome = match journal.run(&run_id) {
            Ok(run) if run.status == RunStatus::Completed => Ok(RunOutcome::Completed),
            Ok(_) => exec.resume(&run_id).await,
            Err(_) => exec.start(sandbox_plan(RUN), "crash test").await,
        };
        match outcome {
            Ok(RunOutcome::Completed) => 0,
            other => {
                eprintln!("run did not complete: {other:?}");
                2
            }
        }
    });
    std::process::exit(code);
}

/// Runs `crash_child` in a new process on `dir`, with `failpoint` armed.
fn child(dir: &Path, failpoint: Option<&str>) -> Output {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new(exe);
    cmd.args([
        "crash_child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, dir)
    .env_remove(failpoint::ENV);
    if let Some(fp) = failpoint {
        cmd.env(failpoint::ENV, fp);
    }
    cmd.output().expect("run child")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The journal and the effects agree: the run completed, every step was applied exactly
/// once and verified, the epoch was raised once per process, and the service moved.
fn assert_consistent(dir: &Path, processes: u64, what: &str) {
    let effects = Target::in_file(&dir.join("effects")).effect_counts();
    let plan = sandbox_plan(RUN);
    for s in plan.steps() {
        assert_eq!(
            effects.get(&s.name),
            Some(&1),
            "{what}: effect of {}",
            s.name
        );
    }
    assert_eq!(effects.len(), plan.steps().count(), "{what}: {effects:?}");

    let j = Journal::open(&dir.join("journal.db")).expect("journal readable");
    let run_id = RunId(RUN.into());
    let run = j.run(&run_id).expect("run");
    assert_eq!(run.status, RunStatus::Completed, "{what}");
    assert_eq!(run.epoch, Epoch(processes), "{what}: one epoch per process");
    assert_eq!(j.epoch(SERVICE).expect("epoch"), Epoch(processes), "{what}");
    let state = j.service_state(SERVICE).expect("read").expect("set");
    assert_eq!(state.active_region.as_str(), "us-west-2", "{what}");
    for step in j.steps(&run_id).expect("steps") {
        // Every step was applied by this run, so none may claim it was skipped.
        assert_eq!(step.state, StepState::Verified, "{what}: {}", step.name);
        let latest = Epoch(processes);
        assert!(
            step.attempts
                .iter()
                .filter(|a| a.epoch == latest)
                .all(|a| !a.interrupted()),
            "{what}: the last process left {} unfinished",
            step.name
        );
    }
    let actions: Vec<String> = j
        .detail(&run_id)
        .expect("detail")
        .audit
        .into_iter()
        .map(|a| a.action)
        .collect();
    let mut expected = vec!["run_started".to_string()];
    expected.extend((1..processes).map(|_| "run_resumed".to_string()));
    expected.push("run_completed".to_string());
    assert_eq!(actions, expected, "{what}");
}

#[test]
fn killing_the_process_at_every_failpoint_and_restarting_applies_each_effect_once() {
    let plan = sandbox_plan(RUN);
    let steps: Vec<String> = plan.steps().map(|s| s.name.clone()).collect();
    assert!(steps.len() >= 6, "the runbook has {} steps", steps.len());
    assert!(
        plan.stages.iter().any(|s| s.steps.len() > 1),
        "no parallel stage"
    );

    let mut covered = 0;
    for step in &steps {
        for point in Point::ALL {
            let fp = point.arm(step);
            let dir = tempfile::tempdir().expect("tempdir");
            let first = child(dir.path(), Some(&fp));
            assert_eq!(
                first.status.code(),
                Some(failpoint::EXIT_CODE),
                "{fp}: the failpoint did not stop the process; stderr:\n{}",
                stderr(&first)
            );
            let second = child(dir.path(), None);
            assert!(
                second.status.success(),
                "{fp}: the restarted process did not finish the run; stderr:\n{}",
                stderr(&second)
            );
            assert_consistent(dir.path(), 2, &fp);

            // Where the kill landed is visible in the journal: an apply or verify left
            // unfinished by the first process, or (before verify) none at all.
            let j = Journal::open(&dir.path().join("journal.db")).expect("journal");
            let record = j.step(&RunId(RUN.into()), step).expect("step");
            let cut: Vec<AttemptPhase> = record
                .attempts
                .iter()
                .filter(|a| a.interrupted())
                .map(|a| a.phase)
                .collect();
            let expected = match point {
                Point::BeforeApply | Point::AfterApply => vec![AttemptPhase::Apply],
                Point::BeforeVerify => vec![],
                Point::AfterVerify => vec![AttemptPhase::Verify],
            };
            assert_eq!(cut, expected, "{fp}");
            covered += 1;
        }
    }
    assert_eq!(covered, steps.len() * Point::ALL.len());
    assert!(covered >= 24);
}

#[test]
fn a_restart_that_is_itself_killed_is_finished_by_the_next_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kills = [
        "promote-standby:after_apply",
        "flush-cache:after_apply",
        "tell-ops:before_verify",
    ];
    for fp in kills {
        let out = child(dir.path(), Some(fp));
        assert_eq!(
            out.status.code(),
            Some(failpoint::EXIT_CODE),
            "{fp}: {}",
            stderr(&out)
        );
    }
    let last = child(dir.path(), None);
    assert!(last.status.success(), "{}", stderr(&last));
    assert_consistent(dir.path(), kills.len() as u64 + 1, "three kills in a row");
}

#[test]
fn lifeboat_does_not_act_on_a_journal_it_cannot_read() {
    for (name, damage) in [
        ("garbage", damage_with_garbage as fn(&Path)),
        ("truncated", damage_by_truncating),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        // A first process gets half way, then the journal is damaged.
        let out = child(dir.path(), Some("move-dns:before_apply"));
        assert_eq!(out.status.code(), Some(failpoint::EXIT_CODE), "{name}");
        let before = Target::in_file(&dir.path().join("effects")).effects();
        damage(&dir.path().join("journal.db"));

        let out = child(dir.path(), None);
        assert_eq!(
            out.status.code(),
            Some(UNREADABLE),
            "{name}: {}",
            stderr(&out)
        );
        let msg = stderr(&out);
        assert!(msg.contains("journal.db cannot be read"), "{name}: {msg}");
        assert!(msg.contains("lifeboat will not act on it"), "{name}: {msg}");
        let after = Target::in_file(&dir.path().join("effects")).effects();
        assert_eq!(before, after, "{name}: something was applied");
    }
}

fn damage_with_garbage(path: &Path) {
    let _ = std::fs::remove_file(path.with_extension("db-wal"));
    let _ = std::fs::remove_file(path.with_extension("db-shm"));
    std::fs::write(path, vec![0xA5; 64 * 1024]).expect("overwrite");
}

fn damage_by_truncating(path: &Path) {
    // Fold the WAL into the main file first, so the truncation hits real pages.
    {
        let conn = rusqlite::Connection::open(path).expect("open");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("checkpoint");
    }
    let len = std::fs::metadata(path).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    f.set_len(len / 2).expect("truncate");
}
