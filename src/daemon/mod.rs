//! `lifeboat run`: the controller as a long-running process. For each service it runs
//! (one policy, or every policy of a directory) it probes every region, feeds the state
//! machine and runs the runbooks it decides on (`service`); one HTTP API on loopback
//! serves status, metrics and control for all of them (`fleet`).
//!
//! Invariant: one process acts on a journal at a time (an exclusive lock beside it), and
//! the daemon never acts on a journal it cannot read.

pub mod api;
pub mod auth;
pub mod client;
pub mod coordinator;
pub mod discovery;
pub mod engine;
pub mod fleet;
pub mod metrics;
mod metrics_readiness;
pub mod openapi;
pub mod readiness;
pub mod role;
pub mod serve;
pub mod service;
pub mod status;
pub mod vote;
pub mod witness;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tracing::info;

use crate::core::model::Policy;
use crate::probe;
use crate::runbook::{Backoff, RetrySettings};
use auth::{Token, Tokens};
use role::Role;
use vote::VoteKey;

pub struct Options {
    /// What to run, read again on every reload: one policy file or a directory of them.
    pub loader: Arc<dyn fleet::Loader>,
    /// `run --policies`: the state directory where the daemon says how to reach it, so
    /// that `lifeboat status` without `--policy` finds it. `None`: one policy.
    pub fleet_dir: Option<PathBuf>,
    /// Where the API listens; port 0 picks a free one (published beside each journal).
    pub listen: SocketAddr,
    /// The named bearer tokens control calls (and reads) accept. Empty: generate one and
    /// keep it in a file beside each journal that only this user can read (loopback only).
    pub tokens: Vec<Token>,
    /// Tokens that may only read the views.
    pub read_tokens: Vec<Token>,
    /// Serve the views without a token on a non-loopback address too (on loopback they
    /// always are).
    pub open_reads: bool,
    /// Host names, besides addresses and `localhost`, a request without a token may name.
    pub hosts: Vec<String>,
    pub role: Role,
    pub limits: serve::Limits,
    /// Run the readiness schedule (a witness, which never acts, does not).
    pub readiness: bool,
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

/// Runs until SIGTERM or SIGINT, then stops cleanly: no new step starts, each running
/// one reaches a journaled point, and the process exits 0. SIGHUP reloads the policies
/// (`fleet::Fleet::reload`) and asks for a readiness round.
///
/// A daemon whose role does not act (a witness, a shadow) serves no control call and
/// builds every step with `role::NeverAct`.
///
/// Errors: a non-loopback address without a token; a port it cannot bind; no service
/// that could start (each one's reason: a witness key missing or unreadable, a journal
/// it cannot read, another process holding the journal's lock, …).
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let loopback = opts.listen.ip().is_loopback();
    if !loopback && opts.tokens.is_empty() {
        bail!(
            "refusing to listen on {} without an API token: anyone who reaches it could start a failover; give one with --token-file or LIFEBOAT_API_TOKEN, or listen on 127.0.0.1",
            opts.listen
        );
    }
    let (tokens, generated) = if opts.tokens.is_empty() {
        let generated = Token {
            name: auth::DEFAULT_NAME.to_string(),
            secret: crate::clients::secret::random_token()?,
            access: auth::Access::Control,
        };
        (vec![generated.clone()], Some(generated))
    } else {
        (opts.tokens, None)
    };
    let tokens = Tokens::new(
        tokens,
        opts.read_tokens,
        loopback || opts.open_reads,
        opts.hosts,
    )?;
    // Bound now, for its address (port 0 picks one), but listening only once the
    // services have started and published it: whoever waits for the port to answer then
    // finds every service's discovery file in place.
    let socket = match opts.listen {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .with_context(|| format!("listen on {}", opts.listen))?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(opts.listen)
        .with_context(|| format!("listen on {}", opts.listen))?;
    let addr = socket.local_addr()?;
    let token_file = match (&opts.fleet_dir, &generated) {
        (Some(dir), Some(t)) => {
            let path = discovery::fleet_token_path(dir);
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            crate::clients::secret::write_private(&path, t.secret.expose())?;
            Some(path)
        }
        _ => None,
    };
    let shared = service::Shared {
        role: opts.role,
        readiness: opts.readiness,
        tokens: Arc::new(tokens),
        generated,
        http: probe::shared_client("probe"),
        url: format!("http://{addr}"),
        nested: opts.fleet_dir.is_some(),
        readers: api::journal_readers(),
    };
    let fleet = fleet::Fleet::new(shared, opts.loader, opts.fleet_dir.clone(), token_file);
    let report = fleet.reload().await;
    if fleet.is_empty() {
        fleet.stop().await;
        let why: Vec<String> = report
            .refused
            .iter()
            .map(|r| match &r.file {
                Some(f) => format!("{f}: {}", r.reason),
                None => r.reason.clone(),
            })
            .collect();
        if let (None, [r]) = (&opts.fleet_dir, report.refused.as_slice()) {
            // One policy: its own error.
            bail!("{}", r.reason);
        }
        bail!("no service could start:\n{}", why.join("\n"));
    }
    let listener = socket
        .listen(1024)
        .with_context(|| format!("listen on {addr}"))?;
    tokio::spawn(serve::serve(
        listener,
        fleet::router(fleet.clone()),
        opts.limits,
    ));
    if !opts.role.acts() {
        info!(
            "this daemon is {}: it never acts and serves no control call",
            opts.role.describe()
        );
    }
    info!("API on http://{addr} for {} service(s)", fleet.len());

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // SIGHUP (`systemctl reload`): read the policies again and check readiness now.
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = sighup.recv() => {
                info!("SIGHUP: reading the policies again and checking readiness now");
                fleet.reload().await;
                fleet.check_readiness().await;
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
        }
    }
    info!("shutting down: no new step will start");
    fleet.stop().await;
    info!("stopped");
    Ok(())
}
