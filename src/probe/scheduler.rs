//! Runs every (probe, region) on its interval, concurrently, with jitter, at most one
//! round in flight per probe, and sends each result as an `Observation`.
//!
//! One task per (probe, region), so a slow probe only ever delays itself. A task starts
//! its next round only after the previous one ended (and its result was accepted by the
//! channel): rounds never pile up. Rounds are `interval` apart ±10%, so probes that start
//! together drift apart instead of hitting the same servers in lockstep; the first round
//! comes within the first tenth of an interval.
//!
//! Fast confirmation: once a critical probe fails, its next rounds come `confirm_interval`
//! apart (±10%) instead, until its failing streak meets the policy's rule (the rounds and
//! the span that take a region down; `core::health::Thresholds::confirming`) or it passes
//! again. Then the normal interval resumes. An outage is thus confirmed in a fraction of
//! `failure_threshold` intervals, while a healthy service is probed no more often.
//!
//! Early rounds: a critical probe whose held connection ends (`Probe::dropped`: a
//! database that stopped or crashed closes it) runs at once rather than at its next
//! round, but never sooner than `confirm_interval` after its previous one. The verdict
//! still needs the policy's rule on the probe's own rounds: an early round only starts
//! the confirmation sooner.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::{self, JoinSet};
use tokio::time::Instant;
use tracing::error;

use super::{Clock, RegionProbe};
use crate::core::health::{Observation, Streak, Thresholds};
use crate::core::model::{Policy, ROUND_JITTER, RegionName};

/// How far (as a fraction of the gap) a round may move from the beat.
pub const JITTER: f64 = ROUND_JITTER;

/// When rounds come: every `interval`, and every `confirm_interval` while a critical
/// probe's failing streak is still short of taking its region down under `rule`.
#[derive(Clone, Copy, Debug)]
pub struct Cadence {
    pub interval: Duration,
    pub confirm_interval: Duration,
    pub rule: Thresholds,
}

impl Cadence {
    pub fn for_policy(policy: &Policy) -> Cadence {
        Cadence {
            interval: policy.detection.interval,
            confirm_interval: policy.detection.confirm_interval,
            rule: Thresholds::for_policy(policy),
        }
    }

    /// Every `interval`, failed or not.
    pub fn steady(interval: Duration) -> Cadence {
        Cadence {
            interval,
            confirm_interval: interval,
            rule: Thresholds::default(),
        }
    }

    /// The gap before the round after one that left `probe`'s streak at `streak`.
    fn gap(&self, critical: bool, streak: &Streak) -> Duration {
        if critical && self.rule.confirming(streak) {
            self.confirm_interval
        } else {
            self.interval
        }
    }
}

/// The running probe loops, under a supervisor. Dropping it (or `stop`) cancels every
/// loop, including rounds in flight.
#[derive(Debug)]
pub struct Scheduler {
    /// The supervisor, alone in its set so that dropping the scheduler aborts it (and,
    /// with it, the loops it owns).
    supervisor: JoinSet<()>,
    stop: Option<oneshot::Sender<()>>,
    restarts: Option<mpsc::UnboundedReceiver<Restart>>,
}

/// A probe loop that crashed (a panic: a lifeboat bug, since adapters report failures as
/// values) and was started again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restart {
    pub probe: String,
    pub region: RegionName,
    /// What the panic said, cleaned and bounded.
    pub error: String,
    /// Crashes since the probe last finished a round: 1 for the first.
    pub in_a_row: u32,
}

impl Scheduler {
    /// Starts one loop per probe, each round on `cadence` (±`JITTER`), results sent to
    /// `tx`. `seed` makes the jitter reproducible. A loop ends when `tx`'s receiver is
    /// dropped.
    ///
    /// A loop that panics is reported on `tx` as a failed round whose reason says it
    /// crashed, reported on `restarts`, and started again one interval later.
    pub fn start(
        probes: Vec<RegionProbe>,
        cadence: Cadence,
        clock: Clock,
        tx: mpsc::Sender<Observation>,
        seed: u64,
    ) -> Scheduler {
        let (restart_tx, restarts) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel();
        let mut loops = JoinSet::new();
        let mut slots = HashMap::new();
        for (i, probe) in probes.into_iter().enumerate() {
            let slot = Slot {
                probe: Arc::new(probe),
                seed: seed.wrapping_add(i as u64),
                crashes: Arc::new(AtomicU32::new(0)),
            };
            let id = loops
                .spawn(slot.run(cadence, clock, tx.clone(), None, 0))
                .id();
            slots.insert(id, slot);
        }
        let mut supervisor = JoinSet::new();
        supervisor.spawn(
            Supervisor {
                loops,
                slots,
                cadence,
                clock,
                tx,
                restarts: restart_tx,
            }
            .watch(stopped),
        );
        Scheduler {
            supervisor,
            stop: Some(stop),
            restarts: Some(restarts),
        }
    }

    /// The crashed-and-restarted reports, for whoever alerts on them (once: later calls
    /// get `None`). Nobody taking them is fine: the failed rounds still reach `tx`.
    pub fn restarts(&mut self) -> Option<mpsc::UnboundedReceiver<Restart>> {
        self.restarts.take()
    }

    /// Cancels every loop and waits until they have ended.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        while self.supervisor.join_next().await.is_some() {}
    }
}

/// One probe's loop, as the supervisor restarts it.
struct Slot {
    probe: Arc<RegionProbe>,
    seed: u64,
    /// Crashes since the loop last finished a round; the loop resets it.
    crashes: Arc<AtomicU32>,
}

impl Slot {
    fn run(
        &self,
        cadence: Cadence,
        clock: Clock,
        tx: mpsc::Sender<Observation>,
        first: Option<Duration>,
        restart: u64,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let rng = fastrand::Rng::with_seed(self.seed.wrapping_add(restart.wrapping_mul(0x9e37)));
        run_loop(
            self.probe.clone(),
            cadence,
            clock,
            tx,
            rng,
            first,
            self.crashes.clone(),
        )
    }
}

struct Supervisor {
    loops: JoinSet<()>,
    slots: HashMap<task::Id, Slot>,
    cadence: Cadence,
    clock: Clock,
    tx: mpsc::Sender<Observation>,
    restarts: mpsc::UnboundedSender<Restart>,
}

impl Supervisor {
    /// Restarts loops that panic until `stop` fires (or its sender is dropped), or until
    /// every loop has ended because nobody listens any more.
    async fn watch(mut self, mut stop: oneshot::Receiver<()>) {
        loop {
            let joined = tokio::select! {
                _ = &mut stop => break,
                joined = self.loops.join_next_with_id() => joined,
            };
            match joined {
                None => return,
                Some(Ok((id, ()))) => {
                    self.slots.remove(&id);
                }
                Some(Err(e)) => {
                    let Some(slot) = self.slots.remove(&e.id()) else {
                        continue;
                    };
                    if e.is_panic() && !self.restart(slot, e).await {
                        break;
                    }
                }
            }
        }
        self.loops.abort_all();
        while self.loops.join_next().await.is_some() {}
    }

    /// Reports a crashed loop and starts it again one interval later. False when nobody
    /// listens any more.
    async fn restart(&mut self, slot: Slot, e: task::JoinError) -> bool {
        let error = panic_text(e);
        let in_a_row = slot
            .crashes
            .fetch_add(1, Ordering::SeqCst)
            .saturating_add(1);
        let p = &slot.probe;
        error!(
            probe = %p.name,
            region = %p.region,
            "the probe's loop crashed ({error}); restarting it in {}",
            crate::core::time::fmt_duration(self.cadence.interval)
        );
        let failed = Observation::failed(
            &p.name,
            &p.region,
            self.clock.now(),
            Duration::ZERO,
            format!(
                "{}: the probe crashed ({error}), a lifeboat bug; restarted",
                p.endpoint()
            ),
        );
        if self.tx.send(failed).await.is_err() {
            return false;
        }
        let _ = self.restarts.send(Restart {
            probe: p.name.clone(),
            region: p.region.clone(),
            error,
            in_a_row,
        });
        let run = slot.run(
            self.cadence,
            self.clock,
            self.tx.clone(),
            Some(self.cadence.interval),
            u64::from(in_a_row),
        );
        let id = self.loops.spawn(run).id();
        self.slots.insert(id, slot);
        true
    }
}

/// What a panic said, as far as it can be read, cleaned and bounded.
fn panic_text(e: task::JoinError) -> String {
    let text = match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string()),
        Err(e) => e.to_string(),
    };
    super::snippet(&text, 200)
}

/// The bounds of `round_delay`'s buckets, in seconds: fine below 20 ms, where a healthy
/// host keeps every round.
const DELAY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1.0,
];

/// How late each probe round started after it was due, across the process (every
/// service's scheduler). The daemon's `/metrics` shows it as
/// `lifeboat_probe_round_delay_seconds`: a host, or a fleet, too busy for its probes shows
/// here first.
pub fn round_delay() -> &'static prometheus_client::metrics::histogram::Histogram {
    static DELAY: std::sync::OnceLock<prometheus_client::metrics::histogram::Histogram> =
        std::sync::OnceLock::new();
    DELAY.get_or_init(|| {
        prometheus_client::metrics::histogram::Histogram::new(DELAY_BUCKETS.iter().copied())
    })
}

async fn run_loop(
    probe: Arc<RegionProbe>,
    cadence: Cadence,
    clock: Clock,
    tx: mpsc::Sender<Observation>,
    mut rng: fastrand::Rng,
    first: Option<Duration>,
    crashes: Arc<AtomicU32>,
) {
    // The first round within the first tenth of an interval, unless told otherwise.
    let first = first.unwrap_or_else(|| cadence.interval.mul_f64(JITTER * rng.f64()));
    let mut next = Instant::now() + first;
    let mut streak = Streak::default();
    let mut last: Option<Instant> = None;
    // Whether the probe's held connection ended since its last round: one early round
    // per round at most, whatever the connection does.
    let mut tripped = false;
    loop {
        // A critical probe not yet confirming a failure is looked at early, but never
        // sooner than confirm_interval after its previous round.
        let early = probe.critical && !cadence.rule.confirming(&streak);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            () = probe.dropped(), if early && !tripped => {
                tripped = true;
                tracing::debug!(probe = %probe.name, region = %probe.region, "{}: the held connection ended; looking now", probe.endpoint());
                let now = Instant::now();
                let soonest = last.map_or(now, |l| (l + cadence.confirm_interval).max(now));
                next = next.min(soonest);
                continue;
            }
        }
        tripped = false;
        let started = Instant::now();
        round_delay().observe(started.saturating_duration_since(next).as_secs_f64());
        last = Some(started);
        let obs = probe.run(&clock).await;
        streak = streak.then(obs.is_ok(), obs.at, obs.latency);
        if tx.send(obs).await.is_err() {
            return;
        }
        crashes.store(0, Ordering::SeqCst);
        let gap = cadence.gap(probe.critical, &streak);
        next = started + jittered(gap, &mut rng);
        // A round that overran its slot (a full channel held the send) is followed at once
        // by the next, not by a burst of catch-up rounds.
        let now = Instant::now();
        if next < now {
            next = now;
        }
    }
}

/// `gap` moved by up to ±`JITTER` of itself.
fn jittered(gap: Duration, rng: &mut fastrand::Rng) -> Duration {
    gap.mul_f64(1.0 + JITTER * (2.0 * rng.f64() - 1.0))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::core::model::{Component, ProbeCheck, ProbeSpec, RegionName};
    use crate::core::time::Ts;
    use crate::probe::{Facts, Failure, Probe};

    /// Takes `delay` per round; counts rounds in flight and remembers the most at once.
    struct Fake {
        delay: Duration,
        in_flight: AtomicUsize,
        most: AtomicUsize,
    }

    struct Leave<'a>(&'a AtomicUsize);

    impl Drop for Leave<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl Probe for Fake {
        fn endpoint(&self) -> String {
            "fake".into()
        }
        async fn check(&self) -> Result<Facts, Failure> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            let _leave = Leave(&self.in_flight);
            tokio::time::sleep(self.delay).await;
            Ok(Facts::default())
        }
    }

    fn fake(delay: Duration) -> Arc<Fake> {
        Arc::new(Fake {
            delay,
            in_flight: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
        })
    }

    /// Passes, or fails at once while `failing` is set; `drop_connection` plays a held
    /// connection that the server closed.
    struct Switch {
        failing: AtomicBool,
        drop_connection: tokio::sync::Notify,
    }

    #[async_trait]
    impl Probe for Switch {
        fn endpoint(&self) -> String {
            "switch".into()
        }
        async fn check(&self) -> Result<Facts, Failure> {
            if self.failing.load(Ordering::SeqCst) {
                Err(Failure::new("switched off"))
            } else {
                Ok(Facts::default())
            }
        }
        async fn dropped(&self) {
            self.drop_connection.notified().await
        }
    }

    fn switched(name: &str, critical: bool) -> (RegionProbe, Arc<Switch>) {
        let sw = Arc::new(Switch {
            failing: AtomicBool::new(false),
            drop_connection: tokio::sync::Notify::new(),
        });
        let spec = ProbeSpec {
            critical,
            ..spec(name)
        };
        let p = RegionProbe::new(
            &spec,
            RegionName::new("a"),
            Duration::from_millis(200),
            sw.clone(),
        );
        (p, sw)
    }

    /// 1 s rounds; after a failure, 250 ms rounds until three failures span 450 ms.
    fn confirming() -> Cadence {
        Cadence {
            interval: Duration::from_secs(1),
            confirm_interval: Duration::from_millis(250),
            rule: Thresholds {
                failure: 3,
                recovery: 2,
                failure_span: Duration::from_millis(450),
                recovery_span: Duration::ZERO,
            },
        }
    }

    /// Each gap between two rounds, with the gap the rule asks for after the first of them.
    fn gaps(
        rounds: &[Observation],
        cadence: &Cadence,
        critical: bool,
    ) -> Vec<(Duration, Duration)> {
        let mut streak = Streak::default();
        rounds
            .windows(2)
            .map(|w| {
                streak = streak.then(w[0].is_ok(), w[0].at, w[0].latency);
                (w[1].at.since(w[0].at), cadence.gap(critical, &streak))
            })
            .collect()
    }

    fn within_jitter(got: Duration, want: Duration) -> bool {
        let ms = got.as_millis() as f64;
        let want = want.as_millis() as f64;
        ms >= want * (1.0 - JITTER) - 1.0 && ms <= want * (1.0 + JITTER) + 1.0
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_critical_probe_is_rechecked_at_the_confirmation_interval_until_its_region_is_down()
     {
        let (tx, mut rx) = mpsc::channel(64);
        let (probe, sw) = switched("db", true);
        let cadence = confirming();
        let s = Scheduler::start(vec![probe], cadence, Clock::starting_at(Ts::ZERO), tx, 5);
        let mut rounds = collect(&mut rx, 5).await;
        sw.failing.store(true, Ordering::SeqCst);
        rounds.extend(collect(&mut rx, 6).await);
        s.stop().await;

        for (i, (got, want)) in gaps(&rounds, &cadence, true).into_iter().enumerate() {
            assert!(
                within_jitter(got, want),
                "gap {i}: {got:?}, the rule asks for {want:?}"
            );
        }
        let failed: Vec<&Observation> = rounds.iter().filter(|o| !o.is_ok()).collect();
        let first = failed.first().expect("the probe failed");
        // The streak meets the rule (3 rounds over ≥ 450 ms) two or three short gaps after
        // the first failure, where four normal rounds would have taken 2 s or more.
        let mut streak = Streak::default();
        let confirmed = failed
            .iter()
            .find(|o| {
                streak = streak.then(false, o.at, o.latency);
                cadence.rule.fails(&streak)
            })
            .expect("the failure was confirmed");
        let took = confirmed.at.since(first.at);
        assert!(
            took >= Duration::from_millis(450) && took <= Duration::from_millis(3 * 275 + 2),
            "confirmed {took:?} after the first failure"
        );
        // Then the normal interval again, although the probe still fails.
        let after: Vec<&&Observation> = failed.iter().filter(|o| o.at > confirmed.at).collect();
        assert!(
            after.len() >= 3,
            "{} rounds after the confirmation",
            after.len()
        );
        for w in after.windows(2) {
            assert!(within_jitter(
                w[1].at.since(w[0].at),
                Duration::from_secs(1)
            ));
        }
    }

    /// When `name`'s next round arrives (within `within`); every round seen is kept in
    /// `seen` with its arrival.
    async fn next_of(
        rx: &mut mpsc::Receiver<Observation>,
        name: &str,
        within: Duration,
        seen: &mut Vec<(String, Instant)>,
    ) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            let o = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| panic!("no round of {name} within {within:?}"));
            seen.push((o.probe.clone(), Instant::now()));
            if o.probe == name {
                return Instant::now();
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_connection_that_ends_brings_the_next_critical_round_forward() {
        let (tx, mut rx) = mpsc::channel(64);
        let (db, db_sw) = switched("db", true);
        let (cache, cache_sw) = switched("cache", false);
        let s = Scheduler::start(
            vec![db, cache],
            confirming(),
            Clock::starting_at(Ts::ZERO),
            tx,
            11,
        );
        let mut seen = Vec::new();
        let ms = Duration::from_millis;
        let first = next_of(&mut rx, "db", ms(1000), &mut seen).await;
        // Half way to the next round (1 s ± 10 %), the held connections end: the critical
        // probe looks at once.
        tokio::time::sleep_until(first + ms(500)).await;
        db_sw.drop_connection.notify_waiters();
        cache_sw.drop_connection.notify_waiters();
        let early = next_of(&mut rx, "db", ms(2000), &mut seen).await;
        assert_eq!(early.duration_since(first), ms(500), "db looked at once");
        // Ending again right after that round: not sooner than confirm_interval (250 ms).
        tokio::time::sleep(ms(10)).await;
        db_sw.drop_connection.notify_waiters();
        let again = next_of(&mut rx, "db", ms(2000), &mut seen).await;
        assert_eq!(again.duration_since(early), ms(250));
        // The advisory probe kept its 1 s beat throughout.
        while let Ok(Some(o)) = tokio::time::timeout_at(again + ms(2000), rx.recv()).await {
            seen.push((o.probe.clone(), Instant::now()));
        }
        let cache: Vec<Instant> = seen
            .iter()
            .filter(|(p, _)| p == "cache")
            .map(|(_, at)| *at)
            .collect();
        assert!(cache.len() >= 3, "{cache:?}");
        for w in cache.windows(2) {
            assert!(
                within_jitter(w[1].duration_since(w[0]), ms(1000)),
                "{cache:?}"
            );
        }
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_passes_again_goes_back_to_the_normal_interval() {
        let (tx, mut rx) = mpsc::channel(64);
        let (probe, sw) = switched("db", true);
        let cadence = confirming();
        let s = Scheduler::start(vec![probe], cadence, Clock::starting_at(Ts::ZERO), tx, 9);
        let mut rounds = collect(&mut rx, 3).await;
        sw.failing.store(true, Ordering::SeqCst);
        let blip = rx.recv().await.expect("a round");
        assert!(!blip.is_ok());
        sw.failing.store(false, Ordering::SeqCst);
        rounds.push(blip.clone());
        rounds.extend(collect(&mut rx, 5).await);
        s.stop().await;
        let next = rounds
            .iter()
            .find(|o| o.at > blip.at)
            .expect("a round after the blip");
        assert!(next.is_ok());
        assert!(within_jitter(
            next.at.since(blip.at),
            Duration::from_millis(250)
        ));
        for (i, (got, want)) in gaps(&rounds, &cadence, true).into_iter().enumerate() {
            assert!(
                within_jitter(got, want),
                "gap {i}: {got:?}, the rule asks for {want:?}"
            );
        }
        let later: Vec<&Observation> = rounds.iter().filter(|o| o.at > next.at).collect();
        assert!(later.len() >= 3);
        for w in later.windows(2) {
            assert!(within_jitter(
                w[1].at.since(w[0].at),
                Duration::from_secs(1)
            ));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_advisory_probe_is_never_rushed() {
        let (tx, mut rx) = mpsc::channel(64);
        let (probe, sw) = switched("cache", false);
        sw.failing.store(true, Ordering::SeqCst);
        let s = Scheduler::start(
            vec![probe],
            confirming(),
            Clock::starting_at(Ts::ZERO),
            tx,
            2,
        );
        let rounds = collect(&mut rx, 8).await;
        s.stop().await;
        assert!(rounds.iter().all(|o| !o.is_ok()));
        assert!(rounds.len() >= 7);
        for w in rounds.windows(2) {
            assert!(within_jitter(
                w[1].at.since(w[0].at),
                Duration::from_secs(1)
            ));
        }
    }

    /// Panics in its first `left` rounds (as an adapter with a bug would), then passes.
    struct Crashy {
        left: AtomicUsize,
    }

    #[async_trait]
    impl Probe for Crashy {
        fn endpoint(&self) -> String {
            "crashy".into()
        }
        async fn check(&self) -> Result<Facts, Failure> {
            if self
                .left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                panic!("index out of bounds: the len is 0 but the index is 7");
            }
            Ok(Facts::default())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_panics_is_reported_failed_restarted_one_interval_later_and_passes_again()
    {
        let (tx, mut rx) = mpsc::channel(64);
        let crashy = Arc::new(Crashy {
            left: AtomicUsize::new(2),
        });
        let probe = RegionProbe::new(
            &spec("db"),
            RegionName::new("a"),
            Duration::from_millis(100),
            crashy,
        );
        let mut s = Scheduler::start(
            vec![probe],
            Cadence::steady(Duration::from_secs(1)),
            Clock::starting_at(Ts::ZERO),
            tx,
            4,
        );
        let mut restarts = s.restarts().expect("the restarts, once");
        assert!(s.restarts().is_none());
        let rounds = collect(&mut rx, 6).await;
        s.stop().await;
        assert!(rounds.len() >= 5, "{rounds:#?}");
        for crashed in &rounds[..2] {
            let reason = crashed.reason().unwrap_or_default();
            assert!(
                reason.starts_with("crashy: the probe crashed (index out of bounds"),
                "{reason}"
            );
        }
        assert!(rounds[2..].iter().all(Observation::is_ok), "{rounds:#?}");
        // Restarted one interval after each crash, not in a tight loop.
        for w in rounds[..3].windows(2) {
            assert_eq!(w[1].at.since(w[0].at), Duration::from_secs(1));
        }
        let got: Vec<(String, u32)> = std::iter::from_fn(|| restarts.try_recv().ok())
            .map(|r| (r.probe, r.in_a_row))
            .collect();
        assert_eq!(got, vec![("db".to_string(), 1), ("db".to_string(), 2)]);
    }

    fn spec(name: &str) -> ProbeSpec {
        ProbeSpec {
            name: name.into(),
            component: Component::Api,
            critical: true,
            target: None,
            regions: vec![RegionName::new("a")],
            check: ProbeCheck::Tcp,
        }
    }

    fn region_probe(name: &str, timeout: Duration, p: Arc<Fake>) -> RegionProbe {
        let spec = ProbeSpec {
            name: name.into(),
            component: Component::Api,
            critical: true,
            target: None,
            regions: vec![RegionName::new("a")],
            check: ProbeCheck::Tcp,
        };
        RegionProbe::new(&spec, RegionName::new("a"), timeout, p)
    }

    /// Collects what arrives within `secs` seconds of paused time.
    async fn collect(rx: &mut mpsc::Receiver<Observation>, secs: u64) -> Vec<Observation> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut out = Vec::new();
        while let Ok(Some(o)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            out.push(o);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_probe_does_not_delay_a_fast_one() {
        let (tx, mut rx) = mpsc::channel(16);
        let hang = fake(Duration::from_secs(3600));
        let quick = fake(Duration::from_millis(5));
        let s = Scheduler::start(
            vec![
                region_probe("hang", Duration::from_millis(800), hang.clone()),
                region_probe("quick", Duration::from_millis(800), quick.clone()),
            ],
            Cadence::steady(Duration::from_secs(1)),
            Clock::starting_at(Ts::ZERO),
            tx,
            7,
        );
        let got = collect(&mut rx, 20).await;
        s.stop().await;
        let of =
            |name: &str| -> Vec<&Observation> { got.iter().filter(|o| o.probe == name).collect() };
        // 20 s at one round per second ±10%: 18 to 21 rounds, whatever the other does.
        let quick_rounds = of("quick");
        assert!(
            (18..=21).contains(&quick_rounds.len()),
            "{}",
            quick_rounds.len()
        );
        assert!(quick_rounds.iter().all(|o| o.is_ok()));
        for pair in quick_rounds.windows(2) {
            let gap = pair[1].at.since(pair[0].at);
            assert!(
                gap >= Duration::from_millis(900) && gap <= Duration::from_millis(1100),
                "rounds {gap:?} apart"
            );
        }
        let hang_rounds = of("hang");
        assert!(
            (18..=21).contains(&hang_rounds.len()),
            "{}",
            hang_rounds.len()
        );
        assert!(
            hang_rounds
                .iter()
                .all(|o| o.reason() == Some("fake: timed out after 800ms"))
        );
        assert_eq!(hang.most.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_longer_than_the_interval_is_never_overlapped_by_the_next() {
        // The policy keeps the timeout below the interval; this probe is built without
        // that guarantee to show the loop itself never piles rounds up.
        let (tx, mut rx) = mpsc::channel(16);
        let slow = fake(Duration::from_millis(2500));
        let s = Scheduler::start(
            vec![region_probe("slow", Duration::from_secs(10), slow.clone())],
            Cadence::steady(Duration::from_secs(1)),
            Clock::starting_at(Ts::ZERO),
            tx,
            1,
        );
        let got = collect(&mut rx, 11).await;
        s.stop().await;
        assert_eq!(got.len(), 4, "one round every 2.5 s");
        assert_eq!(slow.most.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn rounds_spread_out_with_jitter_instead_of_running_in_lockstep() {
        let (tx, mut rx) = mpsc::channel(64);
        let probes = (0..4)
            .map(|i| {
                region_probe(
                    &format!("p{i}"),
                    Duration::from_millis(500),
                    fake(Duration::ZERO),
                )
            })
            .collect();
        let s = Scheduler::start(
            probes,
            Cadence::steady(Duration::from_secs(10)),
            Clock::starting_at(Ts::ZERO),
            tx,
            42,
        );
        let got = collect(&mut rx, 35).await;
        s.stop().await;
        let mut times: Vec<u64> = got.iter().map(|o| o.at.as_millis()).collect();
        times.sort_unstable();
        times.dedup();
        assert_eq!(times.len(), got.len(), "no two rounds at the same instant");
        for i in 0..4 {
            let first = got
                .iter()
                .find(|o| o.probe == format!("p{i}"))
                .expect("ran");
            assert!(first.at <= Ts::from_secs(1), "first round within a tenth");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn loops_end_when_nobody_listens() {
        let (tx, rx) = mpsc::channel(1);
        let mut s = Scheduler::start(
            vec![region_probe(
                "p",
                Duration::from_millis(100),
                fake(Duration::ZERO),
            )],
            Cadence::steady(Duration::from_secs(1)),
            Clock::starting_at(Ts::ZERO),
            tx,
            3,
        );
        drop(rx);
        let ended = tokio::time::timeout(Duration::from_secs(5), s.supervisor.join_next()).await;
        assert!(matches!(ended, Ok(Some(Ok(())))), "{ended:?}");
    }
}
