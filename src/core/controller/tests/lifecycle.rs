//! Golden traces of runs and operator commands: start, wait, finish, fail, refuse, fail back.

use expect_test::expect;

use super::{Sim, failover, r};
use crate::core::controller::*;
use crate::core::ids::RunId;

#[test]
fn a_primary_down_by_the_threshold_fails_over_to_the_first_healthy_secondary() {
    let mut sim = Sim::new();
    sim.health(0, "east=ok west=ok eu=ok")
        .health(10, "east=suspect west=ok eu=ok")
        .health(30, "east=down west=ok eu=ok lag=1s")
        .started(31)
        .health(40, "east=down west=ok eu=ok")
        .finished(45, RunEnd::Completed)
        .health(50, "east=down west=ok eu=ok");
    assert_eq!(sim.state.active, r("west"));
    sim.check(expect![[r#"
        t=0     health east=ok west=ok eu=ok       → primary
        t=10    health east=suspect west=ok eu=ok  → suspect
        t=30    health east=down west=ok eu=ok lag=1s → starting
                  ALERT starting failover east → west automatically
                  RECORD starting failover east → west automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:00:30.000Z)
                  START failover east→west auto
        t=31    run r1 started                     → failing_over
                  RECORD run started: failover run r1 started (fencing epoch 1) toward west
        t=40    health east=down west=ok eu=ok     → failing_over
        t=45    run r1 Completed                   → on_secondary
                  ALERT failover completed
                  RECORD failover completed: failover run r1 completed; west serves now
        t=50    health east=down west=ok eu=ok     → on_secondary
    "#]]);
}

#[test]
fn a_failed_run_blocks_until_a_person_resumes() {
    let mut sim = Sim::new();
    sim.health(30, "east=down west=ok eu=ok")
        .started(31)
        .finished(
            40,
            RunEnd::Failed {
                error: "step promote-standby: PostgreSQL refused pg_promote".into(),
            },
        )
        .health(50, "east=down west=ok eu=ok")
        .health(60, "east=ok west=ok eu=ok")
        .op(70, "resume", OperatorCommand::Resume { by: "alice".into() })
        .health(80, "east=ok west=ok eu=ok");
    sim.check(expect![[r#"
        t=30    health east=down west=ok eu=ok     → starting
                  ALERT starting failover east → west automatically
                  RECORD starting failover east → west automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:00:30.000Z)
                  START failover east→west auto
        t=31    run r1 started                     → failing_over
                  RECORD run started: failover run r1 started (fencing epoch 1) toward west
        t=40    run r1 Failed { error: "step promote-standby: PostgreSQL refused pg_promote" } → blocked [run_failed]
                  ALERT blocked
                  RECORD blocked: run r1 failed: step promote-standby: PostgreSQL refused pg_promote
        t=50    health east=down west=ok eu=ok     → blocked [run_failed]
        t=60    health east=ok west=ok eu=ok       → blocked [run_failed]
        t=70    resume                             → primary
                  RECORD resumed automatic decisions: at the request of alice
        t=80    health east=ok west=ok eu=ok       → primary
    "#]]);
}

#[test]
fn failback_waits_for_a_healthy_resynced_primary() {
    let mut sim = Sim::new();
    sim.health(30, "east=down west=ok eu=ok")
        .started(31)
        .finished(40, RunEnd::Completed)
        .health(100, "east=ok west=ok eu=ok healthy_since=90 unsynced")
        .op(
            110,
            "failback",
            OperatorCommand::Failback {
                by: "alice".into(),
                note: "primary fixed".into(),
            },
        )
        .health(800, "east=ok west=ok eu=ok healthy_since=90 unsynced")
        .op(
            801,
            "failback",
            OperatorCommand::Failback {
                by: "alice".into(),
                note: "primary fixed".into(),
            },
        )
        .health(900, "east=ok west=ok eu=ok healthy_since=90 synced")
        .op(
            901,
            "failback",
            OperatorCommand::Failback {
                by: "alice".into(),
                note: "primary fixed".into(),
            },
        )
        .started(902)
        .finished(920, RunEnd::Completed);
    assert_eq!(sim.state.active, r("east"));
    assert_eq!(sim.state.phase, Phase::Primary);
    sim.check(expect![[r#"
        t=30    health east=down west=ok eu=ok     → starting
                  ALERT starting failover east → west automatically
                  RECORD starting failover east → west automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:00:30.000Z)
                  START failover east→west auto
        t=31    run r1 started                     → failing_over
                  RECORD run started: failover run r1 started (fencing epoch 1) toward west
        t=40    run r1 Completed                   → on_secondary
                  ALERT failover completed
                  RECORD failover completed: failover run r1 completed; west serves now
        t=100   health east=ok west=ok eu=ok healthy_since=90 unsynced → on_secondary
        t=110   failback                           → on_secondary
                  REFUSE east has been healthy for 1m50s, failback needs 10m
        t=800   health east=ok west=ok eu=ok healthy_since=90 unsynced → on_secondary
        t=801   failback                           → on_secondary
                  REFUSE east's data is not resynced: its database is not a streaming standby of the serving one
        t=900   health east=ok west=ok eu=ok healthy_since=90 synced → on_secondary
        t=901   failback                           → starting
                  RECORD starting failback west → east on request: requested by alice: primary fixed
                  START failback west→east manual
        t=902   run r2 started                     → failing_back
                  RECORD run started: failback run r2 started (fencing epoch 2) toward east
        t=920   run r2 Completed                   → primary
                  ALERT failback completed
                  RECORD failback completed: failback run r2 completed; east serves now
    "#]]);
}

#[test]
fn automatic_failback_runs_only_when_the_policy_allows_it() {
    let mut sim = Sim::with(|p| p.guardrails.auto_failback = true);
    sim.health(30, "east=down west=ok eu=ok")
        .started(31)
        .finished(40, RunEnd::Completed)
        .health(500, "east=ok west=ok eu=ok healthy_since=100 synced")
        .health(710, "east=ok west=ok eu=ok healthy_since=100 synced");
    sim.check(expect![[r#"
        t=30    health east=down west=ok eu=ok     → starting
                  ALERT starting failover east → west automatically
                  RECORD starting failover east → west automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:00:30.000Z)
                  START failover east→west auto
        t=31    run r1 started                     → failing_over
                  RECORD run started: failover run r1 started (fencing epoch 1) toward west
        t=40    run r1 Completed                   → on_secondary
                  ALERT failover completed
                  RECORD failover completed: failover run r1 completed; west serves now
        t=500   health east=ok west=ok eu=ok healthy_since=100 synced → on_secondary
        t=710   health east=ok west=ok eu=ok healthy_since=100 synced → starting
                  ALERT starting failback west → east automatically
                  RECORD starting failback west → east automatically: east has been healthy and resynced for 11m50s, and the policy allows automatic failback
                  START failback west→east auto
    "#]]);
}

#[test]
fn operator_commands_that_do_not_fit_are_refused_with_a_reason() {
    let mut sim = Sim::new();
    sim.op(0, "failover before any health", failover(None, false))
        .health(10, "east=ok west=ok eu=ok")
        .op(
            11,
            "failback while on the primary",
            OperatorCommand::Failback {
                by: "alice".into(),
                note: String::new(),
            },
        )
        .op(12, "failover --to east", failover(Some("east"), false))
        .health(20, "east=ok west=down eu=ok lag=1s")
        .op(
            21,
            "failover --to west (down)",
            failover(Some("west"), false),
        )
        .health(30, "east=ok west=ok eu=ok lag=30s")
        .op(31, "failover (lag 30s)", failover(None, false))
        .op(32, "failover --allow-data-loss", failover(None, true))
        .op(33, "failover again", failover(None, false));
    sim.check(expect![[r#"
        t=0     failover before any health         → primary
                  REFUSE a failover cannot start while no health has been observed yet
        t=10    health east=ok west=ok eu=ok       → primary
        t=11    failback while on the primary      → primary
                  REFUSE a failback cannot start while east already serves
        t=12    failover --to east                 → primary
                  REFUSE a failover cannot start while east is not a secondary other than the serving region
        t=20    health east=ok west=down eu=ok lag=1s → primary
        t=21    failover --to west (down)          → primary
                  REFUSE no healthy region to fail over to (checked west)
        t=30    health east=ok west=ok eu=ok lag=30s → primary
        t=31    failover (lag 30s)                 → primary
                  REFUSE replica lag in west is 30s, over the RPO budget of 5s
        t=32    failover --allow-data-loss         → starting
                  RECORD starting failover east → west on request: requested by alice
                  START failover east→west manual allow-data-loss
        t=33    failover again                     → starting
                  REFUSE a failover cannot start while a run is in progress
    "#]]);
}

#[test]
fn results_of_unknown_runs_and_refused_starts_are_handled() {
    let mut sim = Sim::new();
    sim.health(30, "east=down west=ok eu=ok")
        .feed(
            31,
            "journal refused the run",
            Input::RunStartFailed {
                error: "journal epoch 9 is newer than 8".into(),
            },
        )
        .health(40, "east=down west=ok eu=ok")
        .feed(
            41,
            "result of run zz",
            Input::RunFinished {
                run: RunId("zz".into()),
                end: RunEnd::Completed,
            },
        );
    assert_eq!(
        sim.state.active,
        r("east"),
        "a stale result must not move the active region"
    );
    sim.check(expect![[r#"
        t=30    health east=down west=ok eu=ok     → starting
                  ALERT starting failover east → west automatically
                  RECORD starting failover east → west automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:00:30.000Z)
                  START failover east→west auto
        t=31    journal refused the run            → blocked [start_refused]
                  ALERT blocked
                  RECORD blocked: the run could not start: journal epoch 9 is newer than 8
        t=40    health east=down west=ok eu=ok     → blocked [start_refused]
        t=41    result of run zz                   → blocked [start_refused]
                  RECORD ignored a run result: a result for run zz, which this controller is not running, was ignored
    "#]]);
}

#[test]
fn when_the_serving_secondary_fails_a_person_decides() {
    let mut sim = Sim::new();
    sim.health(30, "east=down west=ok eu=ok")
        .started(31)
        .finished(40, RunEnd::Completed)
        .health(50, "east=down west=down eu=ok")
        .health(60, "east=down west=ok eu=ok");
    sim.check(expect![[r#"
        t=30    health east=down west=ok eu=ok     → starting
                  ALERT starting failover east → west automatically
                  RECORD starting failover east → west automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:00:30.000Z)
                  START failover east→west auto
        t=31    run r1 started                     → failing_over
                  RECORD run started: failover run r1 started (fencing epoch 1) toward west
        t=40    run r1 Completed                   → on_secondary
                  ALERT failover completed
                  RECORD failover completed: failover run r1 completed; west serves now
        t=50    health east=down west=down eu=ok   → blocked [active_region_down]
                  ALERT blocked
                  RECORD blocked: west, which serves now, is down; lifeboat does not chain failovers by itself
        t=60    health east=down west=ok eu=ok     → on_secondary
    "#]]);
}

#[test]
fn a_run_waiting_for_approval_is_shown_and_alerted() {
    let mut sim = Sim::new();
    sim.health(30, "east=down west=ok eu=ok").started(31).feed(
        32,
        "run waits",
        Input::RunWaiting {
            run: RunId("r1".into()),
            why: "step confirm: Confirm the primary is really down".into(),
        },
    );
    assert!(matches!(
        &sim.state.phase,
        Phase::FailingOver {
            waiting: Some(_),
            ..
        }
    ));
    sim.check(expect![[r#"
        t=30    health east=down west=ok eu=ok     → starting
                  ALERT starting failover east → west automatically
                  RECORD starting failover east → west automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:00:30.000Z)
                  START failover east→west auto
        t=31    run r1 started                     → failing_over
                  RECORD run started: failover run r1 started (fencing epoch 1) toward west
        t=32    run waits                          → failing_over
                  ALERT waiting for an approval
                  RECORD waiting for an approval: run r1 waits for an approval: step confirm: Confirm the primary is really down
    "#]]);
}

#[test]
fn a_run_the_shared_record_did_not_start_is_decided_again_and_does_not_count_toward_the_window() {
    // One automatic failover per window: a start refused because a counted vote changed
    // must not use it up, or the retry would be held by the window limit.
    let mut sim = Sim::with(|p| p.guardrails.max_failovers = 1);
    sim.health(30, "east=down west=ok eu=ok").started(31);
    let run = RunId("r1".into());
    sim.feed(
        32,
        "run r1 not started",
        Input::RunNotStarted {
            run,
            why: "the vote at votes/obs-c changed after it was counted".into(),
            automatic: true,
        },
    )
    .health(33, "east=down west=ok eu=ok");
    assert_eq!(sim.state.auto_failovers.len(), 1, "only the retry counts");
    sim.check(expect![[r#"
        t=30    health east=down west=ok eu=ok     → starting
                  ALERT starting failover east → west automatically
                  RECORD starting failover east → west automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:00:30.000Z)
                  START failover east→west auto
        t=31    run r1 started                     → failing_over
                  RECORD run started: failover run r1 started (fencing epoch 1) toward west
        t=32    run r1 not started                 → primary
                  RECORD run not started; deciding again: run r1 did not start: the vote at votes/obs-c changed after it was counted; nothing acted, and the decision is taken again from the next votes
        t=33    health east=down west=ok eu=ok     → starting
                  ALERT starting failover east → west automatically
                  RECORD starting failover east → west automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:00:33.000Z)
                  START failover east→west auto
    "#]]);
}
