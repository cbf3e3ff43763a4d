//! What the controller remembers after a restart, from the journal's facts alone.

use super::*;
use crate::core::reason::{Hold, Note, Reason, Trigger};
use crate::core::step::RunStatus;

fn fact(
    run: &str,
    automatic: bool,
    status: RunStatus,
    created: u64,
    finished: Option<u64>,
) -> RunFact {
    RunFact {
        run: RunId(run.into()),
        direction: Direction::Failover,
        to: r("west"),
        status,
        automatic,
        epoch: Epoch(1),
        created_at: Ts::from_secs(created),
        finished_at: finished.map(Ts::from_secs),
        waiting: None,
    }
}

fn decision(at: u64, reason: Reason) -> Decision {
    Decision {
        at: Ts::from_secs(at),
        summary: "s".into(),
        reason,
        evidence: Evidence::default(),
    }
}

fn memory(runs: Vec<RunFact>, last: Option<Decision>) -> Memory {
    Memory {
        active: r("east"),
        paused: None,
        runs,
        last_decision: last,
    }
}

#[test]
fn the_window_limit_counts_only_automatic_failovers_inside_the_window() {
    let sim = Sim::with(|p| p.guardrails.failover_window = std::time::Duration::from_secs(3600));
    let now = Ts::from_secs(10_000);
    let runs = vec![
        fact("old-auto", true, RunStatus::Completed, 100, Some(110)),
        fact("auto", true, RunStatus::Completed, 9_000, Some(9_010)),
        fact("manual", false, RunStatus::Completed, 9_500, Some(9_520)),
    ];
    let s = restore(&sim.policy, memory(runs, None), now);
    assert_eq!(s.auto_failovers, vec![Ts::from_secs(9_000)]);
    assert_eq!(
        s.last_switch,
        Some(Ts::from_secs(9_520)),
        "the newest completed run"
    );
    assert_eq!(s.phase, Phase::Primary);
}

#[test]
fn an_unfinished_run_comes_back_as_in_progress_with_what_it_waits_for() {
    let sim = Sim::new();
    let mut waiting = fact("r9", true, RunStatus::AwaitingApproval, 50, None);
    waiting.waiting = Some("step promote: replica lag 42s".into());
    let s = restore(&sim.policy, memory(vec![waiting], None), Ts::from_secs(60));
    match s.phase {
        Phase::FailingOver {
            run, waiting, to, ..
        } => {
            assert_eq!(run, RunId("r9".into()));
            assert_eq!(to, r("west"));
            assert_eq!(waiting.as_deref(), Some("step promote: replica lag 42s"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_last_hold_comes_back_so_status_can_say_why_at_once() {
    let sim = Sim::new();
    let failed = Hold::RunFailed {
        run: RunId("r1".into()),
        error: "step promote: denied".into(),
    };
    let s = restore(
        &sim.policy,
        memory(vec![], Some(decision(40, Reason::Hold(failed.clone())))),
        Ts::from_secs(60),
    );
    assert_eq!(
        s.phase,
        Phase::Blocked {
            hold: failed,
            since: Ts::from_secs(40)
        }
    );
    assert!(s.last_decision.is_some());
    // A pause comes back from its own record, a note blocks nothing.
    let paused = Hold::Paused {
        by: "a".into(),
        reason: "b".into(),
    };
    for last in [
        Reason::Hold(paused),
        Reason::Note(Note::FreezeOver),
        Reason::Trigger(Trigger::Operator {
            by: "a".into(),
            note: String::new(),
        }),
    ] {
        let s = restore(
            &sim.policy,
            memory(vec![], Some(decision(40, last))),
            Ts::from_secs(60),
        );
        assert_eq!(s.phase, Phase::Primary);
    }
}
