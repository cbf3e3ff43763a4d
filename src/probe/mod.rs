//! Probe adapters: one per probe kind, each behind the narrow `Probe` trait, built per
//! (probe, region) from the policy by `build`, and run on their intervals by `scheduler`.
//!
//! A probe round always ends: `RegionProbe::run` bounds every check with the policy's
//! `detection.timeout` and turns whatever happened into an `Observation` whose reason
//! names the endpoint, what failed and how long it took. No reason carries a secret.

mod build;
mod command;
mod heartbeat;
pub(crate) mod http;
mod postgres;
mod rds;
mod redis;
mod s3;
pub mod scheduler;
mod tcp;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::core::health::{Lag, Observation, Role};
use crate::core::model::{Component, ProbeSpec, RegionName};
use crate::core::time::{Ts, fmt_duration, millis};

pub use build::{
    BuildError, Context, build, build_all, http_client, http_client_for, needs_aws, shared_client,
};
pub use command::CommandProbe;
pub use heartbeat::{Alive, HeartbeatProbe, Source as HeartbeatSource};
pub use http::{HttpExpect, HttpProbe};
pub use postgres::PostgresProbe;
pub use rds::{RdsProbe, RdsTarget};
pub use redis::RedisProbe;
pub use s3::S3Canary;
pub use tcp::TcpProbe;

/// One external system checked once. Implemented by each adapter, and by fakes in tests.
#[async_trait]
pub trait Probe: Send + Sync {
    /// What is checked, for messages: `GET http://…/health`, `postgres user@host:5432/db`.
    /// Never a secret.
    fn endpoint(&self) -> String;

    /// One round. The caller bounds it with a timeout by dropping the future, so an
    /// adapter must leave nothing behind when dropped (connections close on drop; the
    /// command probe kills its process group).
    async fn check(&self) -> Result<Facts, Failure>;

    /// Returns when the adapter notices, between rounds, that its target went away (a
    /// connection it holds was closed), so the scheduler can look at once rather than at
    /// the next round. Dropped and called again freely. Never returns by default.
    async fn dropped(&self) {
        std::future::pending::<()>().await
    }
}

/// What a round learned besides pass or fail.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    pub role: Option<Role>,
    pub lag: Option<Lag>,
    /// A short note for people: "HTTP 200", "in service 2 ≥ 1".
    pub detail: Option<String>,
}

impl Facts {
    pub fn detail(detail: impl Into<String>) -> Facts {
        Facts {
            detail: Some(detail.into()),
            ..Facts::default()
        }
    }
}

/// A failed round: what failed (the endpoint and the time taken are added by the caller),
/// and whatever was learned before it failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub what: String,
    pub facts: Facts,
}

impl Failure {
    pub fn new(what: impl Into<String>) -> Failure {
        Failure {
            what: what.into(),
            facts: Facts::default(),
        }
    }

    pub fn with_facts(mut self, facts: Facts) -> Failure {
        self.facts = facts;
        self
    }
}

impl From<String> for Failure {
    fn from(what: String) -> Failure {
        Failure::new(what)
    }
}

/// The longest text a probe's reason or detail quotes, in characters.
const REASON_MAX: usize = 400;

/// One probe of the policy bound to one region: the unit the scheduler runs.
#[derive(Clone)]
pub struct RegionProbe {
    pub name: String,
    pub region: RegionName,
    pub component: Component,
    pub kind: &'static str,
    pub critical: bool,
    /// The policy's `detection.timeout`: a round that takes longer fails.
    pub timeout: Duration,
    probe: Arc<dyn Probe>,
}

impl std::fmt::Debug for RegionProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionProbe")
            .field("name", &self.name)
            .field("region", &self.region)
            .field("endpoint", &self.probe.endpoint())
            .finish_non_exhaustive()
    }
}

impl RegionProbe {
    pub fn new(
        spec: &ProbeSpec,
        region: RegionName,
        timeout: Duration,
        probe: Arc<dyn Probe>,
    ) -> RegionProbe {
        RegionProbe {
            name: spec.name.clone(),
            region,
            component: spec.component,
            kind: spec.kind(),
            critical: spec.critical,
            timeout,
            probe,
        }
    }

    /// See `Probe::dropped`.
    pub async fn dropped(&self) {
        self.probe.dropped().await
    }

    pub fn endpoint(&self) -> String {
        self.probe.endpoint()
    }

    /// Runs one round, never longer than the timeout, and reports it as an observation
    /// stamped by `clock` when the result is known.
    pub async fn run(&self, clock: &Clock) -> Observation {
        let started = tokio::time::Instant::now();
        let result = tokio::time::timeout(self.timeout, self.probe.check()).await;
        let latency = started.elapsed();
        let at = clock.now();
        let (obs, facts) = match result {
            Ok(Ok(facts)) => (
                Observation::ok(&self.name, &self.region, at, latency),
                facts,
            ),
            Ok(Err(f)) => (
                Observation::failed(
                    &self.name,
                    &self.region,
                    at,
                    latency,
                    // Whatever the adapter quotes (a server's error, a program's last
                    // words) is cleaned and bounded once more here, where every probe's
                    // reason passes on its way to the status.
                    format!(
                        "{}: {} (after {})",
                        self.endpoint(),
                        snippet(&f.what, REASON_MAX),
                        fmt_latency(latency)
                    ),
                ),
                f.facts,
            ),
            Err(_) => (
                Observation::failed(
                    &self.name,
                    &self.region,
                    at,
                    latency,
                    format!(
                        "{}: timed out after {}",
                        self.endpoint(),
                        fmt_duration(self.timeout)
                    ),
                ),
                Facts::default(),
            ),
        };
        Observation {
            role: facts.role,
            lag: facts.lag,
            detail: facts.detail.map(|d| snippet(&d, REASON_MAX)),
            ..obs
        }
    }
}

/// Latency the way the table shows it: whole milliseconds below ten seconds.
pub fn fmt_latency(d: Duration) -> String {
    let ms = millis(d);
    if ms < 10_000 {
        format!("{ms}ms")
    } else {
        fmt_duration(d)
    }
}

/// Timestamps for observations: the wall clock read once, then advanced by the monotonic
/// clock. Rounds are therefore ordered even if the wall clock steps, and tests on tokio's
/// paused clock get exact times. (Spotting wall-clock jumps is the self-distrust
/// guardrail's job, which compares the two clocks.)
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall0: Ts,
    mono0: tokio::time::Instant,
}

impl Clock {
    /// Starts at the system's wall-clock time.
    pub fn system() -> Clock {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(millis)
            .unwrap_or(0);
        Clock::starting_at(Ts(now))
    }

    /// Starts at `ts` now (tests use a round number).
    pub fn starting_at(ts: Ts) -> Clock {
        Clock {
            wall0: ts,
            mono0: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Ts {
        self.wall0.plus(self.mono0.elapsed())
    }
}

/// A URL fit for messages: any user name and password replaced. Policies refuse inline
/// secrets, so this is a second line of defence, not the first.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => "<unparsable URL>".to_string(),
    }
}

/// The first `max` characters of `s` on one line, for quoting what a server or a
/// program said in a reason: control and invisible characters removed (see
/// `clients::http::sanitize`).
pub(crate) fn snippet(s: &str, max: usize) -> String {
    crate::clients::http::sanitize(s, max)
}

/// The last `n` non-empty lines of a program's output on one line (`a | b`), for
/// quoting what it said in a message; `None` when it said nothing.
pub(crate) fn snippet_lines(output: &str, n: usize) -> Option<String> {
    let mut last: Vec<&str> = output
        .lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .collect();
    last.reverse();
    (!last.is_empty()).then(|| {
        last.iter()
            .map(|l| snippet(l, 160))
            .collect::<Vec<_>>()
            .join(" | ")
    })
}

/// An error and its causes in one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

/// Runs every probe once, all at the same time; the observations come back in the order
/// of `probes` (not the order they finished in).
pub async fn round(probes: &[RegionProbe], clock: &Clock) -> Vec<Observation> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, p) in probes.iter().enumerate() {
        let (p, clock) = (p.clone(), *clock);
        tasks.spawn(async move { (i, p.run(&clock).await) });
    }
    let mut out: Vec<(usize, Observation)> = Vec::with_capacity(probes.len());
    while let Some(done) = tasks.join_next().await {
        // A probe task only ends early if it panicked; that round is simply missing.
        if let Ok(pair) = done {
            out.push(pair);
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, o)| o).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Never;

    #[async_trait]
    impl Probe for Never {
        fn endpoint(&self) -> String {
            "never".into()
        }
        async fn check(&self) -> Result<Facts, Failure> {
            std::future::pending().await
        }
    }

    struct Refuses;

    #[async_trait]
    impl Probe for Refuses {
        fn endpoint(&self) -> String {
            "tcp 127.0.0.1:1".into()
        }
        async fn check(&self) -> Result<Facts, Failure> {
            tokio::time::sleep(Duration::from_millis(3)).await;
            Err(Failure::new("could not connect").with_facts(Facts::detail("tried once")))
        }
    }

    fn spec() -> ProbeSpec {
        ProbeSpec {
            name: "api".into(),
            component: Component::Api,
            critical: true,
            target: None,
            regions: vec![RegionName::new("a")],
            check: crate::core::model::ProbeCheck::Tcp,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_never_answers_fails_with_the_timeout_in_its_reason() {
        let p = RegionProbe::new(
            &spec(),
            RegionName::new("a"),
            Duration::from_millis(500),
            Arc::new(Never),
        );
        let obs = p.run(&Clock::starting_at(Ts::from_secs(100))).await;
        assert_eq!(obs.reason(), Some("never: timed out after 500ms"));
        assert_eq!(obs.latency, Duration::from_millis(500));
        assert_eq!(obs.at, Ts::from_millis(100_500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_names_the_endpoint_and_the_time_it_took_and_keeps_its_facts() {
        let p = RegionProbe::new(
            &spec(),
            RegionName::new("a"),
            Duration::from_secs(1),
            Arc::new(Refuses),
        );
        let obs = p.run(&Clock::starting_at(Ts::ZERO)).await;
        assert_eq!(
            obs.reason(),
            Some("tcp 127.0.0.1:1: could not connect (after 3ms)")
        );
        assert_eq!(obs.detail.as_deref(), Some("tried once"));
    }

    #[test]
    fn urls_in_messages_lose_their_credentials() {
        assert_eq!(
            redact_url("redis://:hunter2@127.0.0.1:6379/0"),
            "redis://:REDACTED@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:8080/health"),
            "http://127.0.0.1:8080/health"
        );
        assert!(!redact_url("http://bob:pw@h/").contains("pw"));
    }
}
