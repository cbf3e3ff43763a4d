//! Health counting: probe observations in, per-probe streaks and a verdict per region out.
//!
//! Pure: the caller passes every observation with its timestamp, and this module never
//! reads a clock. A "round" is one observation of one probe in one region; probes run on
//! their own schedules, so rounds of different probes are not aligned and nothing here
//! assumes they are.
//!
//! A region's verdict comes from its *critical* probes only. Advisory probes are tracked
//! (the CLI shows them) but can never take a region down. When every serving region would
//! be down at once, the likelier story is that the controller itself is cut off, so all
//! of them read `ObserverIsolated` instead (safety invariant 5).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::model::{Policy, RegionName};
use super::time::{Ts, fmt_duration};

mod observation;
#[cfg(test)]
mod rule_tests;
#[cfg(test)]
mod tests;

pub use observation::{Lag, Observation, Outcome, Role};

/// A region's health, from its critical probes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// No critical probe of the region has reported yet. Not the same as healthy: a
    /// region nobody has looked at is not a failover destination.
    Unknown,
    /// Every critical probe's latest round passed (and, after an outage, enough in a row).
    Healthy,
    /// Some critical probe is failing, but no failing streak has both the rounds and the
    /// span that take the region down yet; `failures` is the longest such streak.
    Suspect { failures: u32 },
    /// A critical probe failed `failure_threshold` rounds in a row spanning at least the
    /// policy's `min_failure_span`, at `since` (the round that met both), and the region
    /// has not recovered since.
    Down { since: Ts },
    /// Was down; every critical probe passes again, the slowest of them `successes`
    /// rounds in a row, not yet `recovery_threshold` rounds spanning `min_recovery_span`.
    Recovering { successes: u32 },
    /// Every serving region would be down at once, since `since` (when the last of them
    /// went down). The controller's own network is the likelier cause; this is never
    /// read as several outages.
    ObserverIsolated { since: Ts },
}

impl Verdict {
    pub fn is_healthy(self) -> bool {
        self == Verdict::Healthy
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Unknown => f.write_str("unknown (no critical probe has reported)"),
            Verdict::Healthy => f.write_str("healthy"),
            Verdict::Suspect { failures } => write!(f, "suspect ({failures} failed in a row)"),
            Verdict::Down { since } => write!(f, "down since {since}"),
            Verdict::Recovering { successes } => {
                write!(f, "recovering ({successes} passed in a row)")
            }
            Verdict::ObserverIsolated { since } => write!(
                f,
                "observer isolated since {since} (every region fails; this controller is probably cut off)"
            ),
        }
    }
}

/// How old a probe's newest observation may get before it counts as a failed round
/// (`HealthTracker::stale`): two intervals, plus the timeout a round may take.
pub fn stale_after(policy: &Policy) -> Duration {
    policy
        .detection
        .interval
        .saturating_mul(2)
        .saturating_add(policy.detection.timeout)
}

/// The policy's detection rule: how many rounds in a row, over how much time.
///
/// A critical probe's failing streak takes its region down once it has `failure` rounds
/// *and* spans at least `failure_span`, from the start of its first round to the end of
/// its latest. Rounds that bunch up (after a stall, behind a full channel, or because of
/// jitter) therefore cannot add up to an outage however many there are. Recovery is the
/// same, both ways: every critical probe's passing streak needs `recovery` rounds spanning
/// `recovery_span`.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Thresholds {
    /// Consecutive failed rounds of one critical probe that take its region down.
    pub failure: u32,
    /// Consecutive passed rounds of every critical probe that bring a down region back.
    pub recovery: u32,
    /// The least time a failing streak must span to take its region down.
    pub failure_span: Duration,
    /// The least time the passing streaks must span to bring it back.
    pub recovery_span: Duration,
}

impl Thresholds {
    /// Counts only, no span: the rule before spans existed (and a convenient one for tests).
    pub fn counts(failure: u32, recovery: u32) -> Thresholds {
        Thresholds {
            failure,
            recovery,
            ..Thresholds::default()
        }
    }

    pub fn for_policy(policy: &Policy) -> Thresholds {
        let d = &policy.detection;
        Thresholds {
            failure: d.failure_threshold,
            recovery: d.recovery_threshold,
            failure_span: d.min_failure_span,
            recovery_span: d.min_recovery_span,
        }
    }

    /// Whether this streak alone takes its region down.
    pub fn fails(&self, s: &Streak) -> bool {
        s.failures > 0 && s.failures >= self.failure && s.span() >= self.failure_span
    }

    /// Whether this streak has passed long enough to end an outage.
    pub fn passes(&self, s: &Streak) -> bool {
        s.successes > 0 && s.successes >= self.recovery && s.span() >= self.recovery_span
    }

    /// Whether the probe's next round should come at the confirmation interval: it is
    /// failing, and its streak has not yet taken the region down.
    pub fn confirming(&self, s: &Streak) -> bool {
        s.failures > 0 && !self.fails(s)
    }
}

/// One probe's current streak: consecutive rounds with the same outcome, and the time they
/// cover (the start of the first to the end of the latest).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Streak {
    pub failures: u32,
    pub successes: u32,
    /// When the streak's first round started (its result time minus its latency).
    pub since: Ts,
    /// When its latest round ended.
    pub until: Ts,
}

impl Streak {
    /// The streak after one more round that ended at `at` after taking `latency`.
    pub fn then(self, ok: bool, at: Ts, latency: Duration) -> Streak {
        let started = Ts(at.as_millis().saturating_sub(super::time::millis(latency)));
        let continues = if ok {
            self.successes > 0
        } else {
            self.failures > 0
        };
        let since = if continues { self.since } else { started };
        if ok {
            Streak {
                failures: 0,
                successes: self.successes.saturating_add(1),
                since,
                until: at,
            }
        } else {
            Streak {
                failures: self.failures.saturating_add(1),
                successes: 0,
                since,
                until: at,
            }
        }
    }

    /// The wall-clock time the streak covers.
    pub fn span(&self) -> Duration {
        self.until.since(self.since)
    }
}

/// The verdict of one region, and when it went down (the latch the next call needs).
///
/// `streaks` are the region's critical probes that have reported at least once;
/// `down_since` is what the previous call returned; `at` is the time of the observation
/// being applied. The region goes down when some critical probe's streak `fails` (count
/// and span), and once down it stays down (with its original `since`) until every
/// critical probe's streak `passes`: a single success in the middle of an outage does not
/// end it.
pub fn assess(
    streaks: &[Streak],
    down_since: Option<Ts>,
    th: Thresholds,
    at: Ts,
) -> (Option<Ts>, Verdict) {
    if streaks.is_empty() {
        return (down_since, Verdict::Unknown);
    }
    let worst = streaks.iter().map(|s| s.failures).max().unwrap_or(0);
    let slowest = streaks.iter().map(|s| s.successes).min().unwrap_or(0);
    let down_since = match down_since {
        None if streaks.iter().any(|s| th.fails(s)) => Some(at),
        Some(_) if streaks.iter().all(|s| th.passes(s)) => None,
        other => other,
    };
    let verdict = match down_since {
        Some(since) if worst > 0 => Verdict::Down { since },
        Some(_) => Verdict::Recovering { successes: slowest },
        None if worst > 0 => Verdict::Suspect { failures: worst },
        None => Verdict::Healthy,
    };
    (down_since, verdict)
}

/// Replaces `Down` with `ObserverIsolated` when every serving region is down at once.
///
/// `verdicts` are the serving regions' own verdicts. With fewer than two serving regions
/// there is nothing to compare, and nothing changes.
pub fn isolate(verdicts: &[Verdict]) -> Vec<Verdict> {
    let downs: Option<Vec<Ts>> = verdicts
        .iter()
        .map(|v| match v {
            Verdict::Down { since } => Some(*since),
            _ => None,
        })
        .collect();
    match downs {
        Some(d) if d.len() >= 2 => {
            let since = d.iter().copied().max().unwrap_or_default();
            vec![Verdict::ObserverIsolated { since }; d.len()]
        }
        _ => verdicts.to_vec(),
    }
}

/// The last failed round of a probe.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LastFailure {
    pub at: Ts,
    pub reason: String,
}

/// What the tracker knows about one probe in one region.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProbeState {
    pub probe: String,
    pub region: RegionName,
    pub critical: bool,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// When the first round of the current streak (failing or passing) started.
    #[serde(default)]
    pub streak_since: Ts,
    pub last_success: Option<Ts>,
    pub last_failure: Option<LastFailure>,
    /// The newest observation (role, lag, latency, detail).
    pub latest: Observation,
}

impl ProbeState {
    /// The probe's current streak, as the rule reads it.
    pub fn streak(&self) -> Streak {
        Streak {
            failures: self.consecutive_failures,
            successes: self.consecutive_successes,
            since: self.streak_since,
            until: self.latest.at,
        }
    }
}

/// A region's verdict changed because of an observation.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VerdictChange {
    pub region: RegionName,
    pub from: Verdict,
    pub to: Verdict,
    pub at: Ts,
}

/// The newest lag a region's probes reported.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LagReading {
    pub probe: String,
    pub at: Ts,
    pub lag: Lag,
}

/// The newest role a region's probes reported.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RoleReading {
    pub probe: String,
    pub at: Ts,
    pub role: Role,
}

/// One serving region in a snapshot.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegionHealth {
    pub region: RegionName,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub healthy_since: Option<Ts>,
}

/// Everything the tracker knows, for `--json`, the status API and the journal.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Snapshot {
    pub regions: Vec<RegionHealth>,
    pub probes: Vec<ProbeState>,
}

/// What the tracker remembers about a serving region between observations.
#[derive(Clone, Copy, Debug)]
struct RegionLatch {
    /// The region's own verdict, before the isolation rule looks at all of them.
    own: Verdict,
    down_since: Option<Ts>,
    healthy_since: Option<Ts>,
}

impl Default for RegionLatch {
    fn default() -> Self {
        RegionLatch {
            own: Verdict::Unknown,
            down_since: None,
            healthy_since: None,
        }
    }
}

/// Consumes observations and keeps, per (probe, region), the streaks and the last success
/// and failure, and per serving region a verdict.
#[derive(Clone, Debug)]
pub struct HealthTracker {
    th: Thresholds,
    /// Primary first, then the secondaries: the regions that get a verdict.
    serving: Vec<RegionName>,
    /// Probe name → critical. A probe not listed is tracked as advisory.
    critical: BTreeMap<String, bool>,
    probes: BTreeMap<(String, RegionName), ProbeState>,
    latches: BTreeMap<RegionName, RegionLatch>,
}

impl HealthTracker {
    /// `serving`: the regions that get a verdict; `probes`: every probe's name and
    /// whether it is critical.
    pub fn new(
        th: Thresholds,
        serving: Vec<RegionName>,
        probes: impl IntoIterator<Item = (String, bool)>,
    ) -> HealthTracker {
        HealthTracker {
            th,
            latches: serving
                .iter()
                .map(|r| (r.clone(), RegionLatch::default()))
                .collect(),
            serving,
            critical: probes.into_iter().collect(),
            probes: BTreeMap::new(),
        }
    }

    pub fn for_policy(policy: &Policy) -> HealthTracker {
        HealthTracker::new(
            Thresholds::for_policy(policy),
            policy.regions.serving().cloned().collect(),
            policy.probes.iter().map(|p| (p.name.clone(), p.critical)),
        )
    }

    /// Applies one observation and returns the regions whose verdict it changed.
    ///
    /// An observation older than the newest one already applied for the same probe and
    /// region is stale (a late result) and is ignored.
    pub fn observe(&mut self, obs: Observation) -> Vec<VerdictChange> {
        let key = (obs.probe.clone(), obs.region.clone());
        if self.probes.get(&key).is_some_and(|p| p.latest.at > obs.at) {
            return Vec::new();
        }
        let before = self.verdicts();
        let at = obs.at;
        let critical = self.critical.get(&obs.probe).copied().unwrap_or(false);
        let state = self.probes.entry(key).or_insert_with(|| ProbeState {
            probe: obs.probe.clone(),
            region: obs.region.clone(),
            critical,
            consecutive_failures: 0,
            consecutive_successes: 0,
            streak_since: at,
            last_success: None,
            last_failure: None,
            latest: obs.clone(),
        });
        let streak = state.streak().then(obs.is_ok(), at, obs.latency);
        state.consecutive_failures = streak.failures;
        state.consecutive_successes = streak.successes;
        state.streak_since = streak.since;
        match &obs.outcome {
            Outcome::Ok => state.last_success = Some(at),
            Outcome::Failed { reason } => {
                state.last_failure = Some(LastFailure {
                    at,
                    reason: reason.clone(),
                });
            }
        }
        state.latest = obs.clone();

        if let Some(latch) = self.latches.get(&obs.region).copied() {
            let streaks = self.streaks(&obs.region);
            let (down_since, own) = assess(&streaks, latch.down_since, self.th, at);
            self.latches.insert(
                obs.region.clone(),
                RegionLatch {
                    own,
                    down_since,
                    ..latch
                },
            );
        }
        let after = self.verdicts();
        let mut changes = Vec::new();
        for ((region, from), (_, to)) in before.into_iter().zip(after) {
            // "Continuously healthy" restarts whenever the region is anything else.
            if let Some(latch) = self.latches.get_mut(&region) {
                latch.healthy_since = match (to, latch.healthy_since) {
                    (Verdict::Healthy, Some(t)) => Some(t),
                    (Verdict::Healthy, None) => Some(at),
                    _ => None,
                };
            }
            if from != to {
                changes.push(VerdictChange {
                    region,
                    from,
                    to,
                    at,
                });
            }
        }
        changes
    }

    /// A failed observation, at `now`, for each probe whose newest observation is older
    /// than `limit` (see [`stale_after`]): its loop has stopped or is stuck, and its last
    /// result must not stand for its health for ever. Each becomes the probe's newest
    /// once observed, so a silent probe fails once per `limit`, like a slow round.
    pub fn stale(&self, now: Ts, limit: Duration) -> Vec<Observation> {
        self.probes
            .values()
            .filter(|p| now.since(p.latest.at) > limit)
            .map(|p| {
                Observation::failed(
                    &p.probe,
                    &p.region,
                    now,
                    Duration::ZERO,
                    format!(
                        "stale: no result for {} (the limit is {}); the probe's loop has stopped or is stuck",
                        fmt_duration(now.since(p.latest.at)),
                        fmt_duration(limit)
                    ),
                )
            })
            .collect()
    }

    /// The critical probes of `region` that have reported, as streaks.
    fn streaks(&self, region: &RegionName) -> Vec<Streak> {
        self.probes
            .values()
            .filter(|p| p.critical && p.region == *region)
            .map(ProbeState::streak)
            .collect()
    }

    /// Every serving region's verdict, primary first.
    pub fn verdicts(&self) -> Vec<(RegionName, Verdict)> {
        let own: Vec<Verdict> = self
            .serving
            .iter()
            .map(|r| {
                self.latches
                    .get(r)
                    .map(|l| l.own)
                    .unwrap_or(Verdict::Unknown)
            })
            .collect();
        self.serving.iter().cloned().zip(isolate(&own)).collect()
    }

    /// The verdict of one region; `Unknown` for a region that is not serving.
    pub fn verdict(&self, region: &RegionName) -> Verdict {
        self.verdicts()
            .into_iter()
            .find(|(r, _)| r == region)
            .map(|(_, v)| v)
            .unwrap_or(Verdict::Unknown)
    }

    /// Since when `region` has been continuously `Healthy` (`None`: it is not healthy).
    pub fn healthy_since(&self, region: &RegionName) -> Option<Ts> {
        self.latches.get(region).and_then(|l| l.healthy_since)
    }

    /// How long `region` has been continuously healthy at `now`; zero when it is not.
    pub fn healthy_for(&self, region: &RegionName, now: Ts) -> Duration {
        self.healthy_since(region)
            .map(|t| now.since(t))
            .unwrap_or(Duration::ZERO)
    }

    pub fn probe(&self, probe: &str, region: &RegionName) -> Option<&ProbeState> {
        self.probes.get(&(probe.to_string(), region.clone()))
    }

    /// The newest observation of `probe` in `region`.
    pub fn latest(&self, probe: &str, region: &RegionName) -> Option<&Observation> {
        self.probe(probe, region).map(|p| &p.latest)
    }

    /// Every tracked (probe, region), ordered by probe then region.
    pub fn probes(&self) -> impl Iterator<Item = &ProbeState> {
        self.probes.values()
    }

    /// The worst replica lag among the newest observations of `region`'s probes (largest
    /// seconds, then bytes): the figure the RPO guardrail compares with its budget.
    pub fn replica_lag(&self, region: &RegionName) -> Option<LagReading> {
        self.probes
            .values()
            .filter(|p| p.region == *region)
            .filter_map(|p| {
                p.latest.lag.map(|lag| LagReading {
                    probe: p.probe.clone(),
                    at: p.latest.at,
                    lag,
                })
            })
            .max_by(|a, b| {
                let key = |l: &Lag| (l.seconds.unwrap_or(0.0), l.bytes.unwrap_or(0));
                let (ka, kb) = (key(&a.lag), key(&b.lag));
                ka.0.total_cmp(&kb.0).then(ka.1.cmp(&kb.1))
            })
    }

    /// The newest role any of `region`'s probes reported.
    pub fn role(&self, region: &RegionName) -> Option<RoleReading> {
        self.probes
            .values()
            .filter(|p| p.region == *region)
            .filter_map(|p| {
                p.latest.role.map(|role| RoleReading {
                    probe: p.probe.clone(),
                    at: p.latest.at,
                    role,
                })
            })
            .max_by_key(|r| r.at)
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            regions: self
                .verdicts()
                .into_iter()
                .map(|(region, verdict)| RegionHealth {
                    healthy_since: self.healthy_since(&region),
                    region,
                    verdict,
                })
                .collect(),
            probes: self.probes.values().cloned().collect(),
        }
    }

    pub fn thresholds(&self) -> Thresholds {
        self.th
    }
}

/// A sentence about how long ago something was, for operators: "12s ago".
pub fn ago(then: Ts, now: Ts) -> String {
    format!("{} ago", fmt_duration(now.since(then)))
}
