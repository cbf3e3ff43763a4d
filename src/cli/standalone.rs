//! When no daemon runs on a service, operator commands act themselves, through the same
//! driver the daemon uses: this module sets it up (under the journal's lock), gives it one
//! round of probes to judge by, and follows a run it starts to the end, rendering its
//! progress and sending the same alerts the daemon would.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::FactoryFn;
use super::progress::Renderer;
use crate::clients::aws::AwsClients;
use crate::clock::WallClock;
use crate::core::controller::Input;
use crate::core::health::HealthTracker;
use crate::core::model::Policy;
use crate::core::summary::{LinkMemory, own_vote, summarize};
use crate::daemon::discovery::{self, ActorLock};
use crate::daemon::retry_settings;
use crate::driver::{Alerter, Driver, Events, Parts, Unobserved};
use crate::journal::{Journal, RunRecord};
use crate::probe;
use crate::runbook::{Cancel, RunOutcome};

/// A driver acting in this process, holding the journal's lock while it lives.
pub struct Standalone {
    pub driver: Driver,
    pub events: Events,
    pub alerts: Arc<Alerter>,
    pub aws: Option<AwsClients>,
    /// The unfinished run the journal holds, if any.
    pub unfinished: Option<RunRecord>,
    _lock: ActorLock,
}

/// AWS clients for the policy's probes and steps.
pub async fn aws_for(policy: &Policy) -> Option<AwsClients> {
    Some(
        AwsClients::from_settings(
            &policy.aws,
            policy.detection.timeout.max(Duration::from_secs(5)),
        )
        .await,
    )
}

impl Standalone {
    /// Takes the journal's lock, opens (or creates) the journal and restores the
    /// controller from it. Must run inside the tokio runtime.
    ///
    /// Errors: another process holds the lock; the journal cannot be read.
    pub async fn open(
        policy: Arc<Policy>,
        journal_path: &Path,
        factory: &FactoryFn,
    ) -> anyhow::Result<Standalone> {
        crate::coord::embedded_only(&policy, "this command without a daemon")?;
        let lock = discovery::lock(journal_path, "lifeboat CLI")?;
        let journal = Arc::new(
            Journal::open_or_create(journal_path)
                .context("open the journal; lifeboat acts on nothing it cannot read")?,
        );
        let aws = aws_for(&policy).await;
        let alerts = Arc::new(Alerter::new(&policy, aws.as_ref()));
        let (mut driver, events) = Driver::new(Parts {
            policy: policy.clone(),
            journal,
            factory: factory(policy.clone(), aws.clone()),
            alerts: alerts.clone(),
            observer: Arc::new(Unobserved),
            clock: WallClock::system(),
            source: format!("lifeboat CLI (pid {})", std::process::id()),
            retry: retry_settings(&policy),
            cancel: Cancel::new(),
        });
        let unfinished = driver.restore()?;
        Ok(Standalone {
            driver,
            events,
            alerts,
            aws,
            unfinished,
            _lock: lock,
        })
    }

    /// Probes every region once and tells the controller what it saw.
    pub async fn observe(&mut self) -> anyhow::Result<()> {
        let policy = self.driver.policy().clone();
        let (tracker, links) = observe_once(&policy, self.aws.clone()).await?;
        let active = self.driver.state().active.clone();
        let votes = vec![own_vote(&tracker, &active)];
        let now = WallClock::system().now();
        let summary = summarize(&tracker, &links, &active, votes, now);
        self.driver.feed(Input::Health(summary));
        Ok(())
    }

    /// Follows the run this process drives until its session ends, drawing its steps,
    /// then waits (briefly) for the alerts it caused to be sent.
    pub async fn follow(&mut self) -> anyhow::Result<RunOutcome> {
        let mut renderer = Renderer::new();
        let outcome = loop {
            tokio::select! {
                Some(p) = self.events.progress.recv() => {
                    renderer.progress(&p);
                    self.driver.progress(&p);
                }
                Some(e) = self.events.ended.recv() => {
                    // Progress sent before the end is already queued: show it first.
                    while let Ok(p) = self.events.progress.try_recv() {
                        renderer.progress(&p);
                        self.driver.progress(&p);
                    }
                    let outcome = e.result.as_ref().map(Clone::clone).map_err(|e| anyhow::anyhow!("{e}"));
                    self.driver.run_ended(e);
                    break outcome?;
                }
                else => anyhow::bail!("the run's task ended without a word"),
            }
        };
        self.alerts.flush(Duration::from_secs(10)).await;
        Ok(outcome)
    }
}

/// One round of every probe, for commands that act without a daemon.
pub async fn observe_once(
    policy: &Policy,
    aws: Option<AwsClients>,
) -> anyhow::Result<(HealthTracker, LinkMemory)> {
    let ctx = probe::Context::new(aws, policy.detection.timeout, policy.detection.interval);
    let probes = probe::build_all(policy, &ctx, None).context("build the probes")?;
    let results = probe::round(&probes, &probe::Clock::system()).await;
    let mut tracker = HealthTracker::for_policy(policy);
    let mut links = LinkMemory::default();
    for obs in results {
        links.observe(&obs);
        tracker.observe(obs);
    }
    Ok((tracker, links))
}
