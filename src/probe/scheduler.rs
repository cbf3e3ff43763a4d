//! Runs every (probe, region) on its interval, concurrently, with jitter, at most one
//! round in flight per probe, and sends each result as an `Observation`.
//!
//! One task per (probe, region), so a slow probe only ever delays itself. A task starts
//! its next round only after the previous one ended (and its result was accepted by the
//! channel): rounds never pile up. Rounds are `interval` apart ±10%, so probes that start
//! together drift apart instead of hitting the same servers in lockstep; the first round
//! comes within the first tenth of an interval.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Clock, RegionProbe};
use crate::core::health::Observation;

/// How far (as a fraction of the interval) a round may move from the beat.
pub const JITTER: f64 = 0.1;

/// The running probe loops. Dropping it (or `stop`) cancels every loop, including rounds
/// in flight.
#[derive(Debug)]
pub struct Scheduler {
    tasks: JoinSet<()>,
}

impl Scheduler {
    /// Starts one loop per probe, each round every `interval` (±`JITTER`), results sent
    /// to `tx`. `seed` makes the jitter reproducible. A loop ends when `tx`'s receiver
    /// is dropped.
    pub fn start(
        probes: Vec<RegionProbe>,
        interval: Duration,
        clock: Clock,
        tx: mpsc::Sender<Observation>,
        seed: u64,
    ) -> Scheduler {
        let mut tasks = JoinSet::new();
        for (i, probe) in probes.into_iter().enumerate() {
            let rng = fastrand::Rng::with_seed(seed.wrapping_add(i as u64));
            tasks.spawn(run_loop(Arc::new(probe), interval, clock, tx.clone(), rng));
        }
        Scheduler { tasks }
    }

    /// Cancels every loop and waits until they have ended.
    pub async fn stop(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn run_loop(
    probe: Arc<RegionProbe>,
    interval: Duration,
    clock: Clock,
    tx: mpsc::Sender<Observation>,
    mut rng: fastrand::Rng,
) {
    let mut next = Instant::now() + interval.mul_f64(JITTER * rng.f64());
    loop {
        tokio::time::sleep_until(next).await;
        let started = Instant::now();
        let obs = probe.run(&clock).await;
        if tx.send(obs).await.is_err() {
            return;
        }
        next = started + jittered(interval, &mut rng);
        // A round that overran its slot (a full channel held the send) is followed at once
        // by the next, not by a burst of catch-up rounds.
        let now = Instant::now();
        if next < now {
            next = now;
        }
    }
}

/// `interval` moved by up to ±`JITTER` of itself.
fn jittered(interval: Duration, rng: &mut fastrand::Rng) -> Duration {
    interval.mul_f64(1.0 + JITTER * (2.0 * rng.f64() - 1.0))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

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
            Duration::from_secs(1),
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
            Duration::from_secs(1),
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
            Duration::from_secs(10),
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
            Duration::from_secs(1),
            Clock::starting_at(Ts::ZERO),
            tx,
            3,
        );
        drop(rx);
        let ended = tokio::time::timeout(Duration::from_secs(5), s.tasks.join_next()).await;
        assert!(matches!(ended, Ok(Some(Ok(())))), "{ended:?}");
    }
}
