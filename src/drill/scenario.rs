//! Drill scenarios: files under `policies/drills/` that say what to break, what load to
//! run meanwhile, and what must happen (or must not).
//!
//! ```toml
//! [drill]
//! name = "region-outage"
//! policy = "../sandbox.toml"
//!
//! [load]
//! writes_per_second = 20
//!
//! [[faults]]
//! kind = "stop_database"      # in the primary region, unless `region` says otherwise
//!
//! [expect]
//! failover = true
//! within = "30s"
//! failback = true
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::policy::schema::DurationText;

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub drill: Meta,
    #[serde(default)]
    pub steady_state: SteadyState,
    #[serde(default)]
    pub load: Load,
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Drift to make (a drift drill): the world changes under a runbook, nothing fails.
    #[serde(default)]
    pub drift: Vec<super::drift::Drift>,
    pub expect: Expect,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The policy the drill runs (relative to the scenario file).
    #[serde(default = "default_policy")]
    pub policy: PathBuf,
    /// Probes this drill makes advisory (`critical = false`) in a scratch copy of the
    /// policy, for drills about what a non-critical failure must not do.
    #[serde(default)]
    pub advisory: Vec<String>,
    /// Detection settings this drill replaces in the same scratch copy, to measure one
    /// rule against another on the same outage.
    #[serde(default)]
    pub detection: DetectionOverride,
    /// A `command` step that only sleeps, added to the failover runbook in the same
    /// scratch copy: a window in the middle of a run for faults that must land between
    /// two steps (`during_step = "drill-pause"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_step: Option<PauseStep>,
}

/// Where the drill's pause step goes and how long it sleeps.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseStep {
    /// The failover step it follows.
    pub after: String,
    /// How long it sleeps.
    #[schemars(with = "DurationText")]
    pub sleep: String,
}

/// The pause step's name, for `during_step`.
pub const PAUSE_STEP: &str = "drill-pause";

/// Detection settings a drill runs with instead of the policy's; the policy loader
/// checks them as it checks the policy's own.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectionOverride {
    /// `confirm_interval` for this drill (equal to the interval: no fast confirmation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DurationText>")]
    pub confirm_interval: Option<String>,
    /// `min_failure_span` for this drill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DurationText>")]
    pub min_failure_span: Option<String>,
}

impl DetectionOverride {
    /// The settings given, as (policy field, value).
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        [
            ("confirm_interval", &self.confirm_interval),
            ("min_failure_span", &self.min_failure_span),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }
}

fn default_policy() -> PathBuf {
    PathBuf::from("../sandbox.toml")
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SteadyState {
    /// How long every critical probe may take to pass before the drill gives up.
    #[serde(default = "d60", deserialize_with = "duration")]
    #[schemars(with = "DurationText")]
    pub timeout: Duration,
}

impl Default for SteadyState {
    fn default() -> Self {
        SteadyState { timeout: d60() }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Numbered inserts per second through the serving region's API.
    #[serde(default = "default_wps")]
    pub writes_per_second: u32,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            writes_per_second: default_wps(),
        }
    }
}

fn default_wps() -> u32 {
    20
}

/// One thing the drill breaks.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub kind: FaultKind,
    /// `primary` (default) or `secondary`.
    #[serde(default)]
    pub region: Side,
    /// When, after the steady state holds.
    #[serde(default, deserialize_with = "duration")]
    #[schemars(with = "DurationText")]
    pub at: Duration,
    /// `slow_api`: how long the API takes to answer.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(with = "Option<DurationText>")]
    pub delay: Option<Duration>,
    /// `lossy_link`: the share of new connections the controller's proxies reset, in %.
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub percent: Option<u8>,
    /// `pause_controller`: how long the controller stays stopped.
    #[serde(default = "d5", deserialize_with = "duration")]
    #[schemars(with = "DurationText")]
    pub duration: Duration,
    /// Wait until the acting controller's run is in this step (e.g. the drill's
    /// `drill-pause`), then inject: a fault in the middle of a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during_step: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The region's PostgreSQL is stopped abruptly (immediate shutdown).
    StopDatabase,
    /// The region's API answers 500.
    ApiError,
    /// The region's API answers, healthy, after `delay`.
    SlowApi,
    /// The region's workers stop sending heartbeats.
    StopHeartbeats,
    /// The region's bucket disappears (every S3 call fails).
    StorageFail,
    /// The API fails two requests, passes one, and again, by each caller's own count, for
    /// as long as the drill runs: no caller ever sees three failures in a row.
    FlapApi,
    /// Every path from the controller to the region is cut; clients still reach it.
    CutController,
    /// The controller's proxies to the region reset `percent` % of new connections.
    LossyLink,
    /// The replication link to the standby is cut while the primary keeps taking writes.
    DegradeReplication,
    /// The controller process is stopped (SIGSTOP) for `duration`, then continued.
    PauseController,
    /// The witness process dies (SIGKILL): the quorum loses its second observer.
    KillWitness,
    /// HA: the acting controller is killed (SIGKILL).
    KillController,
    /// HA: the acting controller's every path to etcd is cut (it still reaches the
    /// services).
    CutControllerFromEtcd,
    /// HA: one etcd member, the raft leader, is killed (SIGKILL).
    KillEtcdMember,
    /// HA: the observer's every path to the region is cut; the controllers still reach it.
    CutObserver,
}

impl FaultKind {
    /// Whether the fault hits the controller that acts when it lands.
    pub fn hits_acting_controller(self) -> bool {
        matches!(
            self,
            FaultKind::KillController
                | FaultKind::PauseController
                | FaultKind::CutControllerFromEtcd
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            FaultKind::StopDatabase => "database stopped abruptly",
            FaultKind::ApiError => "API answering 500",
            FaultKind::SlowApi => "API answering slowly",
            FaultKind::StopHeartbeats => "worker heartbeats stopped",
            FaultKind::StorageFail => "storage failing",
            FaultKind::FlapApi => "API flapping (fail, fail, ok, … by each caller's requests)",
            FaultKind::CutController => {
                "controller cut off from the region (clients still reach it)"
            }
            FaultKind::LossyLink => "lossy link from the controller (connections reset at random)",
            FaultKind::DegradeReplication => "replication link to the standby cut",
            FaultKind::PauseController => "controller process stopped (SIGSTOP), then continued",
            FaultKind::KillWitness => "the witness killed",
            FaultKind::KillController => "the acting controller killed (SIGKILL)",
            FaultKind::CutControllerFromEtcd => "the acting controller cut off from etcd",
            FaultKind::KillEtcdMember => "the etcd raft leader killed (SIGKILL)",
            FaultKind::CutObserver => "the observer cut off from the region",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    #[default]
    Primary,
    Secondary,
}

/// What must happen.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Whether the controller fails over.
    pub failover: bool,
    /// From the (last) fault to the failover completed.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(with = "Option<DurationText>")]
    pub within: Option<Duration>,
    /// With `failover = false`: how long to watch that nothing happens.
    #[serde(default = "d20", deserialize_with = "duration")]
    #[schemars(with = "DurationText")]
    pub watch_for: Duration,
    /// Acknowledged writes allowed to be missing on the new primary.
    #[serde(default)]
    pub max_lost_writes: Option<u64>,
    /// With `failover = true`: the controller must first hold the failover for this reason
    /// (a metric label such as `replica_lag`), then an operator approves accepting data
    /// loss. With `failover = false`: it must be holding for this reason at the end.
    #[serde(default)]
    pub blocked: Option<String>,
    /// How long the hold lasts before the drill approves it.
    #[serde(default = "d5", deserialize_with = "duration")]
    #[schemars(with = "DurationText")]
    pub approve_after: Duration,
    /// Whether losing acknowledged writes is expected (and must be reported).
    #[serde(default)]
    pub data_loss: bool,
    /// Fail back (verified, zero data loss) after the failover.
    #[serde(default)]
    pub failback: bool,
    /// With `failover = false`: the controller must have frozen its automatic decisions
    /// (a stall or clock jump noticed) after the faults.
    #[serde(default)]
    pub frozen: bool,
    /// Text `lifeboat status` must show at the end of the watch (each, case-insensitive):
    /// what an operator reads to learn why nothing happened and what to do.
    #[serde(default)]
    pub status_says: Vec<String>,
    /// From asking for the failback to it completing.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(with = "Option<DurationText>")]
    pub failback_within: Option<Duration>,
    /// A drift drill: what readiness must say about the drift.
    #[serde(default)]
    pub readiness: Option<super::drift::ExpectReadiness>,
    /// HA: whether another controller must take over from the one the faults hit
    /// (`true`), or the same one must lead throughout (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<bool>,
    /// HA: the controller the faults hit says it no longer leads within this long.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(with = "Option<DurationText>")]
    pub stops_acting_within: Option<Duration>,
}

fn d5() -> Duration {
    Duration::from_secs(5)
}
fn d20() -> Duration {
    Duration::from_secs(20)
}
fn d60() -> Duration {
    Duration::from_secs(60)
}

pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!("invalid duration \"{s}\": {e}; write e.g. \"30s\""))
    })
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

impl Scenario {
    /// Reads and checks a scenario file. Errors name the file, line and column.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read drill {}", path.display()))?;
        let s: Scenario = toml::from_str(&text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|sp| line_col(&text, sp.start))
                .unwrap_or((1, 1));
            anyhow::anyhow!("{}:{line}:{col}: {}", path.display(), e.message())
        })?;
        if s.faults.is_empty() && s.drift.is_empty() {
            anyhow::bail!(
                "{}: a drill needs at least one [[faults]] or [[drift]] entry",
                path.display()
            );
        }
        if !s.drift.is_empty() && (s.expect.readiness.is_none() || s.expect.failover) {
            anyhow::bail!(
                "{}: a drift drill expects no failover and says what readiness must report: `failover = false` and an [expect.readiness] table",
                path.display()
            );
        }
        if !s.drift.is_empty() && !s.faults.is_empty() {
            anyhow::bail!(
                "{}: a drill either injects [[faults]] or makes [[drift]], not both",
                path.display()
            );
        }
        if s.expect.failback && !s.expect.failover {
            anyhow::bail!(
                "{}: `failback = true` needs `failover = true` (there is nothing to fail back from)",
                path.display()
            );
        }
        for f in &s.faults {
            let missing = match f.kind {
                FaultKind::SlowApi if f.delay.is_none() => Some("`delay` (e.g. delay = \"300ms\")"),
                FaultKind::LossyLink if f.percent.is_none_or(|p| p == 0 || p > 100) => {
                    Some("`percent` between 1 and 100 (e.g. percent = 30)")
                }
                _ => None,
            };
            if let Some(what) = missing {
                anyhow::bail!(
                    "{}: a `{}` fault needs {what}",
                    path.display(),
                    serde_json::to_value(f.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                );
            }
        }
        Ok(s)
    }

    /// The policy file, resolved against the scenario's directory.
    pub fn policy_path(&self, scenario_path: &Path) -> PathBuf {
        scenario_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&self.drill.policy)
    }
}

/// The JSON Schema of scenario files (`lifeboat schema --drill`).
pub fn schema() -> serde_json::Value {
    crate::policy::schema::for_type::<Scenario>("lifeboat drill scenario")
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_drill_loads() {
        let mut n = 0;
        for e in std::fs::read_dir("policies/drills").expect("policies/drills") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "toml") {
                Scenario::load(&p).unwrap_or_else(|e| panic!("{e:#}"));
                n += 1;
            }
        }
        assert!(
            n >= 16,
            "the drills cover the faults and drifts the issues list, found {n}"
        );
    }

    #[test]
    fn a_misspelt_field_is_reported_at_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, "[drill]\nname = \"x\"\n\n[[faults]]\nkind = \"stop_database\"\n\n[expect]\nfailover = true\nwithin_ = \"3s\"\n").expect("write");
        let e = Scenario::load(&p).expect_err("unknown field").to_string();
        assert!(e.contains("bad.toml:9:1"), "{e}");
        assert!(e.contains("within_"), "{e}");
    }
}
