//! The daemon's side of readiness and reports, on its engine with fake steps: a readiness
//! round that changes something is alerted once per change (with the reason and the
//! fix), kept in the audit trail, exported as `lifeboat_readiness_ok` and shown by
//! `status`; a round with the same findings says nothing. Every run that ends is handed
//! to the archive hook (reports, backups), and only runs that end.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use lifeboat::core::controller::{Decision, OperatorCommand, State};
use lifeboat::core::health::{HealthTracker, Observation};
use lifeboat::core::ids::RunId;
use lifeboat::core::kind::StepKind;
use lifeboat::core::model::{Direction, Policy, RegionName};
use lifeboat::core::readiness::{Readiness, ReadinessReport, RunbookReadiness, StepReadiness};
use lifeboat::core::summary::LinkMemory;
use lifeboat::daemon::engine::{Engine, Event};
use lifeboat::daemon::metrics::Metrics;
use lifeboat::daemon::status;
use lifeboat::daemon::witness::Witnesses;
use lifeboat::driver::{Alerts, Driver, Events, Observer, Observers, Parts, Request};
use lifeboat::journal::Journal;
use lifeboat::runbook::{Cancel, RetrySettings};
use support::{Factory, Target};

#[derive(Default)]
struct Recorded(Mutex<Vec<Decision>>);

impl Alerts for Recorded {
    fn send(&self, d: &Decision) {
        self.0.lock().expect("lock").push(d.clone());
    }
}

#[derive(Default)]
struct Archived(Mutex<Vec<RunId>>);

impl Observer for Archived {
    fn run_over(&self, run: &RunId) {
        self.0.lock().expect("lock").push(run.clone());
    }
}

struct Rig {
    engine: Engine,
    events: Events,
    alerts: Arc<Recorded>,
    archived: Arc<Archived>,
    metrics: Arc<Metrics>,
    journal: Arc<Journal>,
}

fn policy() -> Arc<Policy> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/sandbox.toml");
    let (mut p, _) = lifeboat::policy::load_valid(&path).expect("the sandbox policy is valid");
    p.guardrails.quorum = 1;
    p.guardrails.witnesses = vec![];
    Arc::new(p)
}

fn rig(dir: &tempfile::TempDir) -> Rig {
    let policy = policy();
    let journal = Arc::new(Journal::open_or_create(&dir.path().join("j.db")).expect("journal"));
    let alerts = Arc::new(Recorded::default());
    let archived = Arc::new(Archived::default());
    let clock = support::tokio_clock();
    let metrics = Arc::new(Metrics::for_policy(&policy));
    let cancel = Cancel::new();
    let (driver, events) = Driver::new(Parts {
        policy: policy.clone(),
        journal: journal.clone(),
        factory: Arc::new(Factory(Target::in_memory())),
        alerts: alerts.clone(),
        observer: Arc::new(Observers(vec![metrics.clone(), archived.clone()])),
        clock: clock.clone(),
        source: "readiness test".into(),
        retry: RetrySettings::default(),
        cancel: cancel.clone(),
    });
    let state = State::new(&policy, policy.regions.primary.clone(), clock.now());
    let tracker = HealthTracker::for_policy(&policy);
    let links = LinkMemory::default();
    let view = status::build(
        &policy,
        &state,
        &tracker,
        &links,
        None,
        clock.now(),
        "t".into(),
    );
    let mut engine = Engine {
        driver,
        tracker,
        links,
        witnesses: Witnesses::new(&[], policy.detection.interval * 3),
        status: Arc::new(RwLock::new(view)),
        metrics: metrics.clone(),
        clock,
        cancel,
        source: "readiness test".into(),
        started: tokio::time::Instant::now(),
        events: None,
        standings: 0,
        publish_every: std::time::Duration::ZERO,
        published: Default::default(),
        votes: None,
    };
    engine.restore(true).expect("restore");
    Rig {
        engine,
        events,
        alerts,
        archived,
        metrics,
        journal,
    }
}

fn round(at_ms: u64, move_dns: Readiness) -> ReadinessReport {
    let step = |name: &str, kind, readiness| StepReadiness {
        step: name.into(),
        kind,
        region: RegionName::new("us-west-2"),
        readiness,
    };
    ReadinessReport {
        service: "sandbox-orders".into(),
        at: lifeboat::core::time::Ts(support::T0 + at_ms),
        serving: RegionName::new("us-east-1"),
        runbooks: vec![RunbookReadiness {
            direction: Direction::Failover,
            from: RegionName::new("us-east-1"),
            to: RegionName::new("us-west-2"),
            next: true,
            steps: vec![
                step(
                    "promote-standby",
                    StepKind::PostgresPromote,
                    Readiness::ready("streams"),
                ),
                step("move-dns", StepKind::Route53Switch, move_dns),
            ],
            plan_error: None,
        }],
        permissions: Readiness::cannot_tell("moto cannot simulate"),
        took_ms: 12,
    }
}

fn metric(m: &Metrics, line: &str) -> Option<String> {
    m.encode()
        .lines()
        .find(|l| l.starts_with(line))
        .map(str::to_string)
}

#[tokio::test(start_paused = true)]
async fn every_readiness_change_is_alerted_once_with_its_fix_and_shown_and_exported() {
    let dir = support::tempdir();
    let mut r = rig(&dir);
    let ok_line = "lifeboat_readiness_ok{service=\"sandbox-orders\",direction=\"failover\",step=\"move-dns\"}";

    r.engine.handle(Event::Readiness(Box::new(round(
        1_000,
        Readiness::ready("pair"),
    ))));
    assert!(
        r.alerts.0.lock().expect("lock").is_empty(),
        "a green first round says nothing"
    );
    assert_eq!(
        metric(&r.metrics, ok_line).as_deref(),
        Some(&*format!("{ok_line} 1"))
    );
    assert!(
        metric(
            &r.metrics,
            "lifeboat_readiness_cannot_tell{service=\"sandbox-orders\",direction=\"all\",step=\"permissions\"}"
        )
        .is_some_and(|l| l.ends_with(" 1"))
    );

    let red = || {
        round(
            2_000,
            Readiness::not_ready(
                "the switch health check `hc-1` does not exist",
                "recreate the switch (terraform/route53.tf)",
            ),
        )
    };
    r.engine.handle(Event::Readiness(Box::new(red())));
    r.engine.handle(Event::Readiness(Box::new(red())));
    let alerts = r.alerts.0.lock().expect("lock").clone();
    assert_eq!(alerts.len(), 1, "one alert per change: {alerts:?}");
    let said = format!("{}: {}", alerts[0].summary, alerts[0].reason);
    assert_eq!(alerts[0].reason.label(), "readiness_changed");
    assert!(
        said.contains("failover step `move-dns` is NOT ready")
            && said.contains(
                "was ready, now not ready: the switch health check `hc-1` does not exist"
            )
            && said.contains("fix: recreate the switch"),
        "{said}"
    );
    assert_eq!(
        metric(&r.metrics, ok_line).as_deref(),
        Some(&*format!("{ok_line} 0"))
    );
    let view = r.engine.status.read().expect("status").clone();
    let shown = view.readiness.expect("status shows the latest round");
    assert!(!shown.ok());
    let audit = r
        .journal
        .latest_record("sandbox-orders", &["readiness_changed"])
        .expect("audit")
        .expect("the change is in the audit trail");
    assert!(audit.detail.contains("move-dns"), "{}", audit.detail);

    r.engine.handle(Event::Readiness(Box::new(round(
        3_000,
        Readiness::ready("pair"),
    ))));
    let alerts = r.alerts.0.lock().expect("lock").clone();
    assert_eq!(alerts.len(), 2);
    assert!(
        alerts[1].summary.contains("is ready again"),
        "{}",
        alerts[1].summary
    );
    assert_eq!(
        metric(&r.metrics, ok_line).as_deref(),
        Some(&*format!("{ok_line} 1"))
    );
}

#[tokio::test(start_paused = true)]
async fn every_run_that_ends_is_handed_to_the_archive_and_no_other() {
    let dir = support::tempdir();
    let mut r = rig(&dir);
    // Both regions healthy, so an operator's failover is allowed.
    for _ in 0..3 {
        let now = r.engine.clock.now();
        let probes: Vec<String> = r
            .engine
            .driver
            .policy()
            .probes
            .iter()
            .map(|p| p.name.clone())
            .collect();
        for region in ["us-east-1", "us-west-2"] {
            for p in &probes {
                let obs = Observation::ok(
                    p,
                    &RegionName::new(region),
                    now,
                    std::time::Duration::from_millis(3),
                );
                r.engine.handle(Event::Observed(obs));
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    r.engine.handle(Event::Request(
        Request::Operator {
            cmd: OperatorCommand::Failover {
                by: "alice".into(),
                note: "drill".into(),
                to: None,
                allow_data_loss: false,
            },
            dry_run: false,
            expect_to: None,
        },
        tx,
    ));
    let reply = rx.try_recv().expect("an answer");
    let run = match reply {
        lifeboat::contract::Reply::Accepted {
            run_id: Some(run), ..
        } => run,
        other => panic!("{other:?}"),
    };
    assert!(
        r.archived.0.lock().expect("lock").is_empty(),
        "not before it ends"
    );
    let ended = r.events.ended.recv().await.expect("the run ends");
    while let Ok(p) = r.events.progress.try_recv() {
        r.engine.handle(Event::Progress(p));
    }
    r.engine.handle(Event::RunEnded(ended));
    assert_eq!(*r.archived.0.lock().expect("lock"), vec![run]);
}
