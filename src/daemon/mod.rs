//! `lifeboat run`: the controller as a long-running process. Probes every region, feeds
//! the state machine, runs the runbooks it decides on, and serves a small HTTP API on
//! loopback for status, metrics and control.
//!
//! Invariant: one process acts on a journal at a time (an exclusive lock beside it), and
//! the daemon never acts on a journal it cannot read.

pub mod api;
pub mod client;
pub mod discovery;
pub mod engine;
pub mod metrics;
pub mod openapi;
pub mod status;
pub mod witness;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::info;

use crate::clients::aws::AwsClients;
use crate::clients::secret::Secret;
use crate::clock::WallClock;
use crate::core::controller::State;
use crate::core::health::HealthTracker;
use crate::core::model::Policy;
use crate::core::summary::LinkMemory;
use crate::driver::{Alerter, Alerts, Driver, Parts};
use crate::journal::Journal;
use crate::probe::{self, scheduler::Scheduler};
use crate::runbook::{Backoff, Cancel, RetrySettings, StepFactory};
use engine::{Engine, Event};

pub struct Options {
    pub policy: Arc<Policy>,
    pub journal_path: PathBuf,
    /// Where the API listens; port 0 picks a free one (published beside the journal).
    pub listen: SocketAddr,
    /// The bearer token control calls need. `None`: generate one and keep it in a file
    /// beside the journal that only this user can read (loopback only).
    pub token: Option<Secret>,
    pub aws: Option<AwsClients>,
    pub factory: Arc<dyn StepFactory>,
}

/// Retries sized to the policy: a policy that probes every second wants steps re-checked
/// in a fraction of a second, one that probes every minute does not.
pub fn retry_settings(policy: &Policy) -> RetrySettings {
    let i = policy.detection.interval;
    RetrySettings {
        apply: Backoff {
            first: (i / 4).clamp(Duration::from_millis(100), Duration::from_secs(2)),
            max: (i * 4).clamp(Duration::from_secs(1), Duration::from_secs(30)),
            factor: 2.0,
            jitter: true,
        },
        verify: Backoff {
            first: (i / 10).clamp(Duration::from_millis(50), Duration::from_secs(1)),
            max: (i * 2).clamp(Duration::from_millis(500), Duration::from_secs(10)),
            factor: 1.5,
            jitter: true,
        },
    }
}

/// Runs until SIGTERM or SIGINT, then stops cleanly: no new step starts, the running one
/// reaches a journaled point, and the process exits 0.
///
/// Errors: a non-loopback address without a token; a journal it cannot read (it then acts
/// on nothing); another process holding the journal's lock; a port it cannot bind.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let policy = opts.policy.clone();
    if !opts.listen.ip().is_loopback() && opts.token.is_none() {
        bail!(
            "refusing to listen on {} without an API token: anyone who reaches it could start a failover; give one with --token-file or LIFEBOAT_API_TOKEN, or listen on 127.0.0.1",
            opts.listen
        );
    }
    let journal = Arc::new(
        Journal::open_or_create(&opts.journal_path)
            .context("open the journal; lifeboat acts on nothing it cannot read")?,
    );
    let _lock = discovery::lock(&opts.journal_path, "lifeboat run")?;
    let token = match opts.token {
        Some(t) => (t, None),
        None => {
            let t = crate::clients::secret::random_token()?;
            let path = discovery::token_path(&opts.journal_path);
            crate::clients::secret::write_private(&path, t.expose())?;
            (t, Some(path))
        }
    };

    let (events_tx, mut events_rx) = mpsc::channel::<Event>(1024);
    let cancel = Cancel::new();
    let source = format!("daemon pid {}", std::process::id());
    let clock = WallClock::system();
    let metrics = Arc::new(metrics::Metrics::for_policy(&policy));
    let alerts: Arc<dyn Alerts> = Arc::new(Alerter::new(&policy, opts.aws.as_ref()));
    let (driver, mut runs) = Driver::new(Parts {
        policy: policy.clone(),
        journal: journal.clone(),
        factory: opts.factory.clone(),
        alerts,
        observer: metrics.clone(),
        clock: clock.clone(),
        source: format!("lifeboat daemon (pid {})", std::process::id()),
        retry: retry_settings(&policy),
        cancel: cancel.clone(),
    });
    let tracker = HealthTracker::for_policy(&policy);
    let links = LinkMemory::default();
    let state = State::new(&policy, policy.regions.primary.clone(), clock.now());
    let initial = status::build(
        &policy,
        &state,
        &tracker,
        &links,
        None,
        clock.now(),
        source.clone(),
    );
    let status_view = Arc::new(RwLock::new(initial));
    let started = Instant::now();
    let mut engine = Engine {
        driver,
        tracker,
        links,
        witnesses: witness::Witnesses::new(
            &policy.guardrails.witnesses,
            policy.detection.interval * 3,
        ),
        status: status_view.clone(),
        metrics: metrics.clone(),
        clock,
        cancel,
        source,
        started,
    };
    engine
        .restore()
        .context("read the service's state from the journal")?;

    let ctx = probe::Context::new(
        opts.aws.clone(),
        policy.detection.timeout,
        policy.detection.interval,
    );
    let probes = probe::build_all(&policy, &ctx, None).context("build the probes")?;
    let (obs_tx, mut obs_rx) = mpsc::channel(1024);
    let scheduler = Scheduler::start(
        probes,
        policy.detection.interval,
        probe::Clock::system(),
        obs_tx,
        fastrand::u64(..),
    );

    let heartbeat = Arc::new(AtomicU64::new(0));
    let tick = engine::tick_every(&policy);
    let pollers = witness::spawn_pollers(
        &policy.guardrails.witnesses,
        tick,
        policy.detection.timeout,
        &engine.witnesses.ask_now,
        &events_tx,
    )?;
    let api_state = api::ApiState {
        status: status_view,
        metrics,
        journal: journal.clone(),
        service: policy.service.clone(),
        events: events_tx.clone(),
        token: token.0,
        heartbeat: heartbeat.clone(),
        started,
        stale_after: (tick * 10).max(Duration::from_secs(5)),
    };
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("listen on {}", opts.listen))?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, api::router(api_state)).await;
    });
    discovery::publish(
        &opts.journal_path,
        &discovery::Published {
            url: format!("http://{addr}"),
            pid: std::process::id(),
            token_file: token.1,
        },
    )?;
    info!(service = %policy.service, "lifeboat is watching `{}` (serving region {}); API on http://{addr}", policy.service, engine.driver.state().active);

    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let event = tokio::select! {
            Some(e) = events_rx.recv() => e,
            Some(o) = obs_rx.recv() => Event::Observed(o),
            Some(p) = runs.progress.recv() => Event::Progress(p),
            Some(e) = runs.ended.recv() => Event::RunEnded(e),
            _ = ticker.tick() => Event::Tick,
            _ = tokio::signal::ctrl_c() => Event::Shutdown,
            _ = sigterm.recv() => Event::Shutdown,
        };
        heartbeat.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        if !engine.handle(event) {
            break;
        }
    }
    info!("shutting down: no new step will start");
    scheduler.stop().await;
    for p in pollers {
        p.abort();
    }
    engine.shutdown().await;
    // Drain what the run reported while stopping, so the journal and metrics agree.
    while let Ok(p) = runs.progress.try_recv() {
        engine.handle(Event::Progress(p));
    }
    discovery::unpublish(&opts.journal_path);
    info!("stopped");
    Ok(())
}
