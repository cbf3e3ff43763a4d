//! One service inside the daemon: its policy, journal, probes, witnesses, coordinator,
//! readiness schedule and control loop, on tasks of its own. `super::run` starts one per
//! policy and serves them all from one HTTP server (`super::fleet`); what they share is
//! in `Shared`.
//!
//! Invariant: a service's loop, probes and journal belong to it alone. Nothing one
//! service waits on (a hung probe, a journal write, a run held for approval) sits on
//! another's path: each loop is its own task, each probe its own task in the service's
//! scheduler.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument, info, info_span};

use super::auth::{Token, Tokens};
use super::engine::{Engine, Event};
use super::role::{self, Role};
use super::status::StatusView;
use super::{api, coordinator, discovery, metrics, readiness, retry_settings, vote_key, witness};
use crate::clients::aws::AwsClients;
use crate::clock::WallClock;
use crate::core::controller::State;
use crate::core::health::HealthTracker;
use crate::core::model::Policy;
use crate::core::summary::LinkMemory;
use crate::driver::{Alerter, Alerts, Driver, Observers, Parts};
use crate::journal::Journal;
use crate::probe::{
    self,
    scheduler::{Cadence, Scheduler},
};
use crate::runbook::{Cancel, StepFactory};

/// How stale a service's status view may get between observations that change nothing
/// it shows but the probes' latest rounds (a service with ten probes at a 1 s interval
/// observes ten times a second; verdicts, phases and decisions show at once).
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// One service to run: its policy and where its state lives.
#[derive(Clone)]
pub struct ServiceSpec {
    pub policy: Arc<Policy>,
    /// The policy file it came from (`None`: built in code).
    pub file: Option<PathBuf>,
    pub journal_path: PathBuf,
    pub aws: Option<AwsClients>,
    /// The steps of the service's runs; a daemon that does not act uses `NeverAct`.
    pub factory: Arc<dyn StepFactory>,
    /// This controller's name among an etcd policy's observers (`run --node`).
    pub node: Option<String>,
}

/// What every service of the process shares.
#[derive(Clone)]
pub struct Shared {
    pub role: Role,
    /// Run the readiness schedule (a witness or an observer, which never act, do not).
    pub readiness: bool,
    pub tokens: Arc<Tokens>,
    /// A token the daemon generated because none was given: written beside each
    /// service's journal (readable by this user only) for the CLI.
    pub generated: Option<Token>,
    /// The probes' HTTP client: one connection pool for every service.
    pub http: reqwest::Client,
    /// The API's address, published beside each journal.
    pub url: String,
    /// Several services share the API: the CLI reaches each under `/v1/services/NAME`.
    pub nested: bool,
    /// Bounds journal reads through the API, across every service.
    pub readers: Arc<tokio::sync::Semaphore>,
}

/// A service whose loop is running.
pub struct Running {
    pub spec: ServiceSpec,
    pub api: api::ApiState,
    pub router: axum::Router,
    /// Asks for a readiness round now (`None`: this daemon checks no readiness).
    pub readiness_now: Option<Arc<Notify>>,
    task: JoinHandle<()>,
}

impl Running {
    pub fn name(&self) -> &str {
        &self.spec.policy.service
    }

    /// The run this service is in the middle of, if any: a service is not stopped or
    /// replaced under a run.
    pub fn run_in_flight(&self) -> Option<String> {
        let s = self.api.status.read().ok()?;
        s.current_run.as_ref().map(|r| r.run_id.to_string())
    }

    /// How long ago this service's loop last turned.
    pub fn loop_age(&self) -> Duration {
        self.api.loop_age()
    }

    /// Stops the service as `SIGTERM` stops the daemon: no new step starts, the running
    /// one reaches a journaled point, the journal's lock is released.
    pub async fn stop(self) {
        if self.api.events.send(Event::Shutdown).await.is_ok() {
            let _ = self.task.await;
        }
    }
}

/// Starts one service: opens and locks its journal, restores its state, starts its
/// probes, pollers, coordinator and readiness schedule, publishes how the CLI reaches it,
/// and spawns its loop.
///
/// Errors: an etcd node name the policy does not list; a witness key missing or
/// unreadable; a journal it cannot read (it then acts on nothing); another process
/// holding the journal's lock; a probe it cannot build.
pub async fn start(spec: ServiceSpec, shared: &Shared) -> anyhow::Result<Running> {
    let policy = spec.policy.clone();
    let me = coordinator::me(&policy, spec.node.as_deref(), shared.role)?;
    let vote_key = vote_key(&policy, shared.role)?;
    let journal = Arc::new(
        Journal::open_or_create(&spec.journal_path)
            .context("open the journal; lifeboat acts on nothing it cannot read")?,
    );
    let lock = discovery::lock(&spec.journal_path, "lifeboat run")?;
    let token_file = match &shared.generated {
        Some(t) => {
            let path = discovery::token_path(&spec.journal_path);
            crate::clients::secret::write_private(&path, t.secret.expose())?;
            Some(path)
        }
        None => None,
    };
    let factory = role::factory_for(shared.role, spec.factory.clone());

    let (events_tx, mut events_rx) = mpsc::channel::<Event>(1024);
    let cancel = Cancel::new();
    let source = format!("daemon pid {}", std::process::id());
    let clock = WallClock::system();
    let metrics = Arc::new(metrics::Metrics::for_policy(&policy));
    let alerts: Arc<dyn Alerts> = Arc::new(Alerter::new(&policy, spec.aws.as_ref()));
    // Every run that ends leaves a report (and, with a bucket, a journal backup).
    let archiver = Arc::new(crate::archive::Archiver::new(
        policy.clone(),
        journal.clone(),
        spec.aws.clone(),
        clock.clone(),
    ));
    let (driver, mut runs) = Driver::new(Parts {
        policy: policy.clone(),
        journal: journal.clone(),
        factory,
        alerts,
        observer: Arc::new(Observers(vec![metrics.clone(), archiver.clone()])),
        clock: clock.clone(),
        source: format!("lifeboat daemon (pid {})", std::process::id()),
        retry: retry_settings(&policy),
        cancel: cancel.clone(),
    });
    let tracker = HealthTracker::for_policy(&policy);
    let links = LinkMemory::default();
    let state = State::new(&policy, policy.regions.primary.clone(), clock.now());
    let initial = super::status::build(
        &policy,
        &state,
        &tracker,
        &links,
        None,
        clock.now(),
        source.clone(),
    );
    let status_view: Arc<RwLock<StatusView>> = Arc::new(RwLock::new(initial));
    let started = Instant::now();
    let mut engine = Engine {
        driver,
        tracker,
        links,
        witnesses: witness::Witnesses::new(
            &policy.guardrails.witnesses,
            policy.detection.interval * 3,
        )
        .suspicion_window(witness::Suspect::window_for(&policy)),
        status: status_view.clone(),
        metrics: metrics.clone(),
        clock,
        cancel,
        source,
        started,
        events: Some(events_tx.clone()),
        standings: 0,
        votes: None,
        publish_every: PUBLISH_EVERY,
        published: Default::default(),
    };
    // A daemon that never acts leaves an unfinished run alone: the controller resumes it.
    // On etcd, the elected leader resumes from the shared record, not from this journal.
    engine
        .restore(shared.role.acts() && me.is_none())
        .context("read the service's state from the journal")?;
    let coordination = match (&policy.coordination, me) {
        (crate::core::model::Coordination::Etcd(c), Some(me)) => {
            // Nothing acts before the coordinator has won an election.
            engine
                .driver
                .standing(crate::coord::Standing::Following { leader: None });
            engine.publish();
            let (votes, own) = coordinator::Votes::new(&policy, c, &me);
            engine.votes = Some(votes);
            Some(coordinator::spawn(&policy, c, me, own, events_tx.clone()))
        }
        _ => None,
    };

    let ctx = probe::Context {
        http: shared.http.clone(),
        ..probe::Context::new(
            spec.aws.clone(),
            policy.detection.timeout,
            policy.detection.interval,
        )
    };
    let probes = probe::build_all(&policy, &ctx, None).context("build the probes")?;
    let (obs_tx, mut obs_rx) = mpsc::channel(1024);
    let mut scheduler = Scheduler::start(
        probes,
        Cadence::for_policy(&policy),
        probe::Clock::system(),
        obs_tx,
        fastrand::u64(..),
    );
    if let Some(mut restarts) = scheduler.restarts() {
        let events = events_tx.clone();
        tokio::spawn(async move {
            while let Some(r) = restarts.recv().await {
                if events.send(Event::ProbeRestarted(r)).await.is_err() {
                    return;
                }
            }
        });
    }

    let backups = archiver.spawn_scheduled_backups();
    let readiness_now = shared.readiness.then(|| Arc::new(Notify::new()));
    let readiness = readiness_now.as_ref().map(|now| {
        readiness::Schedule {
            policy: policy.clone(),
            factory: spec.factory.clone(),
            aws: spec.aws.clone(),
            status: status_view.clone(),
            events: events_tx.clone(),
            clock: WallClock::system(),
            now: now.clone(),
        }
        .spawn()
    });

    let heartbeat = Arc::new(AtomicU64::new(0));
    let tick = super::engine::tick_every(&policy);
    let pollers = witness::spawn_pollers(witness::Pollers {
        urls: &policy.guardrails.witnesses,
        service: &policy.service,
        key: vote_key.clone(),
        every: tick,
        hurried: witness::hurried(policy.detection.confirm_interval, tick),
        timeout: policy.detection.timeout,
        ask_now: &engine.witnesses.ask_now,
        suspect: &engine.witnesses.suspect,
        events: &events_tx,
    })?;
    let api_state = api::ApiState {
        status: status_view.clone(),
        metrics,
        journal: journal.clone(),
        service: policy.service.clone(),
        events: events_tx.clone(),
        role: shared.role,
        tokens: shared.tokens.clone(),
        vote_key: vote_key.filter(|_| shared.role == Role::Witness),
        clock: WallClock::system(),
        heartbeat: heartbeat.clone(),
        started,
        stale_after: (tick * 10).max(Duration::from_secs(5)),
        readers: shared.readers.clone(),
    };
    discovery::publish(
        &spec.journal_path,
        &discovery::Published {
            url: shared.url.clone(),
            pid: std::process::id(),
            token_file,
            service: shared.nested.then(|| policy.service.clone()),
        },
    )?;
    info!(service = %policy.service, "lifeboat is watching `{}` (serving region {})", policy.service, engine.driver.state().active);

    let journal_path = spec.journal_path.clone();
    let span = info_span!("service", name = %policy.service);
    let task = tokio::spawn(
        async move {
            let _lock = lock;
            let mut ticker = tokio::time::interval(tick);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // The tick goes first when several events are ready: after a stall (the
                // process stopped, the host starved it) the tick is what notices, and the
                // freeze must be in place before the observations that piled up meanwhile
                // are judged.
                let event = tokio::select! {
                    biased;
                    _ = ticker.tick() => Event::Tick,
                    Some(e) = events_rx.recv() => e,
                    Some(o) = obs_rx.recv() => Event::Observed(o),
                    Some(p) = runs.progress.recv() => Event::Progress(p),
                    Some(e) = runs.ended.recv() => Event::RunEnded(e),
                };
                heartbeat.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                if !engine.handle(event) {
                    break;
                }
            }
            info!("stopping: no new step will start");
            scheduler.stop().await;
            for p in pollers {
                p.abort();
            }
            if let Some(c) = coordination {
                // The lease then lapses by itself: a successor waits out its TTL.
                // (Resigning would hand over sooner, but only once the run's last step is
                // journaled here.)
                c.abort();
            }
            if let Some(r) = readiness {
                r.abort();
            }
            if let Some(b) = backups {
                b.abort();
            }
            engine.shutdown().await;
            // Drain what the run reported while stopping, so the journal and metrics
            // agree.
            while let Ok(p) = runs.progress.try_recv() {
                engine.handle(Event::Progress(p));
            }
            // The report (and backup) of a run that just ended.
            archiver.flush(Duration::from_secs(30)).await;
            discovery::unpublish(&journal_path);
            info!("stopped");
        }
        .instrument(span),
    );
    let router = api::router(api_state.clone());
    Ok(Running {
        spec,
        api: api_state,
        router,
        readiness_now,
        task,
    })
}
