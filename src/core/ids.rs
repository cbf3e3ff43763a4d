//! Identifiers that travel between the controller, the executor and the journal.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::Direction;
use super::time::Ts;

/// The fencing epoch: raised durably before a run's first side effect. Anything stamped
/// with a smaller epoch than the journal's current one is refused.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl Epoch {
    pub fn next(self) -> Epoch {
        Epoch(self.0.saturating_add(1))
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A run's identifier, e.g. `fo-20261123-153012-7f3a`. Built by the caller (which owns
/// the clock and the randomness); `core` only carries it.
#[derive(
    Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct RunId(pub String);

impl RunId {
    /// `fo-20261123-153012-7f3a` (failover) or `fb-…` (failback): sorts by start time;
    /// `random` (from the caller) tells apart runs started in the same second.
    pub fn generate(direction: Direction, now: Ts, random: u16) -> RunId {
        let prefix = match direction {
            Direction::Failover => "fo",
            Direction::Failback => "fb",
        };
        RunId(format!("{prefix}-{}-{random:04x}", now.compact_utc()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_name_the_direction_and_the_start_time() {
        let id = RunId::generate(Direction::Failover, Ts(1_795_437_296_123), 0x7f3a);
        assert_eq!(id.as_str(), "fo-20261123-123456-7f3a");
        let id = RunId::generate(Direction::Failback, Ts(0), 1);
        assert_eq!(id.as_str(), "fb-19700101-000000-0001");
    }
}
