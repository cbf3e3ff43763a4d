//! From what the probes saw to what the controller decides on: per region its verdict,
//! how long it has been healthy, the replica lag the RPO guardrail must read, and whether
//! its data is in sync for a failback.
//!
//! The subtle part is lag. A standby measures lag against the WAL it has *received*; once
//! its link to the writer breaks, reception stops, replay catches up and its own figure
//! falls to zero, although it misses everything the writer committed since the break.
//! So when a replica is not streaming, its lag is at least the time between when it was
//! last seen streaming and when the writer was last seen working.

use std::collections::BTreeMap;
use std::time::Duration;

use super::controller::{FailingProbe, HealthSummary, ObserverVote, RegionSummary};
use super::health::{HealthTracker, Observation, Role};
use super::model::RegionName;
use super::time::Ts;

/// What the daemon remembers about each region's replication link between observations.
#[derive(Clone, Debug, Default)]
pub struct LinkMemory {
    links: BTreeMap<RegionName, Link>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Link {
    /// The first observation of the region: lag cannot be known to be smaller than the
    /// time since then if the replica was never seen streaming.
    first_seen: Option<Ts>,
    last_streaming_at: Option<Ts>,
    /// The lag it reported then.
    lag_then: Duration,
    /// When the region's database was last seen working as the primary.
    last_primary_ok: Option<Ts>,
}

impl LinkMemory {
    /// Learns from one observation (any probe of any region).
    pub fn observe(&mut self, obs: &Observation) {
        let link = self.links.entry(obs.region.clone()).or_default();
        link.first_seen.get_or_insert(obs.at);
        if obs.is_ok() && obs.role == Some(Role::Primary) {
            link.last_primary_ok = Some(obs.at);
        }
        if let Some(lag) = obs.lag
            && obs.is_ok()
            && lag.streaming == Some(true)
        {
            link.last_streaming_at = Some(obs.at);
            link.lag_then = lag.duration().unwrap_or_default();
        }
    }
}

/// The summary the controller steps on. `writer` is the region serving now (whose
/// database takes the writes the others replicate); `observers` are the votes on it.
pub fn summarize(
    tracker: &HealthTracker,
    memory: &LinkMemory,
    writer: &RegionName,
    observers: Vec<ObserverVote>,
    now: Ts,
) -> HealthSummary {
    let writer_last_ok = last_ok(tracker, memory, writer, now);
    let regions = tracker
        .verdicts()
        .into_iter()
        .map(|(region, verdict)| {
            let replica = region != *writer;
            RegionSummary {
                failing: failing(tracker, &region),
                healthy_since: tracker.healthy_since(&region),
                replica_lag: if replica {
                    replica_lag(tracker, memory, &region, writer_last_ok)
                } else {
                    None
                },
                in_sync: if replica {
                    in_sync(tracker, &region)
                } else {
                    None
                },
                region,
                verdict,
            }
        })
        .collect();
    HealthSummary { regions, observers }
}

/// This controller's own vote on the serving region: down when its tracker says so.
pub fn own_vote(tracker: &HealthTracker, writer: &RegionName) -> ObserverVote {
    ObserverVote {
        observer: "this controller".to_string(),
        sees_down: matches!(tracker.verdict(writer), super::health::Verdict::Down { .. }),
    }
}

/// A region's critical probes whose latest round failed, with their errors.
fn failing(tracker: &HealthTracker, region: &RegionName) -> Vec<FailingProbe> {
    tracker
        .probes()
        .filter(|p| p.region == *region && p.critical && p.consecutive_failures > 0)
        .map(|p| FailingProbe {
            probe: p.probe.clone(),
            region: p.region.clone(),
            failures: p.consecutive_failures,
            error: p
                .last_failure
                .as_ref()
                .map(|f| f.reason.clone())
                .unwrap_or_default(),
        })
        .collect()
}

/// When the writer was last seen taking writes: its database's last round as primary
/// (other probes of the region, storage or workers, may pass while the database is dead);
/// without a database probe, now while the region is healthy, else its newest success.
fn last_ok(tracker: &HealthTracker, memory: &LinkMemory, writer: &RegionName, now: Ts) -> Ts {
    if let Some(t) = memory.links.get(writer).and_then(|l| l.last_primary_ok) {
        let db_ok_now = tracker
            .role(writer)
            .is_some_and(|r| r.role == Role::Primary && r.at == t);
        return if db_ok_now { now } else { t };
    }
    if tracker.verdict(writer).is_healthy() {
        return now;
    }
    tracker
        .probes()
        .filter(|p| p.region == *writer && p.critical)
        .filter_map(|p| p.last_success)
        .max()
        .unwrap_or(Ts::ZERO)
}

/// The lag the RPO guardrail reads for a replica region; `None` when nothing there
/// measures replication (a service without a replicated database).
fn replica_lag(
    tracker: &HealthTracker,
    memory: &LinkMemory,
    region: &RegionName,
    writer_last_ok: Ts,
) -> Option<Duration> {
    let reading = tracker.replica_lag(region)?;
    let reported = reading.lag.duration().unwrap_or_default();
    if reading.lag.streaming == Some(true) {
        return Some(reported);
    }
    let link = memory.links.get(region).copied().unwrap_or_default();
    // Not streaming: missing at least what the writer committed after the link was last
    // seen up, or, if it never was, since this controller first looked.
    let since = link
        .last_streaming_at
        .or(link.first_seen)
        .unwrap_or(reading.at);
    Some(reported.max(link.lag_then).max(writer_last_ok.since(since)))
}

/// Whether a replica region holds everything the writer has: a streaming standby with
/// nothing left to replay. `None` when no probe reports the region's database role.
fn in_sync(tracker: &HealthTracker, region: &RegionName) -> Option<bool> {
    let role = tracker.role(region)?;
    if role.role != Role::Standby {
        // Still a primary: the old writer has not been rejoined as a standby.
        return Some(false);
    }
    let lag = tracker.replica_lag(region).map(|r| r.lag);
    Some(lag.is_some_and(|l| l.streaming == Some(true) && l.bytes.unwrap_or(0) == 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::health::{Lag, Thresholds};

    fn r(s: &str) -> RegionName {
        RegionName::new(s)
    }

    fn tracker() -> HealthTracker {
        HealthTracker::new(
            Thresholds::counts(3, 3),
            vec![r("east"), r("west")],
            [("db".to_string(), true)],
        )
    }

    fn writer_ok(t: u64) -> Observation {
        Observation::ok("db", &r("east"), Ts::from_secs(t), Duration::from_millis(5))
            .with_role(Role::Primary)
    }

    fn writer_down(t: u64) -> Observation {
        Observation::failed(
            "db",
            &r("east"),
            Ts::from_secs(t),
            Duration::from_millis(5),
            "connection refused",
        )
    }

    fn standby(t: u64, streaming: bool, seconds: f64) -> Observation {
        Observation::ok("db", &r("west"), Ts::from_secs(t), Duration::from_millis(5))
            .with_role(Role::Standby)
            .with_lag(Lag {
                bytes: Some(0),
                seconds: Some(seconds),
                streaming: Some(streaming),
            })
    }

    fn lag_of(tr: &HealthTracker, mem: &LinkMemory, now: u64) -> Option<Duration> {
        let s = summarize(tr, mem, &r("east"), vec![], Ts::from_secs(now));
        s.get(&r("west")).and_then(|h| h.replica_lag)
    }

    fn feed(tr: &mut HealthTracker, mem: &mut LinkMemory, obs: Observation) {
        mem.observe(&obs);
        tr.observe(obs);
    }

    #[test]
    fn a_streaming_replica_reports_its_own_lag() {
        let (mut tr, mut mem) = (tracker(), LinkMemory::default());
        feed(&mut tr, &mut mem, writer_ok(0));
        feed(&mut tr, &mut mem, standby(0, true, 0.4));
        assert_eq!(lag_of(&tr, &mem, 1), Some(Duration::from_millis(400)));
    }

    #[test]
    fn when_the_writer_dies_with_the_link_the_loss_window_is_one_round() {
        let (mut tr, mut mem) = (tracker(), LinkMemory::default());
        for t in 0..10 {
            feed(&mut tr, &mut mem, writer_ok(t));
            feed(&mut tr, &mut mem, standby(t, true, 0.0));
        }
        // t=10: the writer dies; the standby loses its source at the same moment.
        for t in 10..13 {
            feed(&mut tr, &mut mem, writer_down(t));
            feed(&mut tr, &mut mem, standby(t, false, 0.0));
        }
        assert_eq!(
            lag_of(&tr, &mem, 13),
            Some(Duration::ZERO),
            "last streamed at t=9, writer last ok at t=9"
        );
    }

    #[test]
    fn a_link_broken_before_the_writer_died_counts_what_the_writer_wrote_meanwhile() {
        let (mut tr, mut mem) = (tracker(), LinkMemory::default());
        for t in 0..5 {
            feed(&mut tr, &mut mem, writer_ok(t));
            feed(&mut tr, &mut mem, standby(t, true, 0.0));
        }
        // t=5..20: the link is down, the writer keeps working; the standby's own figure is 0.
        for t in 5..20 {
            feed(&mut tr, &mut mem, writer_ok(t));
            feed(&mut tr, &mut mem, standby(t, false, 0.0));
        }
        assert_eq!(
            lag_of(&tr, &mem, 20),
            Some(Duration::from_secs(16)),
            "while the writer lives the gap keeps growing"
        );
        for t in 20..23 {
            feed(&mut tr, &mut mem, writer_down(t));
        }
        assert_eq!(
            lag_of(&tr, &mem, 30),
            Some(Duration::from_secs(15)),
            "writer last ok at t=19, link last up at t=4"
        );
    }

    #[test]
    fn other_probes_passing_after_the_writer_database_died_do_not_inflate_the_lag() {
        let mut tr = HealthTracker::new(
            Thresholds::counts(3, 3),
            vec![r("east"), r("west")],
            [("db".to_string(), true), ("storage".to_string(), true)],
        );
        let mut mem = LinkMemory::default();
        for t in 0..5 {
            feed(&mut tr, &mut mem, writer_ok(t));
            feed(&mut tr, &mut mem, standby(t, true, 0.0));
        }
        // The database dies at t=5; east's storage probe keeps passing for a minute.
        for t in 5..65 {
            feed(&mut tr, &mut mem, writer_down(t));
            feed(
                &mut tr,
                &mut mem,
                Observation::ok("storage", &r("east"), Ts::from_secs(t), Duration::ZERO),
            );
            feed(&mut tr, &mut mem, standby(t, false, 0.0));
        }
        assert_eq!(
            lag_of(&tr, &mem, 65),
            Some(Duration::ZERO),
            "the writer database was last seen at t=4, as was the link"
        );
    }

    #[test]
    fn a_replica_never_seen_streaming_is_not_assumed_current() {
        let (mut tr, mut mem) = (tracker(), LinkMemory::default());
        for t in 0..8 {
            feed(&mut tr, &mut mem, writer_ok(t));
            feed(&mut tr, &mut mem, standby(t, false, 0.0));
        }
        assert_eq!(lag_of(&tr, &mem, 8), Some(Duration::from_secs(8)));
    }

    #[test]
    fn an_old_writer_that_is_still_primary_is_not_in_sync() {
        let (mut tr, mut mem) = (tracker(), LinkMemory::default());
        feed(&mut tr, &mut mem, writer_ok(0));
        feed(&mut tr, &mut mem, standby(0, true, 0.0));
        // After a failover west writes; east must be a caught-up standby to fail back.
        let s = summarize(&tr, &mem, &r("west"), vec![], Ts::from_secs(1));
        assert_eq!(s.get(&r("east")).and_then(|h| h.in_sync), Some(false));
        feed(
            &mut tr,
            &mut mem,
            Observation::ok("db", &r("east"), Ts::from_secs(2), Duration::ZERO)
                .with_role(Role::Standby)
                .with_lag(Lag {
                    bytes: Some(0),
                    seconds: Some(0.0),
                    streaming: Some(true),
                }),
        );
        let s = summarize(&tr, &mem, &r("west"), vec![], Ts::from_secs(3));
        assert_eq!(s.get(&r("east")).and_then(|h| h.in_sync), Some(true));
    }
}
