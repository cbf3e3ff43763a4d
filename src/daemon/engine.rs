//! The daemon's event loop: a closed set of events (ticks, probe observations, witness
//! answers, run progress and ends, operator requests, shutdown), each translated into a
//! call on the driver, which owns the controller and the runs. The engine keeps only what
//! feeds the controller (the health tracker, the link memory, the witnesses) and the
//! views it publishes (status, metrics). Time is tokio's clock, so the engine runs under
//! tests on a paused clock.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::metrics::Metrics;
use super::status::{self, StatusView};
use super::witness::{self, Witnesses};
use crate::clock::WallClock;
use crate::contract::Reply;
use crate::coord::etcd::Leadership;
use crate::coord::records::{CountedVote, SharedState};
use crate::coord::{Standing, Unfinished, unfinished};
use crate::core::controller::{ClockReading, HealthSummary, Input, Phase};
use crate::core::health::{HealthTracker, Observation, Verdict, stale_after};
use crate::core::model::Policy;
use crate::core::readiness::ReadinessReport;
use crate::core::summary::{LinkMemory, own_vote, summarize};
use crate::core::time::Ts;
use crate::driver::{Driver, Request, RunEnded};
use crate::journal::JournalError;
use crate::probe::scheduler::Restart;
use crate::runbook::{Cancel, Progress};

/// Everything that can make the controller do something.
#[derive(Debug)]
pub enum Event {
    Tick,
    Observed(Observation),
    /// A probe's loop crashed and the scheduler started it again.
    ProbeRestarted(Restart),
    /// Where this controller stands on the etcd backend (`daemon::coordinator`).
    Standing(Standing),
    /// This controller was elected, and the shared record read: the run another
    /// controller left unfinished, if any. `seq` is the `Standing` event it answers.
    Elected {
        seq: u64,
        standing: Box<Standing>,
        left: Option<Box<Unfinished>>,
    },
    /// The shared record's serving region.
    Shared(SharedState),
    /// Every observer's live vote in etcd, as the coordinator read them.
    Votes(Vec<CountedVote>),
    /// A witness's answer, or why it gave none.
    Witness(witness::Poll),
    Progress(Progress),
    RunEnded(RunEnded),
    Request(Request, oneshot::Sender<Reply>),
    /// A readiness round finished (`readiness::round`, on the daemon's schedule).
    Readiness(Box<ReadinessReport>),
    Shutdown,
}

pub struct Engine {
    pub driver: Driver,
    pub tracker: HealthTracker,
    pub links: LinkMemory,
    pub witnesses: Witnesses,
    pub status: Arc<RwLock<StatusView>>,
    pub metrics: Arc<Metrics>,
    pub clock: WallClock,
    pub cancel: Cancel,
    /// Where this view comes from, for `status`.
    pub source: String,
    pub started: Instant,
    /// On etcd: this controller's vote to publish and the observers' votes to count.
    pub votes: Option<super::coordinator::Votes>,
    /// The loop's own channel, for answers gathered on tasks (`None` in tests that feed
    /// events by hand).
    pub events: Option<tokio::sync::mpsc::Sender<Event>>,
    /// How many `Standing` events came; an election answers only the newest.
    pub standings: u64,
    /// After an observation that changed no verdict, phase or decision, the view is
    /// rebuilt at most this often (zero: after every event). Rebuilding reads the
    /// journal; a fleet's thousands of observations a second would spend most of their
    /// CPU there. Every other event rebuilds it at once.
    pub publish_every: Duration,
    pub published: Published,
}

/// What the status view last showed, to tell whether an observation changed it, and
/// the journal's last run as last read with the journal's version then (read again only
/// once the journal changed).
#[derive(Default)]
pub struct Published(
    std::sync::Mutex<Option<(Instant, Phase, Option<Ts>)>>,
    std::sync::Mutex<Option<LastRun>>,
);

type LastRun = ((u64, i64), Option<crate::journal::RunRecord>);

impl Engine {
    /// Restores the controller from the journal and, when `resume`, resumes an unfinished
    /// run (a run waiting for an approval stays waiting).
    pub fn restore(&mut self, resume: bool) -> Result<(), JournalError> {
        if let Some(run) = self.driver.restore()?
            && resume
            && run.status == crate::core::step::RunStatus::Running
        {
            info!(run_id = %run.run_id, "resuming the unfinished run left by a previous process");
            self.driver.resume(&run.run_id);
        }
        self.publish();
        Ok(())
    }

    /// Handles one event. Returns false when the loop should end.
    pub fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Tick => {
                let reading = ClockReading {
                    wall: self.clock.now(),
                    mono_ms: self.started.elapsed().as_millis() as u64,
                };
                self.driver.feed(Input::Tick(reading));
                // After the tick, so that a stall it noticed froze decisions before the
                // silence it caused counts against any probe.
                let limit = stale_after(self.driver.policy());
                for obs in self.tracker.stale(reading.wall, limit) {
                    warn!(probe = %obs.probe, region = %obs.region, "{}", obs.reason().unwrap_or_default());
                    self.observed(obs);
                }
            }
            Event::Observed(obs) => {
                if !self.observed(obs) && !self.publish_due() {
                    return true;
                }
            }
            Event::ProbeRestarted(r) => self.driver.probe_restarted(&r),
            Event::Standing(standing) => {
                self.standings += 1;
                match &standing {
                    // Leading only once the shared record's unfinished run is known:
                    // until then this controller acts as a follower, so it cannot decide
                    // a run of its own before adopting the one another left.
                    Standing::Leading { leadership, .. } if self.events.is_some() => {
                        self.find_unfinished(leadership.clone(), standing.clone());
                    }
                    _ => self.driver.standing(standing),
                }
            }
            Event::Elected {
                seq,
                standing,
                left,
            } => {
                if seq == self.standings {
                    self.driver.standing(*standing);
                    if let Some(left) = left {
                        self.driver.adopt(*left);
                    }
                }
            }
            Event::Shared(state) => self.driver.shared(&state),
            Event::Votes(all) => {
                let Some(votes) = &mut self.votes else {
                    return true;
                };
                votes.record(all);
                let (active, now) = (self.driver.state().active.clone(), self.clock.now());
                let counted = votes.counted(&active, now);
                self.driver.counted(&counted);
                let summary = self.summary();
                self.driver.feed(Input::Health(summary));
            }
            Event::Witness(poll) => {
                let active = self.driver.state().active.clone();
                let before = self.witnesses.agreeing(&active, Instant::now());
                if let Err(e) = &poll.result {
                    debug!(witness = %poll.url, "witness did not answer: {e}");
                }
                self.witnesses.record(poll, Instant::now());
                self.metrics
                    .witnesses(&self.witnesses.views(Instant::now()));
                let after = self.witnesses.agreeing(&active, Instant::now());
                if after != before {
                    let p = self.driver.policy();
                    info!(
                        "{after} of {} witness(es) now see {active} down (quorum {}, this controller included)",
                        p.guardrails.witnesses.len(),
                        p.guardrails.quorum
                    );
                    let summary = self.summary();
                    self.driver.feed(Input::Health(summary));
                }
            }
            Event::Progress(p) => self.driver.progress(&p),
            Event::RunEnded(e) => self.driver.run_ended(e),
            Event::Readiness(r) => self.driver.readiness_round(*r),
            Event::Request(req, reply) => {
                let answer = self.driver.request(req);
                // Refresh the view first, so a client reading status after the answer
                // sees what it just changed.
                self.publish();
                let _ = reply.send(answer);
                return true;
            }
            Event::Shutdown => return false,
        }
        self.publish();
        true
    }

    /// Looks for a run another controller left unfinished, on a task (etcd is not
    /// asked from the control loop), and comes back as `Event::Elected`. A read that
    /// keeps failing still comes back, without the run: a start of this leader's own is
    /// then refused while another run is current (nothing acts), and the next election
    /// reads again.
    fn find_unfinished(&self, leadership: Leadership, standing: Standing) {
        let Some(events) = self.events.clone() else {
            return;
        };
        let seq = self.standings;
        tokio::spawn(async move {
            let mut left = None;
            for attempt in 1..=3 {
                match unfinished(leadership.etcd(), leadership.service()).await {
                    Ok(found) => {
                        left = found.map(Box::new);
                        break;
                    }
                    Err(e) => {
                        warn!(
                            "etcd: cannot read the shared record's unfinished run (attempt {attempt} of 3): {e}"
                        );
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                }
            }
            let standing = Box::new(standing);
            let _ = events
                .send(Event::Elected {
                    seq,
                    standing,
                    left,
                })
                .await;
        });
    }

    /// Feeds one observation to the tracker and the controller. True when a region's
    /// verdict changed.
    fn observed(&mut self, obs: Observation) -> bool {
        self.links.observe(&obs);
        // The metrics after the tracker, so the failure count and the verdicts they show
        // include this round.
        let round = obs.clone();
        let changes = self.tracker.observe(obs);
        self.metrics
            .observed(self.driver.policy(), &round, &self.tracker);
        for c in &changes {
            info!(region = %c.region, "region {} went from {} to {}", c.region, c.from, c.to);
        }
        if let Some(v) = &mut self.votes {
            v.publish(&self.tracker, self.clock.now());
        }
        let summary = self.summary();
        let quorum = self.driver.policy().guardrails.quorum;
        let short = summary.votes() < quorum;
        let failing = self.sees_active_failing(&summary);
        let newly = self
            .witnesses
            .suspect
            .set((short && failing).then(|| self.driver.state().active.clone()));
        if newly || (short && self.sees_active_down(&summary)) {
            // Ask the witnesses now rather than at their next poll.
            self.witnesses.ask_now.notify_waiters();
        }
        self.driver.feed(Input::Health(summary));
        !changes.is_empty()
    }

    /// Whether the view should be rebuilt after a quiet observation: the phase or the
    /// last decision changed, or `publish_every` has passed.
    fn publish_due(&self) -> bool {
        let s = self.driver.state();
        let last = match self.published.0.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        match &*last {
            None => true,
            Some((at, phase, decided)) => {
                at.elapsed() >= self.publish_every
                    || *phase != s.phase
                    || *decided != s.last_decision.as_ref().map(|d| d.at)
            }
        }
    }

    /// The controller's input: the tracker's regions and every observer's vote on the
    /// serving region.
    fn summary(&self) -> HealthSummary {
        let active = &self.driver.state().active;
        let mut votes = vec![own_vote(&self.tracker, active)];
        votes.extend(self.witnesses.votes(active, Instant::now()));
        if let Some(v) = &self.votes {
            votes.extend(v.others(active, self.clock.now()));
        }
        summarize(&self.tracker, &self.links, active, votes, self.clock.now())
    }

    /// Whether a critical probe of the serving region is failing, down or not yet.
    fn sees_active_failing(&self, summary: &HealthSummary) -> bool {
        let active = &self.driver.state().active;
        summary
            .get(active)
            .is_some_and(|r| matches!(r.verdict, Verdict::Suspect { .. } | Verdict::Down { .. }))
    }

    fn sees_active_down(&self, summary: &HealthSummary) -> bool {
        let active = &self.driver.state().active;
        summary
            .get(active)
            .is_some_and(|r| matches!(r.verdict, Verdict::Down { .. }))
    }

    /// Refreshes the shared status view the API serves.
    pub fn publish(&self) {
        let last_run = self.last_run();
        let view = status::build(
            self.driver.policy(),
            self.driver.state(),
            &self.tracker,
            &self.links,
            last_run,
            self.clock.now(),
            self.source.clone(),
        );
        let view = StatusView {
            witnesses: self.witnesses.views(Instant::now()),
            readiness: self.driver.readiness().cloned(),
            ..view
        };
        if let Ok(mut s) = self.status.write() {
            *s = view;
        }
        let s = self.driver.state();
        if let Ok(mut last) = self.published.0.lock() {
            *last = Some((
                Instant::now(),
                s.phase.clone(),
                s.last_decision.as_ref().map(|d| d.at),
            ));
        }
    }

    /// The journal's newest run, read again only when the journal changed since the last
    /// read (a fleet publishes hundreds of views a second; most find nothing new).
    fn last_run(&self) -> Option<crate::journal::RunRecord> {
        let journal = self.driver.journal();
        let version = journal.version().ok();
        let mut cached = match self.published.1.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        if let (Some(v), Some((seen, run))) = (version, cached.as_ref())
            && v == *seen
        {
            return run.clone();
        }
        match journal.runs(1) {
            Ok(mut runs) => {
                let run = runs.pop();
                *cached = version.map(|v| (v, run.clone()));
                run
            }
            Err(_) => {
                *cached = None;
                None
            }
        }
    }

    /// Stops driving: no new step starts; the running one ends at a journaled point.
    pub async fn shutdown(&mut self) {
        self.driver.shutdown(&self.cancel).await;
    }
}

/// How often the loop ticks: often enough to notice a stall well within the tolerance.
pub fn tick_every(policy: &Policy) -> Duration {
    (policy.detection.interval / 2).clamp(Duration::from_millis(200), Duration::from_secs(5))
}
