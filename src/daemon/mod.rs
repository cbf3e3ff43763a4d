//! `lifeboat run`: the controller as a long-running process. Probes every region, feeds
//! the state machine, runs the runbooks it decides on, and serves a small HTTP API on
//! loopback for status, metrics and control.
//!
//! Invariant: one process acts on a journal at a time (an exclusive lock beside it), and
//! the daemon never acts on a journal it cannot read.

pub mod api;
pub mod auth;
pub mod client;
pub mod coordinator;
pub mod discovery;
pub mod engine;
pub mod metrics;
mod metrics_readiness;
pub mod openapi;
pub mod readiness;
pub mod role;
pub mod serve;
pub mod status;
pub mod vote;
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
use crate::runbook::{Backoff, Cancel, RetrySettings, StepFactory};
use auth::{Token, Tokens};
use engine::{Engine, Event};
use role::Role;
use vote::VoteKey;

pub struct Options {
    pub policy: Arc<Policy>,
    pub journal_path: PathBuf,
    /// Where the API listens; port 0 picks a free one (published beside the journal).
    pub listen: SocketAddr,
    /// The named bearer tokens control calls (and reads) accept. Empty: generate one and
    /// keep it in a file beside the journal that only this user can read (loopback only).
    pub tokens: Vec<Token>,
    /// Tokens that may only read the views.
    pub read_tokens: Vec<Token>,
    /// Serve the views without a token on a non-loopback address too (on loopback they
    /// always are).
    pub open_reads: bool,
    /// Host names, besides addresses and `localhost`, a request without a token may name.
    pub hosts: Vec<String>,
    pub role: Role,
    pub aws: Option<AwsClients>,
    /// The steps of a controller's runs; a daemon that does not act uses `NeverAct`.
    pub factory: Arc<dyn StepFactory>,
    pub limits: serve::Limits,
    /// Run the readiness schedule (a witness, which never acts, does not).
    pub readiness: bool,
    /// This controller's name among an etcd policy's observers (`run --node`).
    pub node: Option<String>,
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

/// The key votes are signed with: a witness signs with it, a controller with witnesses
/// checks with it.
///
/// Errors: a witness or a controller with witnesses and no key in the policy, or a key
/// that cannot be read or is too short.
fn vote_key(policy: &Policy, role: Role) -> anyhow::Result<Option<VoteKey>> {
    let needed = role == Role::Witness || !policy.guardrails.witnesses.is_empty();
    let Some(r) = policy.guardrails.witness_key.as_ref().filter(|_| needed) else {
        if role == Role::Witness {
            bail!(
                "a witness signs its votes with [guardrails] witness_key, and the policy has none; add witness_key = {{ env = \"LIFEBOAT_WITNESS_KEY\" }} (the controller reads the same key)"
            );
        }
        return Ok(None);
    };
    let secret = crate::clients::secret::resolve(r).context("read [guardrails] witness_key")?;
    Ok(Some(VoteKey::new(secret).map_err(anyhow::Error::msg)?))
}

/// Runs until SIGTERM or SIGINT, then stops cleanly: no new step starts, the running one
/// reaches a journaled point, and the process exits 0.
///
/// A daemon whose role does not act (a witness, a shadow) serves no control call and
/// builds every step with `role::NeverAct`.
///
/// Errors: a non-loopback address without a token; a witness key missing or unreadable;
/// a journal it cannot read (it then acts on nothing); another process holding the
/// journal's lock; a port it cannot bind.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let policy = opts.policy.clone();
    let me = coordinator::me(&policy, opts.node.as_deref(), opts.role)?;
    let loopback = opts.listen.ip().is_loopback();
    if !loopback && opts.tokens.is_empty() {
        bail!(
            "refusing to listen on {} without an API token: anyone who reaches it could start a failover; give one with --token-file or LIFEBOAT_API_TOKEN, or listen on 127.0.0.1",
            opts.listen
        );
    }
    let vote_key = vote_key(&policy, opts.role)?;
    let journal = Arc::new(
        Journal::open_or_create(&opts.journal_path)
            .context("open the journal; lifeboat acts on nothing it cannot read")?,
    );
    let _lock = discovery::lock(&opts.journal_path, "lifeboat run")?;
    let (tokens, token_file) = if opts.tokens.is_empty() {
        let t = crate::clients::secret::random_token()?;
        let path = discovery::token_path(&opts.journal_path);
        crate::clients::secret::write_private(&path, t.expose())?;
        let generated = Token {
            name: auth::DEFAULT_NAME.to_string(),
            secret: t,
            access: auth::Access::Control,
        };
        (vec![generated], Some(path))
    } else {
        (opts.tokens, None)
    };
    let tokens = Tokens::new(
        tokens,
        opts.read_tokens,
        loopback || opts.open_reads,
        opts.hosts,
    )?;
    let factory = role::factory_for(opts.role, opts.factory.clone());

    let (events_tx, mut events_rx) = mpsc::channel::<Event>(1024);
    let cancel = Cancel::new();
    let source = format!("daemon pid {}", std::process::id());
    let clock = WallClock::system();
    let metrics = Arc::new(metrics::Metrics::for_policy(&policy));
    let alerts: Arc<dyn Alerts> = Arc::new(Alerter::new(&policy, opts.aws.as_ref()));
    // Every run that ends leaves a report (and, with a bucket, a journal backup).
    let archiver = Arc::new(crate::archive::Archiver::new(
        policy.clone(),
        journal.clone(),
        opts.aws.clone(),
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
    };
    // A daemon that never acts leaves an unfinished run alone: the controller resumes it.
    // On etcd, the elected leader resumes from the shared record, not from this journal.
    engine
        .restore(opts.role.acts() && me.is_none())
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

    let ctx = probe::Context::new(
        opts.aws.clone(),
        policy.detection.timeout,
        policy.detection.interval,
    );
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
    let readiness_now = Arc::new(tokio::sync::Notify::new());
    let readiness = opts.readiness.then(|| {
        readiness::Schedule {
            policy: policy.clone(),
            factory: opts.factory.clone(),
            aws: opts.aws.clone(),
            status: status_view.clone(),
            events: events_tx.clone(),
            clock: WallClock::system(),
            now: readiness_now.clone(),
        }
        .spawn()
    });

    let heartbeat = Arc::new(AtomicU64::new(0));
    let tick = engine::tick_every(&policy);
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
        role: opts.role,
        tokens: Arc::new(tokens),
        vote_key: vote_key.filter(|_| opts.role == Role::Witness),
        clock: WallClock::system(),
        heartbeat: heartbeat.clone(),
        started,
        stale_after: (tick * 10).max(Duration::from_secs(5)),
        readers: api::journal_readers(),
    };
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("listen on {}", opts.listen))?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve::serve(listener, api::router(api_state), opts.limits));
    discovery::publish(
        &opts.journal_path,
        &discovery::Published {
            url: format!("http://{addr}"),
            pid: std::process::id(),
            token_file,
        },
    )?;
    if !opts.role.acts() {
        info!(
            "this daemon is {}: it never acts and serves no control call",
            opts.role.describe()
        );
    }
    info!(service = %policy.service, "lifeboat is watching `{}` (serving region {}); API on http://{addr}", policy.service, engine.driver.state().active);

    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // SIGHUP (`systemctl reload`) asks for a readiness round at once; the policy itself is
    // read at start only, so it is not reloaded.
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        // The tick goes first when several events are ready: after a stall (the process
        // stopped, the host starved it) the tick is what notices, and the freeze must be
        // in place before the observations that piled up meanwhile are judged.
        let event = tokio::select! {
            biased;
            _ = ticker.tick() => Event::Tick,
            _ = sighup.recv() => {
                if readiness.is_some() {
                    info!("SIGHUP: checking readiness now");
                    readiness_now.notify_one();
                } else {
                    info!("SIGHUP ignored: a witness checks no readiness");
                }
                continue;
            }
            Some(e) = events_rx.recv() => e,
            Some(o) = obs_rx.recv() => Event::Observed(o),
            Some(p) = runs.progress.recv() => Event::Progress(p),
            Some(e) = runs.ended.recv() => Event::RunEnded(e),
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
    if let Some(c) = coordination {
        // The lease then lapses by itself: a successor waits out its TTL. (Resigning
        // would hand over sooner, but only once the run's last step is journaled here.)
        c.abort();
    }
    if let Some(r) = readiness {
        r.abort();
    }
    if let Some(b) = backups {
        b.abort();
    }
    engine.shutdown().await;
    // Drain what the run reported while stopping, so the journal and metrics agree.
    while let Ok(p) = runs.progress.try_recv() {
        engine.handle(Event::Progress(p));
    }
    // The report (and backup) of a run that just ended.
    archiver.flush(Duration::from_secs(30)).await;
    discovery::unpublish(&opts.journal_path);
    info!("stopped");
    Ok(())
}
