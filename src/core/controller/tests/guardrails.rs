//! Golden traces of the guardrails: what stops an automatic failover, and what releases it.

use std::time::Duration;

use expect_test::expect;

use super::{Sim, failover};
use crate::core::controller::*;
use crate::core::model::{Direction, Mode};
use crate::core::time::Ts;

#[test]
fn a_flapping_primary_never_triggers_a_failover() {
    let mut sim = Sim::new();
    for round in 0..4 {
        let t = round * 30;
        sim.health(t, "east=suspect west=ok eu=ok")
            .health(t + 10, "east=suspect west=ok eu=ok")
            .health(t + 20, "east=ok west=ok eu=ok");
    }
    assert_eq!(sim.state.phase, Phase::Primary);
    assert!(!sim.trace.contains("START"), "{}", sim.trace);
    sim.check(expect![[r#"
        t=0     health east=suspect west=ok eu=ok  → suspect
        t=10    health east=suspect west=ok eu=ok  → suspect
        t=20    health east=ok west=ok eu=ok       → primary
        t=30    health east=suspect west=ok eu=ok  → suspect
        t=40    health east=suspect west=ok eu=ok  → suspect
        t=50    health east=ok west=ok eu=ok       → primary
        t=60    health east=suspect west=ok eu=ok  → suspect
        t=70    health east=suspect west=ok eu=ok  → suspect
        t=80    health east=ok west=ok eu=ok       → primary
        t=90    health east=suspect west=ok eu=ok  → suspect
        t=100   health east=suspect west=ok eu=ok  → suspect
        t=110   health east=ok west=ok eu=ok       → primary
    "#]]);
}

#[test]
fn an_outage_seen_everywhere_is_the_observers_isolation_not_a_failover() {
    let mut sim = Sim::new();
    sim.health(0, "east=ok west=ok eu=ok")
        .health(30, "isolated east=down west=down eu=down")
        .health(40, "isolated east=down west=down eu=down")
        .health(50, "east=ok west=ok eu=ok");
    assert!(!sim.trace.contains("START"));
    sim.check(expect![[r#"
        t=0     health east=ok west=ok eu=ok       → primary
        t=30    health isolated east=down west=down eu=down → blocked [observer_isolated]
                  ALERT blocked
                  RECORD blocked: every region looks down at once, which more likely means this controller is cut off; not failing over
        t=40    health isolated east=down west=down eu=down → blocked [observer_isolated]
        t=50    health east=ok west=ok eu=ok       → primary
                  RECORD east is healthy again; nothing to do: east passes its probes again
    "#]]);
}

#[test]
fn replica_lag_over_budget_holds_the_failover_until_an_operator_accepts_the_loss() {
    let mut sim = Sim::new();
    sim.health(30, "east=down west=ok eu=ok lag=42s")
        .health(40, "east=down west=ok eu=ok lag=40s")
        .op(
            50,
            "approve (no data loss)",
            OperatorCommand::Approve {
                allow_data_loss: false,
                by: "alice".into(),
            },
        )
        .op(
            60,
            "approve --allow-data-loss",
            OperatorCommand::Approve {
                allow_data_loss: true,
                by: "alice".into(),
            },
        )
        .started(61);
    sim.check(expect![[r#"
        t=30    health east=down west=ok eu=ok lag=42s → blocked [replica_lag]
                  ALERT blocked
                  RECORD blocked: replica lag in west is 42s, over the RPO budget of 5s
        t=40    health east=down west=ok eu=ok lag=40s → blocked [replica_lag]
        t=50    approve (no data loss)             → blocked [replica_lag]
                  REFUSE replica lag in west is 40s, over the RPO budget of 5s
        t=60    approve --allow-data-loss          → starting
                  RECORD starting failover east → west on request: requested by alice: approved a held failover
                  START failover east→west manual allow-data-loss
        t=61    run r1 started                     → failing_over
                  RECORD run started: failover run r1 started (fencing epoch 1) toward west
    "#]]);
}

#[test]
fn replica_lag_that_catches_up_releases_the_hold_by_itself() {
    let mut sim = Sim::new();
    sim.health(30, "east=down west=ok eu=ok lag=9s")
        .health(40, "east=down west=ok eu=ok lag=2s");
    sim.check(expect![[r#"
        t=30    health east=down west=ok eu=ok lag=9s → blocked [replica_lag]
                  ALERT blocked
                  RECORD blocked: replica lag in west is 9s, over the RPO budget of 5s
        t=40    health east=down west=ok eu=ok lag=2s → starting
                  ALERT starting failover east → west automatically
                  RECORD starting failover east → west automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:00:40.000Z)
                  START failover east→west auto
    "#]]);
}

#[test]
fn the_window_limit_holds_an_automatic_failover_beyond_the_allowed_count() {
    let mut sim = Sim::with(|p| p.guardrails.max_failovers = 2);
    let failback = || OperatorCommand::Failback {
        by: "alice".into(),
        note: String::new(),
    };
    sim.health(30, "east=down west=ok eu=ok")
        .started(31)
        .finished(60, RunEnd::Completed)
        .health(905, "east=ok west=ok eu=ok healthy_since=100 synced")
        .op(910, "failback", failback())
        .started(911)
        .finished(930, RunEnd::Completed)
        // Second outage, past the cooldown (930 + 10m): the second automatic failover.
        .health(1600, "east=down west=ok eu=ok")
        .started(1601)
        .finished(1620, RunEnd::Completed)
        .health(2300, "east=ok west=ok eu=ok healthy_since=1700 synced")
        .op(2301, "failback", failback())
        .started(2302)
        .finished(2310, RunEnd::Completed)
        // Third outage, past the cooldown, inside the day: the window allows only two.
        .health(3000, "east=down west=ok eu=ok");
    assert!(matches!(
        sim.state.phase,
        Phase::Blocked {
            hold: crate::core::reason::Hold::WindowLimit { .. },
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
        t=60    run r1 Completed                   → on_secondary
                  ALERT failover completed
                  RECORD failover completed: failover run r1 completed; west serves now
        t=905   health east=ok west=ok eu=ok healthy_since=100 synced → on_secondary
        t=910   failback                           → starting
                  RECORD starting failback west → east on request: requested by alice
                  START failback west→east manual
        t=911   run r2 started                     → failing_back
                  RECORD run started: failback run r2 started (fencing epoch 2) toward east
        t=930   run r2 Completed                   → primary
                  ALERT failback completed
                  RECORD failback completed: failback run r2 completed; east serves now
        t=1600  health east=down west=ok eu=ok     → starting
                  ALERT starting failover east → west automatically
                  RECORD starting failover east → west automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:26:40.000Z)
                  START failover east→west auto
        t=1601  run r3 started                     → failing_over
                  RECORD run started: failover run r3 started (fencing epoch 3) toward west
        t=1620  run r3 Completed                   → on_secondary
                  ALERT failover completed
                  RECORD failover completed: failover run r3 completed; west serves now
        t=2300  health east=ok west=ok eu=ok healthy_since=1700 synced → on_secondary
        t=2301  failback                           → starting
                  RECORD starting failback west → east on request: requested by alice
                  START failback west→east manual
        t=2302  run r4 started                     → failing_back
                  RECORD run started: failback run r4 started (fencing epoch 4) toward east
        t=2310  run r4 Completed                   → primary
                  ALERT failback completed
                  RECORD failback completed: failback run r4 completed; east serves now
        t=3000  health east=down west=ok eu=ok     → blocked [window_limit]
                  ALERT blocked
                  RECORD blocked: 2 automatic failover(s) in the last 1d, the most the policy allows is 2
    "#]]);
}

#[test]
fn an_outage_inside_the_cooldown_waits_for_it_to_end() {
    let mut sim = Sim::with(|p| p.guardrails.max_failovers = 5);
    sim.health(30, "east=down west=ok eu=ok")
        .started(31)
        .finished(60, RunEnd::Completed)
        .health(700, "east=ok west=ok eu=ok healthy_since=65 synced")
        .op(
            701,
            "failback",
            OperatorCommand::Failback {
                by: "alice".into(),
                note: String::new(),
            },
        )
        .started(702)
        .finished(710, RunEnd::Completed)
        // The failback completed at t=710: the cooldown runs until 710 + 10m = 1310.
        .health(720, "east=down west=ok eu=ok")
        .health(1300, "east=down west=ok eu=ok")
        .health(1320, "east=down west=ok eu=ok");
    sim.check(expect![[r#"
        t=30    health east=down west=ok eu=ok     → starting
                  ALERT starting failover east → west automatically
                  RECORD starting failover east → west automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:00:30.000Z)
                  START failover east→west auto
        t=31    run r1 started                     → failing_over
                  RECORD run started: failover run r1 started (fencing epoch 1) toward west
        t=60    run r1 Completed                   → on_secondary
                  ALERT failover completed
                  RECORD failover completed: failover run r1 completed; west serves now
        t=700   health east=ok west=ok eu=ok healthy_since=65 synced → on_secondary
        t=701   failback                           → starting
                  RECORD starting failback west → east on request: requested by alice
                  START failback west→east manual
        t=702   run r2 started                     → failing_back
                  RECORD run started: failback run r2 started (fencing epoch 2) toward east
        t=710   run r2 Completed                   → primary
                  ALERT failback completed
                  RECORD failback completed: failback run r2 completed; east serves now
        t=720   health east=down west=ok eu=ok     → blocked [cooldown]
                  ALERT blocked
                  RECORD blocked: in the cooldown after the last failover or failback, until 1970-01-01T00:21:50.000Z
        t=1300  health east=down west=ok eu=ok     → blocked [cooldown]
        t=1320  health east=down west=ok eu=ok     → starting
                  ALERT starting failover east → west automatically
                  RECORD starting failover east → west automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:22:00.000Z)
                  START failover east→west auto
    "#]]);
}

#[test]
fn pause_holds_automation_and_resume_releases_it() {
    let mut sim = Sim::new();
    sim.op(
        0,
        "pause",
        OperatorCommand::Pause {
            by: "bob".into(),
            reason: "maintenance".into(),
        },
    )
    .health(30, "east=down west=ok eu=ok")
    .health(40, "east=down west=ok eu=ok")
    .op(50, "resume", OperatorCommand::Resume { by: "bob".into() })
    .health(60, "east=down west=ok eu=ok");
    sim.check(expect![[r#"
        t=0     pause                              → paused
                  RECORD paused automatic decisions: paused by bob: maintenance
        t=30    health east=down west=ok eu=ok     → paused [paused]
                  RECORD blocked: paused by bob: maintenance
        t=40    health east=down west=ok eu=ok     → paused [paused]
        t=50    resume                             → primary
                  RECORD resumed automatic decisions: at the request of bob
        t=60    health east=down west=ok eu=ok     → starting
                  ALERT starting failover east → west automatically
                  RECORD starting failover east → west automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:01:00.000Z)
                  START failover east→west auto
    "#]]);
}

#[test]
fn shadow_mode_logs_what_it_would_do_and_never_acts() {
    let mut sim = Sim::with(|p| p.detection.mode = Mode::Shadow);
    sim.health(30, "east=down west=ok eu=ok")
        .health(40, "east=down west=ok eu=ok")
        .health(50, "east=ok west=ok eu=ok");
    assert!(!sim.trace.contains("START"));
    sim.check(expect![[r#"
        t=30    health east=down west=ok eu=ok     → blocked [mode_shadow]
                  RECORD shadow mode: not acting: would start a failover to west now, because east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:00:30.000Z) (shadow mode: not acting)
        t=40    health east=down west=ok eu=ok     → blocked [mode_shadow]
        t=50    health east=ok west=ok eu=ok       → primary
                  RECORD east is healthy again; nothing to do: east passes its probes again
    "#]]);
}

#[test]
fn manual_mode_alerts_and_waits_for_an_operator() {
    let mut sim = Sim::with(|p| p.detection.mode = Mode::Manual);
    sim.health(30, "east=down west=ok eu=ok")
        .health(40, "east=down west=ok eu=ok")
        .op(50, "failover", failover(None, false))
        .started(51);
    sim.check(expect![[r#"
        t=30    health east=down west=ok eu=ok     → blocked [mode_manual]
                  ALERT blocked
                  RECORD blocked: mode is manual: lifeboat detects and alerts, an operator starts the failover
        t=40    health east=down west=ok eu=ok     → blocked [mode_manual]
        t=50    failover                           → starting
                  RECORD starting failover east → west on request: requested by alice
                  START failover east→west manual
        t=51    run r1 started                     → failing_over
                  RECORD run started: failover run r1 started (fencing epoch 1) toward west
    "#]]);
}

#[test]
fn a_clock_jump_freezes_automatic_decisions_for_a_while() {
    let mut sim = Sim::with(|p| p.guardrails.freeze_for = Duration::from_secs(30));
    sim.tick(0, 0, 0)
        .tick(10, 10, 10)
        // The wall clock leaps an hour ahead while the monotonic clock moved 10 s.
        .tick(3620, 3620, 20)
        .health(3625, "east=down west=ok eu=ok")
        .tick(3630, 3630, 30)
        .tick(3640, 3640, 40)
        .tick(3650, 3650, 50)
        .health(3655, "east=down west=ok eu=ok");
    sim.check(expect![[r#"
        t=0     tick wall=0s mono=0s               → primary
        t=10    tick wall=10s mono=10s             → primary
        t=3620  tick wall=3620s mono=20s           → primary
                  ALERT froze automatic decisions
                  RECORD froze automatic decisions: automatic decisions are frozen until 1970-01-01T01:00:50.000Z because the wall clock jumped
        t=3625  health east=down west=ok eu=ok     → blocked [frozen]
                  ALERT blocked
                  RECORD blocked: automatic decisions are frozen until 1970-01-01T01:00:50.000Z because the wall clock jumped
        t=3630  tick wall=3630s mono=30s           → blocked [frozen]
        t=3640  tick wall=3640s mono=40s           → blocked [frozen]
        t=3650  tick wall=3650s mono=50s           → primary
                  RECORD automatic decisions resumed after the freeze: the freeze is over; automatic decisions resume
        t=3655  health east=down west=ok eu=ok     → starting
                  ALERT starting failover east → west automatically
                  RECORD starting failover east → west automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T01:00:55.000Z)
                  START failover east→west auto
    "#]]);
}

#[test]
fn a_stalled_loop_freezes_automatic_decisions() {
    let mut sim = Sim::new();
    sim.tick(0, 0, 0)
        .tick(90, 90, 90)
        .health(95, "east=down west=ok eu=ok");
    sim.check(expect![[r#"
        t=0     tick wall=0s mono=0s               → primary
        t=90    tick wall=90s mono=90s             → primary
                  ALERT froze automatic decisions
                  RECORD froze automatic decisions: automatic decisions are frozen until 1970-01-01T00:03:30.000Z because the control loop stalled
        t=95    health east=down west=ok eu=ok     → blocked [frozen]
                  ALERT blocked
                  RECORD blocked: automatic decisions are frozen until 1970-01-01T00:03:30.000Z because the control loop stalled
    "#]]);
}

#[test]
fn a_failover_goes_to_the_next_secondary_when_the_first_is_unhealthy_and_nowhere_when_none_is() {
    let mut sim = Sim::new();
    sim.health(30, "east=down west=down eu=ok");
    let mut none = Sim::new();
    none.health(30, "east=down west=suspect eu=down");
    sim.trace.push_str("--- no healthy secondary ---\n");
    sim.trace.push_str(&none.trace);
    sim.check(expect![[r#"
        t=30    health east=down west=down eu=ok   → starting
                  ALERT starting failover east → eu automatically
                  RECORD starting failover east → eu automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:00:30.000Z)
                  START failover east→eu auto
        --- no healthy secondary ---
        t=30    health east=down west=suspect eu=down → blocked [no_healthy_target]
                  ALERT blocked
                  RECORD blocked: no healthy region to fail over to (checked west, eu)
    "#]]);
}

#[test]
fn without_a_quorum_of_observers_nothing_fails_over() {
    let mut sim = Sim::with(|p| p.guardrails.quorum = 2);
    sim.health(30, "east=down west=ok eu=ok votes=1")
        .health(40, "east=down west=ok eu=ok votes=2");
    sim.check(expect![[r#"
        t=30    health east=down west=ok eu=ok votes=1 → blocked [no_quorum]
                  RECORD blocked: only 1 observer(s) see the outage, the quorum is 2
        t=40    health east=down west=ok eu=ok votes=2 → starting
                  ALERT starting failover east → west automatically
                  RECORD starting failover east → west automatically: east is down: its critical probes failed 3 rounds in a row (since 1970-01-01T00:00:40.000Z)
                  START failover east→west auto
    "#]]);
}

/// The testkit's interval is 10 s: the "no quorum" page waits two intervals, and is
/// dropped if the quorum agrees meanwhile.
#[test]
fn the_no_quorum_page_waits_two_intervals_and_is_dropped_if_the_quorum_agrees() {
    let mut sim = Sim::with(|p| p.guardrails.quorum = 2);
    sim.health(30, "east=down west=ok eu=ok votes=1")
        .tick(40, 40, 40)
        .tick(50, 50, 50)
        .tick(51, 51, 51)
        .health(60, "east=down west=ok eu=ok votes=1");
    let mut agreed = Sim::with(|p| p.guardrails.quorum = 2);
    agreed
        .health(30, "east=down west=ok eu=ok votes=1")
        .tick(40, 40, 40)
        .health(45, "east=down west=ok eu=ok votes=2")
        .tick(50, 50, 50);
    assert!(agreed.state.held_alert.is_none());
    assert!(!agreed.trace.contains("ALERT blocked"), "{}", agreed.trace);
    sim.check(expect![[r#"
        t=30    health east=down west=ok eu=ok votes=1 → blocked [no_quorum]
                  RECORD blocked: only 1 observer(s) see the outage, the quorum is 2
        t=40    tick wall=40s mono=40s             → blocked [no_quorum]
        t=50    tick wall=50s mono=50s             → blocked [no_quorum]
                  ALERT blocked
        t=51    tick wall=51s mono=51s             → blocked [no_quorum]
        t=60    health east=down west=ok eu=ok votes=1 → blocked [no_quorum]
    "#]]);
}

#[test]
fn a_guardrail_that_keeps_holding_is_recorded_once() {
    let mut sim = Sim::new();
    for t in [30, 40, 50, 60, 70] {
        sim.health(t, "east=down west=ok eu=ok lag=60s");
    }
    assert_eq!(sim.trace.matches("RECORD").count(), 1, "{}", sim.trace);
}

/// Safety invariant 2, checked over many random input sequences (fixed seed, so a
/// failure replays): an automatic failover starts only when the serving primary is down,
/// the target is healthy with lag within budget, and no guardrail objects; and no run
/// ever starts while another is in progress.
#[test]
fn random_inputs_never_break_the_automatic_failover_guardrails() {
    let verdicts = ["ok", "suspect", "down", "recovering", "unknown"];
    let mut rng = fastrand::Rng::with_seed(0x11feb0a7);
    let mut checked = 0;
    for _ in 0..300 {
        let mode = [Mode::Auto, Mode::Manual, Mode::Shadow][rng.usize(..3)];
        let quorum = rng.u32(1..=2);
        let mut sim = Sim::with(|p| {
            p.detection.mode = mode;
            p.guardrails.quorum = quorum;
            p.guardrails.max_failovers = rng.u32(0..=3);
        });
        let mut t = 0;
        let mut mono = 0;
        for _ in 0..60 {
            t += rng.u64(1..=40);
            mono += rng.u64(1..=40);
            let before = sim.state.clone();
            let (input, snap) = match rng.u8(..10) {
                0..=5 => {
                    let mut spec = format!(
                        "east={} west={} eu={} lag={}s votes={}",
                        // The primary is down half the time, so failovers are common.
                        if rng.bool() {
                            "down"
                        } else {
                            verdicts[rng.usize(..5)]
                        },
                        verdicts[rng.usize(..5)],
                        verdicts[rng.usize(..5)],
                        rng.u64(0..10),
                        rng.u32(1..=2)
                    );
                    if rng.u8(..10) == 0 {
                        spec.push_str(" isolated");
                    }
                    sim.health(t, &spec);
                    (None, sim.state.health.clone())
                }
                6 => {
                    let wall = if rng.bool() { t } else { t + rng.u64(0..100) };
                    (
                        Some(Input::Tick(ClockReading {
                            wall: Ts::from_secs(wall),
                            mono_ms: mono * 1000,
                        })),
                        None,
                    )
                }
                7 => (
                    Some(Input::Operator(OperatorCommand::Pause {
                        by: "x".into(),
                        reason: "y".into(),
                    })),
                    None,
                ),
                8 => (
                    Some(Input::Operator(OperatorCommand::Resume { by: "x".into() })),
                    None,
                ),
                _ => {
                    if let Phase::Starting { .. } = sim.state.phase {
                        sim.started(t);
                    } else if matches!(
                        sim.state.phase,
                        Phase::FailingOver { .. } | Phase::FailingBack { .. }
                    ) {
                        sim.finished(t, RunEnd::Completed);
                    }
                    (None, None)
                }
            };
            if let Some(input) = input {
                sim.feed(t, "input", input);
            }
            let started = !matches!(before.phase, Phase::Starting { .. })
                && matches!(sim.state.phase, Phase::Starting { .. });
            if !started {
                continue;
            }
            assert!(
                !before.phase.run_in_progress(),
                "a run started while another was in progress:\n{}",
                sim.trace
            );
            let Phase::Starting { request, .. } = &sim.state.phase else {
                unreachable!()
            };
            if !(request.automatic() && request.direction == Direction::Failover) {
                continue;
            }
            let snap = snap.expect("automatic failovers start on a health snapshot");
            let p = &sim.policy;
            let primary = snap.get(&p.regions.primary).expect("primary");
            let target = snap.get(&request.to).expect("target");
            let now = Ts::from_secs(t);
            assert!(
                matches!(primary.verdict, Verdict::Down { .. }),
                "{}",
                sim.trace
            );
            assert!(matches!(target.verdict, Verdict::Healthy), "{}", sim.trace);
            assert!(
                target.replica_lag.unwrap_or_default() <= p.guardrails.rpo_budget,
                "{}",
                sim.trace
            );
            assert!(
                !snap.isolated() && snap.votes() >= p.guardrails.quorum,
                "{}",
                sim.trace
            );
            assert_eq!(p.detection.mode, Mode::Auto, "{}", sim.trace);
            assert!(before.paused.is_none(), "{}", sim.trace);
            assert!(
                before.frozen_until.is_none_or(|(until, _)| now >= until),
                "{}",
                sim.trace
            );
            assert!(
                before
                    .last_switch
                    .is_none_or(|l| now >= l.plus(p.guardrails.cooldown)),
                "{}",
                sim.trace
            );
            checked += 1;
        }
    }
    // The sequences must actually reach automatic failovers, or the checks above prove nothing.
    assert!(
        checked > 30,
        "only {checked} automatic failovers were exercised"
    );
}
