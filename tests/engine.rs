//! The daemon's engine on tokio's paused clock, with fake steps and a temporary journal:
//! what it decides from scripted probe rounds and witness answers, what it journals and
//! alerts, and what survives a restart. No sandbox: the observations are fed as events.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use lifeboat::core::controller::{Decision, OperatorCommand, Phase, State};
use lifeboat::core::health::{HealthTracker, Observation, Verdict};
use lifeboat::core::model::{Policy, RegionName};
use lifeboat::core::reason::{Hold, Notice, Reason};
use lifeboat::core::step::RunStatus;
use lifeboat::core::summary::LinkMemory;
use lifeboat::daemon::engine::{Engine, Event};
use lifeboat::daemon::metrics::Metrics;
use lifeboat::daemon::status;
use lifeboat::daemon::witness::{Answer, Poll, Witnesses};
use lifeboat::driver::{Alerts, Driver, Events, Parts, Request};
use lifeboat::journal::Journal;
use lifeboat::probe::scheduler::Restart;
use lifeboat::runbook::{Cancel, RetrySettings, StepError};
use support::{Behaviour, Factory, Target};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";
const WITNESS: &str = "http://witness.test:7300";

/// Every alert the driver sent.
#[derive(Default)]
struct Recorded(Mutex<Vec<Decision>>);

impl Alerts for Recorded {
    fn send(&self, d: &Decision) {
        self.0.lock().expect("lock").push(d.clone());
    }
}

impl Recorded {
    fn labels(&self) -> Vec<&'static str> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .map(|d| d.reason.label())
            .collect()
    }
}

struct Rig {
    engine: Engine,
    events: Events,
    alerts: Arc<Recorded>,
}

fn policy(edit: impl FnOnce(&mut Policy)) -> Arc<Policy> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/sandbox.toml");
    let (mut p, _) = lifeboat::policy::load_valid(&path).expect("the sandbox policy is valid");
    p.guardrails.quorum = 1;
    p.guardrails.witnesses = vec![];
    edit(&mut p);
    Arc::new(p)
}

/// A fresh engine on `journal`, restored from it, with fake steps acting on `target`.
fn rig(policy: &Arc<Policy>, journal: &Path, target: &Arc<Target>) -> Rig {
    let journal = Arc::new(Journal::open_or_create(journal).expect("journal"));
    let alerts = Arc::new(Recorded::default());
    // One timeline for every rig of a test: a restart does not turn the clock back.
    let clock = support::tokio_clock();
    let cancel = Cancel::new();
    let metrics = Arc::new(Metrics::new());
    let (driver, events) = Driver::new(Parts {
        policy: policy.clone(),
        journal,
        factory: Arc::new(Factory(target.clone())),
        alerts: alerts.clone(),
        observer: metrics.clone(),
        clock: clock.clone(),
        source: "engine test".into(),
        retry: RetrySettings::default(),
        cancel: cancel.clone(),
    });
    let state = State::new(policy, policy.regions.primary.clone(), clock.now());
    let tracker = HealthTracker::for_policy(policy);
    let links = LinkMemory::default();
    let view = status::build(
        policy,
        &state,
        &tracker,
        &links,
        None,
        clock.now(),
        "test".into(),
    );
    let mut engine = Engine {
        driver,
        tracker,
        links,
        witnesses: Witnesses::new(&policy.guardrails.witnesses, policy.detection.interval * 3),
        status: Arc::new(RwLock::new(view)),
        metrics,
        clock,
        cancel,
        source: "engine test".into(),
        started: tokio::time::Instant::now(),
        events: None,
        standings: 0,
        publish_every: Duration::ZERO,
        published: Default::default(),
        votes: None,
    };
    engine.restore(true).expect("restore");
    Rig {
        engine,
        events,
        alerts,
    }
}

impl Rig {
    /// One round of every critical probe of `region`, passing or failing.
    fn round(&mut self, region: &str, ok: bool) {
        let now = self.engine.clock.now();
        let region = RegionName::new(region);
        let probes: Vec<String> = self
            .engine
            .driver
            .policy()
            .probes
            .iter()
            .filter(|p| p.critical)
            .map(|p| p.name.clone())
            .collect();
        for p in probes {
            let ms = Duration::from_millis(5);
            let obs = if ok {
                Observation::ok(&p, &region, now, ms)
            } else {
                let why = format!("{p} in {region}: connection refused (after 5ms)");
                Observation::failed(&p, &region, now, ms, why)
            };
            self.engine.handle(Event::Observed(obs));
        }
    }

    /// Both regions probed once a second, the primary failing or not, `n` times.
    async fn seconds(&mut self, n: u32, primary_ok: bool) {
        for _ in 0..n {
            self.round(EAST, primary_ok);
            self.round(WEST, true);
            self.tick().await;
        }
    }

    /// A second passes (the loop ticks twice a second).
    async fn tick(&mut self) {
        self.half_tick().await;
        self.half_tick().await;
    }

    async fn half_tick(&mut self) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.engine.handle(Event::Tick);
        self.drain();
    }

    /// Hands the run's progress and end back to the engine, as the daemon's loop does.
    fn drain(&mut self) {
        while let Ok(p) = self.events.progress.try_recv() {
            self.engine.handle(Event::Progress(p));
        }
        while let Ok(e) = self.events.ended.try_recv() {
            self.engine.handle(Event::RunEnded(e));
        }
    }

    /// Lets time pass until `done` holds (at most a minute of paused time).
    async fn until(&mut self, what: &str, done: impl Fn(&State) -> bool) {
        for _ in 0..120 {
            if done(self.engine.driver.state()) {
                return;
            }
            self.tick().await;
        }
        panic!(
            "{what}: never happened; state {:?}",
            self.engine.driver.state().phase
        );
    }

    fn request(&mut self, req: Request) -> lifeboat::contract::Reply {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        self.engine.handle(Event::Request(req, tx));
        rx.try_recv()
            .expect("the engine answers every request at once")
    }

    fn phase(&self) -> Phase {
        self.engine.driver.state().phase.clone()
    }
}

fn operator(cmd: OperatorCommand) -> Request {
    Request::Operator {
        cmd,
        dry_run: false,
        expect_to: None,
    }
}

#[tokio::test(start_paused = true)]
async fn the_window_limit_survives_a_restart() {
    let dir = support::tempdir();
    let journal = dir.path().join("engine.db");
    let policy = policy(|p| {
        p.guardrails.max_failovers = 1;
        p.guardrails.cooldown = Duration::from_secs(5);
        p.guardrails.failback_healthy_for = Duration::ZERO;
    });
    let target = Target::in_memory();
    let mut r = rig(&policy, &journal, &target);
    r.seconds(2, true).await;
    r.seconds(3, false).await;
    r.until("the automatic failover completes", |s| {
        s.active.as_str() == WEST
    })
    .await;
    assert_eq!(r.alerts.labels().first(), Some(&"region_down"));

    // Back to the primary by hand, then a restart.
    r.seconds(2, true).await;
    let reply = r.request(operator(OperatorCommand::Failback {
        by: "alice".into(),
        note: "repaired".into(),
    }));
    assert!(
        matches!(
            reply,
            lifeboat::contract::Reply::Accepted {
                run_id: Some(_),
                ..
            }
        ),
        "{reply:?}"
    );
    r.until("the failback completes", |s| s.active.as_str() == EAST)
        .await;
    drop(r);

    let mut r = rig(&policy, &journal, &target);
    assert_eq!(
        r.engine.driver.state().auto_failovers.len(),
        1,
        "one automatic failover remembered"
    );
    r.seconds(8, true).await; // past the cooldown
    r.seconds(3, false).await;
    match r.phase() {
        Phase::Blocked {
            hold: Hold::WindowLimit { count, max, .. },
            ..
        } => assert_eq!((count, max), (1, 1)),
        other => panic!("expected the window limit to hold, got {other:?}"),
    }
    let runs = r.engine.driver.journal().runs(10).expect("runs");
    assert_eq!(runs.len(), 2, "no third run");
    assert!(runs.iter().all(|run| run.status == RunStatus::Completed));
}

#[tokio::test(start_paused = true)]
async fn the_no_quorum_alert_is_held_then_sent() {
    let dir = support::tempdir();
    let policy = policy(|p| {
        p.guardrails.quorum = 2;
        p.guardrails.witnesses = vec![WITNESS.into()];
    });
    let mut r = rig(&policy, &dir.path().join("engine.db"), &Target::in_memory());
    r.seconds(2, true).await;
    // The witness still reaches the primary.
    r.engine.handle(Event::Witness(Poll {
        url: WITNESS.into(),
        result: Ok(Answer::default()),
    }));
    r.seconds(3, false).await;
    assert!(
        matches!(
            r.phase(),
            Phase::Blocked {
                hold: Hold::NoQuorum {
                    votes: 1,
                    quorum: 2
                },
                ..
            }
        ),
        "{:?}",
        r.phase()
    );
    let Phase::Blocked {
        since: blocked_at, ..
    } = r.phase()
    else {
        unreachable!()
    };
    assert!(
        !r.alerts.labels().contains(&"no_quorum"),
        "no page the moment the hold starts: {:?}",
        r.alerts.labels()
    );
    // Still held back just before two intervals have passed…
    r.engine.handle(Event::Witness(Poll {
        url: WITNESS.into(),
        result: Ok(Answer::default()),
    }));
    r.round(EAST, false);
    r.half_tick().await;
    assert_eq!(
        r.engine.clock.now(),
        blocked_at.plus(Duration::from_millis(1500))
    );
    assert!(!r.alerts.labels().contains(&"no_quorum"));
    // …and sent, once, with its evidence, after them.
    r.engine.handle(Event::Witness(Poll {
        url: WITNESS.into(),
        result: Ok(Answer::default()),
    }));
    r.seconds(3, false).await;
    let sent: Vec<Decision> = r.alerts.0.lock().expect("lock").clone();
    let held: Vec<&Decision> = sent
        .iter()
        .filter(|d| d.reason.label() == "no_quorum")
        .collect();
    assert_eq!(held.len(), 1, "{sent:?}");
    let e = &held[0].evidence;
    assert_eq!(e.guardrail.as_deref(), Some("no_quorum"));
    assert_eq!(e.quorum, Some(2));
    let said: Vec<(&str, bool)> = e
        .observers
        .iter()
        .map(|o| (o.observer.as_str(), o.sees_down))
        .collect();
    assert_eq!(said, vec![("this controller", true), (WITNESS, false)]);
    assert!(
        e.failing
            .iter()
            .any(|f| f.probe == "db" && f.error.contains("connection refused")),
        "{e:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_quorum_that_agrees_in_time_never_pages_blocked() {
    let dir = support::tempdir();
    let policy = policy(|p| {
        p.guardrails.quorum = 2;
        p.guardrails.witnesses = vec![WITNESS.into()];
    });
    let mut r = rig(&policy, &dir.path().join("engine.db"), &Target::in_memory());
    r.seconds(2, true).await;
    r.seconds(3, false).await;
    assert!(matches!(
        r.phase(),
        Phase::Blocked {
            hold: Hold::NoQuorum { .. },
            ..
        }
    ));
    // The witness agrees within the grace: the failover starts, and the held page is dropped.
    r.engine.handle(Event::Witness(Poll {
        url: WITNESS.into(),
        result: Ok(Answer::down_now(vec![RegionName::new(EAST)])),
    }));
    r.until("the failover completes", |s| s.active.as_str() == WEST)
        .await;
    r.seconds(3, true).await;
    assert!(
        !r.alerts.labels().contains(&"no_quorum"),
        "{:?}",
        r.alerts.labels()
    );
}

#[tokio::test(start_paused = true)]
async fn an_unfenced_old_primary_is_alerted_by_the_daemon() {
    let dir = support::tempdir();
    let policy = policy(|_| {});
    let target = Target::in_memory();
    target.script(
        "fence-old-primary",
        Behaviour {
            notice: Some(Notice::OldPrimaryNotFenced {
                step: "fence-old-primary".into(),
                region: RegionName::new(EAST),
                server: "lifeboat@127.0.0.1:1/orders".into(),
                why: "connection refused".into(),
            }),
            ..Behaviour::default()
        },
    );
    let mut r = rig(&policy, &dir.path().join("engine.db"), &target);
    r.seconds(2, true).await;
    r.seconds(3, false).await;
    r.until("the failover completes", |s| s.active.as_str() == WEST)
        .await;
    assert!(
        r.alerts.labels().contains(&"old_primary_not_fenced"),
        "{:?}",
        r.alerts.labels()
    );
    let recorded = r
        .engine
        .driver
        .journal()
        .decisions(&policy.service, 50)
        .expect("decisions");
    assert!(recorded.iter().any(|d| matches!(
        &d.reason,
        Reason::Note(lifeboat::core::reason::Note::Notice { .. })
    )));
}

#[tokio::test(start_paused = true)]
async fn status_after_a_restart_still_says_why_it_is_blocked() {
    let dir = support::tempdir();
    let journal = dir.path().join("engine.db");
    let policy = policy(|_| {});
    let target = Target::in_memory();
    target.script(
        "promote-standby",
        Behaviour {
            apply_errors: [StepError::fatal(
                "AccessDenied on pg_promote for the standby: grant it to the lifeboat role",
            )]
            .into(),
            ..Behaviour::default()
        },
    );
    let mut r = rig(&policy, &journal, &target);
    r.seconds(2, true).await;
    r.seconds(3, false).await;
    r.until("the failover fails", |s| {
        matches!(
            s.phase,
            Phase::Blocked {
                hold: Hold::RunFailed { .. },
                ..
            }
        )
    })
    .await;
    drop(r);

    let r = rig(&policy, &journal, &target);
    let view = r.engine.status.read().expect("status").clone();
    let why = view.why.unwrap_or_default();
    assert!(
        why.contains("failed") && why.contains("AccessDenied"),
        "status right after the restart: {why}"
    );
    assert_eq!(view.state, "blocked");
    assert!(view.next_step.is_some_and(|n| n.contains("lifeboat show")));
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_falls_silent_counts_as_failed_stale_so_health_cannot_freeze() {
    let dir = support::tempdir();
    let policy = policy(|_| {});
    let mut r = rig(&policy, &dir.path().join("engine.db"), &Target::in_memory());
    r.seconds(2, true).await;
    let east = RegionName::new(EAST);
    assert_eq!(r.engine.tracker.verdict(&east), Verdict::Healthy);
    // The primary's probe loops stop reporting (stuck, or gone); the standby's go on.
    // The limit is two intervals and the timeout: 2.25 s on the sandbox policy.
    let limit = lifeboat::core::health::stale_after(&policy);
    assert_eq!(limit, Duration::from_millis(2250));
    for _ in 0..3 {
        r.round(WEST, true);
        r.tick().await;
    }
    let silent: Vec<_> = r
        .engine
        .tracker
        .probes()
        .filter(|p| p.region == east)
        .cloned()
        .collect();
    assert!(!silent.is_empty());
    for p in &silent {
        assert_eq!(p.consecutive_failures, 1, "one stale round so far: {p:?}");
        let reason = p.latest.reason().unwrap_or_default();
        assert!(
            reason.starts_with("stale: no result for 2.5s (the limit is 2.2"),
            "{reason}"
        );
    }
    // Silence goes on counting, one failed round per limit, until the region is down.
    for _ in 0..6 {
        r.round(WEST, true);
        r.tick().await;
    }
    assert!(
        matches!(r.engine.tracker.verdict(&east), Verdict::Down { .. }),
        "{:?}",
        r.engine.tracker.verdict(&east)
    );
    assert_eq!(
        r.engine.tracker.verdict(&RegionName::new(WEST)),
        Verdict::Healthy
    );
}

#[tokio::test(start_paused = true)]
async fn a_crashed_probe_is_alerted_at_its_first_restart_then_at_the_tenth_in_a_row() {
    let dir = support::tempdir();
    let policy = policy(|_| {});
    let mut r = rig(&policy, &dir.path().join("engine.db"), &Target::in_memory());
    for in_a_row in 1..=10 {
        r.engine.handle(Event::ProbeRestarted(Restart {
            probe: "api".into(),
            region: RegionName::new(EAST),
            error: "index out of bounds: the len is 0 but the index is 7".into(),
            in_a_row,
        }));
    }
    let sent: Vec<Decision> = r.alerts.0.lock().expect("lock").clone();
    let texts: Vec<String> = sent
        .iter()
        .map(|d| format!("{}: {}", d.summary, d.reason))
        .collect();
    assert_eq!(
        texts,
        vec![
            "probe `api` in us-east-1 crashed and was restarted: probe `api` in us-east-1 crashed (index out of bounds: the len is 0 but the index is 7); lifeboat restarted it, and its rounds count as failed meanwhile",
            "probe `api` in us-east-1 crashed and was restarted: probe `api` in us-east-1 crashed (index out of bounds: the len is 0 but the index is 7), 10 times in a row; lifeboat restarted it, and its rounds count as failed meanwhile",
        ]
    );
    let journaled = r
        .engine
        .driver
        .journal()
        .latest_record(&policy.service, &["probe_restarted"])
        .expect("journal")
        .expect("the restart is journaled");
    assert!(
        journaled.detail.contains("10 times in a row"),
        "{journaled:?}"
    );
}

/// An abort or an approval that comes while the executor is still writing its pause finds
/// it running and leaves the rest to it; the executor ends without seeing either. The
/// driver reads the journal when that end comes in: an aborted run is over, an approved
/// one goes on. (Without that, the run stayed "waiting for an approval" for good.)
#[tokio::test(start_paused = true)]
async fn an_abort_or_an_approval_racing_the_executor_s_pause_is_not_lost() {
    for approve in [false, true] {
        let dir = support::tempdir();
        let journal = dir.path().join("engine.db");
        let policy = policy(|_| {});
        let target = Target::in_memory();
        target.script(
            "fence-old-primary",
            Behaviour {
                rpo_gate: true,
                ..Behaviour::default()
            },
        );
        let mut r = rig(&policy, &journal, &target);
        r.seconds(2, true).await;
        let reply = r.request(operator(OperatorCommand::Failover {
            to: None,
            allow_data_loss: false,
            by: "alice".into(),
            note: "drill".into(),
        }));
        let lifeboat::contract::Reply::Accepted {
            run_id: Some(run), ..
        } = reply
        else {
            panic!("{reply:?}")
        };
        // The executor pauses and ends; its end waits in the channel, not yet handed to
        // the engine, so the driver still counts it as running.
        let status = |r: &Rig| r.engine.driver.journal().run(&run).expect("run").status;
        for _ in 0..100 {
            if status(&r) == RunStatus::AwaitingApproval {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(status(&r), RunStatus::AwaitingApproval);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let req = if approve {
            Request::ApproveRun {
                run: run.clone(),
                by: "bob".into(),
                allow_data_loss: true,
            }
        } else {
            Request::AbortRun {
                run: run.clone(),
                by: "bob".into(),
                reason: "wrong region".into(),
            }
        };
        let answer = r.request(req);
        assert!(
            matches!(answer, lifeboat::contract::Reply::Accepted { .. }),
            "{answer:?}"
        );
        if approve {
            r.until("the approved run completes", |s| s.active.as_str() == WEST)
                .await;
            assert_eq!(status(&r), RunStatus::Completed);
        } else {
            r.until("the aborted run is over", |s| {
                !matches!(s.phase, Phase::FailingOver { .. })
            })
            .await;
            assert_eq!(status(&r), RunStatus::Aborted);
            assert_eq!(r.engine.driver.state().active.as_str(), EAST);
        }
    }
}
