//! Witnesses: other lifeboat daemons that probe the same service from another place
//! (`lifeboat run --witness`). Before an automatic failover the controller counts itself
//! and every witness that, recently, also saw the serving region down; the quorum in the
//! policy's guardrails says how many must agree.
//!
//! A controller whose own network is cut from the primary sees the primary down while the
//! witness, still reaching it, does not: the vote fails and nothing fails over, which is
//! what keeps a still-serving primary from gaining a writable twin.
//!
//! Invariant: a witness that does not answer, answers garbage, or answered too long ago
//! never votes. Silence is not agreement.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

use super::engine::Event;
use crate::core::controller::ObserverVote;
use crate::core::health::Verdict;
use crate::core::model::RegionName;

/// What one poll of one witness returned.
#[derive(Debug)]
pub struct Poll {
    pub url: String,
    /// The regions the witness sees down, or why it could not be asked.
    pub result: Result<Vec<RegionName>, String>,
}

/// A witness as `lifeboat status` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WitnessView {
    pub url: String,
    /// The regions it sees down, as of its last answer.
    pub sees_down: Vec<RegionName>,
    /// How long ago it last answered.
    pub answered_ago: Option<Duration>,
    /// Whether that answer is recent enough to count.
    pub fresh: bool,
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Seen {
    answered: Option<(Instant, Vec<RegionName>)>,
    last_error: Option<String>,
}

/// The latest answer of every witness.
#[derive(Debug)]
pub struct Witnesses {
    seen: BTreeMap<String, Seen>,
    fresh_for: Duration,
    /// Wakes the pollers early: the controller has just seen an outage and wants the
    /// votes now, not at the next poll.
    pub ask_now: Arc<Notify>,
}

impl Witnesses {
    /// `fresh_for`: how old an answer may be and still count.
    pub fn new(urls: &[String], fresh_for: Duration) -> Witnesses {
        Witnesses {
            seen: urls.iter().map(|u| (u.clone(), Seen::default())).collect(),
            fresh_for,
            ask_now: Arc::new(Notify::new()),
        }
    }

    pub fn record(&mut self, poll: Poll, at: Instant) {
        let seen = self.seen.entry(poll.url).or_default();
        match poll.result {
            Ok(down) => {
                seen.answered = Some((at, down));
                seen.last_error = None;
            }
            Err(e) => seen.last_error = Some(e),
        }
    }

    /// Each witness's vote on `region`: down only when its recent answer says so.
    pub fn votes(&self, region: &RegionName, now: Instant) -> Vec<ObserverVote> {
        self.seen
            .iter()
            .map(|(url, s)| ObserverVote {
                observer: url.clone(),
                sees_down: s.answered.as_ref().is_some_and(|(at, down)| {
                    now.saturating_duration_since(*at) <= self.fresh_for && down.contains(region)
                }),
            })
            .collect()
    }

    /// The witnesses whose recent answer sees `region` down.
    pub fn agreeing(&self, region: &RegionName, now: Instant) -> u32 {
        self.votes(region, now)
            .iter()
            .filter(|v| v.sees_down)
            .count() as u32
    }

    pub fn views(&self, now: Instant) -> Vec<WitnessView> {
        self.seen
            .iter()
            .map(|(url, s)| {
                let ago = s
                    .answered
                    .as_ref()
                    .map(|(at, _)| now.saturating_duration_since(*at));
                WitnessView {
                    url: url.clone(),
                    sees_down: s
                        .answered
                        .as_ref()
                        .map(|(_, d)| d.clone())
                        .unwrap_or_default(),
                    answered_ago: ago,
                    fresh: ago.is_some_and(|a| a <= self.fresh_for),
                    last_error: s.last_error.clone(),
                }
            })
            .collect()
    }
}

/// The part of a witness's `/v1/status` a vote needs.
#[derive(Deserialize)]
struct TheirStatus {
    regions: Vec<TheirRegion>,
}

#[derive(Deserialize)]
struct TheirRegion {
    region: RegionName,
    verdict: Verdict,
}

/// Asks one witness which regions it sees down.
async fn ask(client: &reqwest::Client, url: &str) -> Result<Vec<RegionName>, String> {
    let endpoint = format!("{}/v1/status", url.trim_end_matches('/'));
    let r = client
        .get(&endpoint)
        .send()
        .await
        .map_err(|e| format!("GET {endpoint}: {}", crate::probe::http::describe(&e)))?;
    if !r.status().is_success() {
        return Err(format!("GET {endpoint}: HTTP {}", r.status()));
    }
    let status: TheirStatus = r
        .json()
        .await
        .map_err(|e| format!("GET {endpoint}: not a lifeboat status: {e}"))?;
    Ok(status
        .regions
        .into_iter()
        .filter(|r| matches!(r.verdict, Verdict::Down { .. }))
        .map(|r| r.region)
        .collect())
}

/// Polls every witness every `every`, and at once when `ask_now` is notified; one task
/// each so a slow witness never delays another. Each answer (or failure) is sent as an
/// event. The tasks end with the loop.
pub fn spawn_pollers(
    urls: &[String],
    every: Duration,
    timeout: Duration,
    ask_now: &Arc<Notify>,
    events: &mpsc::Sender<Event>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let client = crate::clients::http::builder("witness")
        .timeout(timeout)
        .build()?;
    Ok(urls
        .iter()
        .map(|url| {
            let (client, url, events) = (client.clone(), url.clone(), events.clone());
            let ask_now = ask_now.clone();
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(every);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        _ = ask_now.notified() => {}
                    }
                    let result = ask(&client, &url).await;
                    let poll = Poll {
                        url: url.clone(),
                        result,
                    };
                    if events.send(Event::Witness(poll)).await.is_err() {
                        return;
                    }
                }
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn east() -> RegionName {
        RegionName::new("us-east-1")
    }

    #[test]
    fn only_fresh_answers_that_see_the_region_down_vote() {
        let urls = vec!["http://a".to_string(), "http://b".to_string()];
        let mut w = Witnesses::new(&urls, Duration::from_secs(3));
        let t0 = Instant::now();
        assert_eq!(w.agreeing(&east(), t0), 0, "nobody has answered yet");
        w.record(
            Poll {
                url: "http://a".into(),
                result: Ok(vec![east()]),
            },
            t0,
        );
        w.record(
            Poll {
                url: "http://b".into(),
                result: Ok(vec![]),
            },
            t0,
        );
        assert_eq!(w.agreeing(&east(), t0), 1);
        assert_eq!(w.agreeing(&RegionName::new("us-west-2"), t0), 0);
        // Too old: no vote, however it looked then.
        assert_eq!(w.agreeing(&east(), t0 + Duration::from_secs(4)), 0);
    }

    #[test]
    fn a_failed_poll_keeps_the_last_answer_until_it_goes_stale() {
        let urls = vec!["http://a".to_string()];
        let mut w = Witnesses::new(&urls, Duration::from_secs(3));
        let t0 = Instant::now();
        w.record(
            Poll {
                url: "http://a".into(),
                result: Ok(vec![east()]),
            },
            t0,
        );
        w.record(
            Poll {
                url: "http://a".into(),
                result: Err("connection refused".into()),
            },
            t0 + Duration::from_secs(1),
        );
        assert_eq!(w.agreeing(&east(), t0 + Duration::from_secs(2)), 1);
        assert_eq!(w.agreeing(&east(), t0 + Duration::from_secs(5)), 0);
        let v = &w.views(t0 + Duration::from_secs(5))[0];
        assert!(!v.fresh);
        assert_eq!(v.last_error.as_deref(), Some("connection refused"));
    }
}
