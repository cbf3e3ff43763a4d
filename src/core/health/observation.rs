//! What one probe round reports: its outcome, latency and, for databases, role and lag.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::model::RegionName;
use crate::core::time::Ts;

/// A database's role as a probe saw it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Takes writes: PostgreSQL not in recovery, an RDS instance that replicates from no
    /// one, the writer cluster of an Aurora global database.
    Primary,
    /// Replays another's changes: a streaming standby, a read replica, an Aurora
    /// secondary cluster.
    Standby,
    /// Was a primary and now refuses writes (PostgreSQL with
    /// `default_transaction_read_only` on, as `postgres_fence` leaves it): not a writer,
    /// and not a standby either until it is rejoined.
    Fenced,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
            Role::Fenced => "fenced (read-only)",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far a standby is behind, as far as it can tell. The RPO guardrail reads this.
///
/// A standby measures lag against the WAL it has *received*. When it loses its source
/// (the primary died), reception stops, replay catches up, and both figures fall to zero
/// although the standby may be missing whatever the primary wrote last; `streaming`
/// says whether that is the case.
#[derive(Clone, Copy, PartialEq, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Lag {
    /// WAL received but not yet replayed.
    pub bytes: Option<u64>,
    /// How far replay is behind in time; zero when everything received is replayed.
    pub seconds: Option<f64>,
    /// Whether the standby is connected to its source right now (`None`: not known).
    pub streaming: Option<bool>,
}

impl Lag {
    /// The lag as the status query reports it (floats, possibly NULL). Negative figures
    /// (clock skew between the servers) count as none; NaN counts as unknown.
    pub fn from_query(bytes: Option<f64>, seconds: Option<f64>, streaming: Option<bool>) -> Lag {
        Lag {
            // LSN differences are whole bytes; the float only carries them. `as`
            // saturates, so an absurd figure reads as u64::MAX rather than panicking.
            bytes: bytes.filter(|b| !b.is_nan()).map(|b| b.max(0.0) as u64),
            seconds: seconds.filter(|s| !s.is_nan()).map(|s| s.max(0.0)),
            streaming,
        }
    }

    /// The lag in time; saturates at `Duration::MAX` for a figure too large to hold,
    /// which the RPO gate reads as "far over budget", as it is.
    pub fn duration(&self) -> Option<Duration> {
        self.seconds
            .filter(|s| *s >= 0.0)
            .map(|s| Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX))
    }
}

impl fmt::Display for Lag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(b) = self.bytes {
            parts.push(format!("{b} B"));
        }
        if let Some(s) = self.seconds {
            parts.push(format!("{s:.1}s"));
        }
        if self.streaming == Some(false) {
            parts.push("not streaming".to_string());
        }
        if parts.is_empty() {
            f.write_str("unknown")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Whether one probe round passed.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// The reason names the endpoint, what failed and how long it took; never a secret.
    Failed {
        reason: String,
    },
}

/// One round of one probe in one region: what the scheduler sends and the tracker eats.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Observation {
    pub probe: String,
    pub region: RegionName,
    /// When the result was known.
    pub at: Ts,
    /// How long the probe took, in milliseconds.
    #[serde(rename = "latency_ms", with = "millis")]
    #[schemars(with = "u64")]
    pub latency: Duration,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Database probes: the role the endpoint reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Database probes on a standby: replica lag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<Lag>,
    /// A short human note: "HTTP 200", "in service 2 ≥ 1", "exit status 0".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Observation {
    pub fn ok(probe: &str, region: &RegionName, at: Ts, latency: Duration) -> Observation {
        Observation {
            probe: probe.to_string(),
            region: region.clone(),
            at,
            latency,
            outcome: Outcome::Ok,
            role: None,
            lag: None,
            detail: None,
        }
    }

    pub fn failed(
        probe: &str,
        region: &RegionName,
        at: Ts,
        latency: Duration,
        reason: impl Into<String>,
    ) -> Observation {
        Observation {
            outcome: Outcome::Failed {
                reason: reason.into(),
            },
            ..Observation::ok(probe, region, at, latency)
        }
    }

    pub fn with_role(mut self, role: Role) -> Observation {
        self.role = Some(role);
        self
    }

    pub fn with_lag(mut self, lag: Lag) -> Observation {
        self.lag = Some(lag);
        self
    }

    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    pub fn reason(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Ok => None,
            Outcome::Failed { reason } => Some(reason),
        }
    }
}

/// Durations as whole milliseconds in JSON, which is what people and scripts read.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(crate::core::time::millis(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
