//! The values stored under the coordination keys (JSON), and the pure questions asked of
//! them: which votes are fresh, how many say a region is down.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::health::Verdict;
use crate::core::ids::Epoch;
use crate::core::model::RegionName;
use crate::core::time::Ts;

/// Who a controller is: its node name and the region it runs in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub node: String,
    pub region: RegionName,
}

/// The value of `svc/<s>/leader`, with the epoch etcd gave it (its `create_revision`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderInfo {
    pub node: String,
    pub region: RegionName,
    pub epoch: Epoch,
}

/// `nodes/<node>`: a controller's heartbeat in the registry, under its lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node: String,
    pub region: RegionName,
    pub version: String,
    /// When the node's control loop last completed a turn (its own wall clock).
    pub last_loop: Ts,
    /// Whether it campaigns: an observer (`run --observer`) registers too, but never
    /// leads, so nobody defers to it.
    #[serde(default = "campaigns_by_default")]
    pub campaigns: bool,
}

/// Records written before the field existed were all controllers'.
fn campaigns_by_default() -> bool {
    true
}

/// `svc/<s>/votes/<observer>`: one observer's view of every region of the service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub observer: String,
    /// Where the observer runs (a vote from the patient's own region counts the same, but
    /// `status` shows it).
    pub region: RegionName,
    /// The observer's probe round; grows by one per round.
    pub round: u64,
    pub observed_at: Ts,
    pub verdicts: BTreeMap<RegionName, Verdict>,
    /// A digest of the evidence behind the verdicts (the observer keeps the evidence).
    pub evidence: String,
}

impl Vote {
    pub fn says_down(&self, region: &RegionName) -> bool {
        matches!(self.verdicts.get(region), Some(Verdict::Down { .. }))
    }
}

/// `run/current`: the run this service's leader started and has not ended, with the
/// plan it started with, so the next leader resumes exactly that plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunIntent {
    pub run_id: String,
    pub epoch: Epoch,
    pub node: String,
    pub started_by: String,
    /// When the run started (absent in records an older lifeboat wrote): a controller
    /// that takes the run over records it as started then, not at the takeover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Ts>,
    pub plan: crate::core::plan::Plan,
}

/// `run/<id>/end`: how the run ended (`completed` or `failed`) and which epoch said so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnd {
    pub status: String,
    pub epoch: Epoch,
    pub node: String,
}

/// `svc/<s>/state`: the region that serves, as the last completed run left it; written
/// by the epoch that completed the run, in the same fenced txn as its end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedState {
    pub active: RegionName,
    pub run_id: String,
    pub epoch: Epoch,
}

/// `run/<id>/step/<seq>/intent/<epoch>`: an epoch is about to apply a step. Holds no
/// time, so the record of a retried attempt is byte for byte the first one's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepIntent {
    pub step: String,
    pub epoch: Epoch,
    pub node: String,
}

/// `run/<id>/step/<seq>/done`: how a step ended, and which epoch recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepDone {
    pub step: String,
    pub epoch: Epoch,
    pub node: String,
    /// `done` (applied and verified), `adopted` (found in place) or `failed`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A vote as read back, with the revision a run-intent txn compares to prove the vote
/// did not change between counting and committing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountedVote {
    pub key: String,
    pub mod_revision: i64,
    pub vote: Vote,
}

/// The votes observed within `max_age` of `now` (by their `observed_at`). A vote whose
/// observer died is already gone with its lease; this also drops the vote of an observer
/// that is alive but stuck (its lease renewed, its rounds not).
pub fn fresh_votes(votes: &[CountedVote], now: Ts, max_age: Duration) -> Vec<CountedVote> {
    votes
        .iter()
        .filter(|v| now.since(v.vote.observed_at) <= max_age)
        .cloned()
        .collect()
}

/// The fresh votes that say `region` is down, when they are a majority of `configured`
/// observers (each observer counted once); `None` when they are not. The returned votes
/// are the ones whose revisions the run-intent txn must compare.
pub fn down_majority(
    fresh: &[CountedVote],
    region: &RegionName,
    configured: usize,
) -> Option<Vec<CountedVote>> {
    let mut down: BTreeMap<&str, &CountedVote> = BTreeMap::new();
    for v in fresh.iter().filter(|v| v.vote.says_down(region)) {
        down.entry(v.vote.observer.as_str()).or_insert(v);
    }
    (configured > 0 && down.len() > configured / 2).then(|| down.into_values().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(observer: &str, at: u64, down: bool) -> CountedVote {
        let region = RegionName::new("us-east-1");
        let verdict = if down {
            Verdict::Down { since: Ts(at) }
        } else {
            Verdict::Healthy
        };
        CountedVote {
            key: format!("votes/{observer}"),
            mod_revision: at as i64,
            vote: Vote {
                observer: observer.to_string(),
                region: RegionName::new("eu-west-1"),
                round: 1,
                observed_at: Ts(at),
                verdicts: BTreeMap::from([(region, verdict)]),
                evidence: String::new(),
            },
        }
    }

    #[test]
    fn a_majority_of_fresh_down_votes_is_needed_and_stale_ones_do_not_count() {
        let region = RegionName::new("us-east-1");
        let votes = vec![
            vote("a", 10_000, true),
            vote("b", 1_000, true),
            vote("c", 10_000, false),
        ];
        let fresh = fresh_votes(&votes, Ts(11_000), Duration::from_secs(3));
        assert_eq!(fresh.len(), 2, "b is stale");
        assert_eq!(
            down_majority(&fresh, &region, 3),
            None,
            "1 of 3 is no majority"
        );
        let votes = vec![vote("a", 10_000, true), vote("b", 10_500, true)];
        let fresh = fresh_votes(&votes, Ts(11_000), Duration::from_secs(3));
        let counted = down_majority(&fresh, &region, 3).expect("2 of 3");
        assert_eq!(counted.len(), 2);
        assert_eq!(
            down_majority(&fresh, &region, 4),
            None,
            "2 of 4 is no majority"
        );
        assert_eq!(down_majority(&fresh, &region, 0), None);
    }
}
