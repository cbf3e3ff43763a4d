//! Witnesses: other lifeboat daemons that probe the same service from another place
//! (`lifeboat run --witness`). Before an automatic failover the controller counts itself
//! and every witness that, recently, also saw the serving region down; the quorum in the
//! policy's guardrails says how many must agree.
//!
//! A controller whose own network is cut from the primary sees the primary down while the
//! witness, still reaching it, does not: the vote fails and nothing fails over, which is
//! what keeps a still-serving primary from gaining a writable twin.
//!
//! Invariant: a witness that does not answer, answers garbage, answers unsigned or with
//! another key, about another service or to another request, or whose view was too old
//! by its own clock, never votes. Silence is not agreement.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

use super::engine::Event;
use super::vote::{self, Vote, VoteKey};
use crate::core::controller::ObserverVote;
use crate::core::model::RegionName;

/// What one poll of one witness returned.
#[derive(Debug)]
pub struct Poll {
    pub url: String,
    /// What the witness sees, or why its answer does not count.
    pub result: Result<Answer, String>,
}

/// A checked answer: per region, whether the witness sees it down and how old its view
/// of it was when it signed, by its own clock.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    pub regions: Vec<RegionAnswer>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RegionAnswer {
    pub region: RegionName,
    pub down: bool,
    /// `None`: the witness has not observed the region yet.
    pub age: Option<Duration>,
}

impl Answer {
    /// An answer that sees `down` down, observed the moment it was signed (for tests and
    /// tools that script a witness).
    pub fn down_now(down: Vec<RegionName>) -> Answer {
        Answer {
            regions: down
                .into_iter()
                .map(|region| RegionAnswer {
                    region,
                    down: true,
                    age: Some(Duration::ZERO),
                })
                .collect(),
        }
    }

    /// The answer a verified vote carries.
    pub fn of(vote: &Vote) -> Answer {
        Answer {
            regions: vote
                .regions
                .iter()
                .map(|r| RegionAnswer {
                    region: r.region.clone(),
                    down: r.down,
                    age: vote.age(r),
                })
                .collect(),
        }
    }
}

/// A witness as `lifeboat status` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WitnessView {
    pub url: String,
    /// The regions it sees down, as of its last answer.
    pub sees_down: Vec<RegionName>,
    /// How long ago it last answered.
    pub answered_ago: Option<Duration>,
    /// How old its newest observation is now, by its clock when it answered plus the time
    /// since.
    #[serde(default)]
    pub observed_ago: Option<Duration>,
    /// Whether that observation is recent enough to count.
    pub fresh: bool,
    pub last_error: Option<String>,
}

/// A region as a witness last saw it, placed on this process's clock.
#[derive(Debug)]
struct RegionSeen {
    region: RegionName,
    down: bool,
    /// When the witness made the observation it answered with (arrival minus its age).
    observed: Option<Instant>,
}

#[derive(Debug, Default)]
struct Seen {
    answered: Option<(Instant, Vec<RegionSeen>)>,
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
    /// `fresh_for`: how old a witness's observation may be and still count.
    pub fn new(urls: &[String], fresh_for: Duration) -> Witnesses {
        Witnesses {
            seen: urls.iter().map(|u| (u.clone(), Seen::default())).collect(),
            fresh_for,
            ask_now: Arc::new(Notify::new()),
        }
    }

    /// Keeps a poll's answer, which arrived `at`; its observations are dated by their age
    /// on the witness's clock, not by when the answer arrived.
    pub fn record(&mut self, poll: Poll, at: Instant) {
        let seen = self.seen.entry(poll.url).or_default();
        match poll.result {
            Ok(answer) => {
                let regions = answer
                    .regions
                    .into_iter()
                    .map(|r| RegionSeen {
                        region: r.region,
                        down: r.down,
                        observed: r.age.and_then(|a| at.checked_sub(a)),
                    })
                    .collect();
                seen.answered = Some((at, regions));
                seen.last_error = None;
            }
            Err(e) => seen.last_error = Some(e),
        }
    }

    fn fresh(&self, observed: Option<Instant>, now: Instant) -> bool {
        observed.is_some_and(|o| now.saturating_duration_since(o) <= self.fresh_for)
    }

    /// Each witness's vote on `region`: down only when its answer says so and the
    /// observation behind it is recent.
    pub fn votes(&self, region: &RegionName, now: Instant) -> Vec<ObserverVote> {
        self.seen
            .iter()
            .map(|(url, s)| ObserverVote {
                observer: url.clone(),
                sees_down: s.answered.as_ref().is_some_and(|(_, regions)| {
                    regions
                        .iter()
                        .any(|r| &r.region == region && r.down && self.fresh(r.observed, now))
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
                let answered = s.answered.as_ref();
                let newest = answered
                    .and_then(|(_, regions)| regions.iter().filter_map(|r| r.observed).max());
                let observed_ago = newest.map(|o| now.saturating_duration_since(o));
                WitnessView {
                    url: url.clone(),
                    sees_down: answered
                        .map(|(_, regions)| {
                            regions
                                .iter()
                                .filter(|r| r.down)
                                .map(|r| r.region.clone())
                                .collect()
                        })
                        .unwrap_or_default(),
                    answered_ago: answered.map(|(at, _)| now.saturating_duration_since(*at)),
                    observed_ago,
                    fresh: self.fresh(newest, now),
                    last_error: s.last_error.clone(),
                }
            })
            .collect()
    }
}

/// Asks one witness for its signed vote on `service`, and checks it: the signature over
/// the body, the service, and the nonce this request sent. The body is read up to
/// `vote::MAX_BODY`; the client follows no redirect.
pub async fn ask(
    client: &reqwest::Client,
    url: &str,
    service: &str,
    key: &VoteKey,
) -> Result<Answer, String> {
    let endpoint = format!("{}{}", url.trim_end_matches('/'), vote::PATH);
    let nonce = vote::nonce()?;
    let mut r = client
        .get(&endpoint)
        .header(vote::SERVICE_HEADER, service)
        .header(vote::NONCE_HEADER, &nonce)
        .header(vote::SIGNATURE_HEADER, key.sign_request(service, &nonce))
        .send()
        .await
        .map_err(|e| format!("GET {endpoint}: {}", crate::probe::http::describe(&e)))?;
    let status = r.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(format!(
            "GET {endpoint}: the witness refused this controller's signature (HTTP 401): the two witness_key values differ"
        ));
    }
    if !status.is_success() {
        return Err(format!("GET {endpoint}: HTTP {status}"));
    }
    let signature = r
        .headers()
        .get(vote::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if r.content_length()
        .is_some_and(|n| n > vote::MAX_BODY as u64)
    {
        return Err(format!(
            "GET {endpoint}: the answer is larger than {} bytes: not a vote",
            vote::MAX_BODY
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = r
        .chunk()
        .await
        .map_err(|e| format!("GET {endpoint}: {}", crate::probe::http::describe(&e)))?
    {
        if body.len() + chunk.len() > vote::MAX_BODY {
            return Err(format!(
                "GET {endpoint}: the answer is larger than {} bytes: not a vote",
                vote::MAX_BODY
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let Some(signature) = signature else {
        return Err(format!(
            "GET {endpoint}: the answer is not signed: not a lifeboat witness, or not one given [guardrails] witness_key"
        ));
    };
    if !key.verify_answer(&body, &signature) {
        return Err(format!(
            "GET {endpoint}: the answer's signature is wrong: forged on the way, or the witness has another witness_key"
        ));
    }
    let vote: Vote = serde_json::from_slice(&body)
        .map_err(|e| format!("GET {endpoint}: a signed answer that is not a vote: {e}"))?;
    if vote.service != service {
        return Err(format!(
            "GET {endpoint}: the witness watches `{}`, not `{service}`",
            crate::clients::http::sanitize(&vote.service, 80)
        ));
    }
    if vote.nonce != nonce {
        return Err(format!(
            "GET {endpoint}: the answer is for another request (replayed): it does not echo this poll's nonce"
        ));
    }
    Ok(Answer::of(&vote))
}

/// Polls every witness every `every`, and at once when `ask_now` is notified; one task
/// each so a slow witness never delays another. Each answer (or failure) is sent as an
/// event. The tasks end with the loop.
pub fn spawn_pollers(
    urls: &[String],
    service: &str,
    key: Option<VoteKey>,
    every: Duration,
    timeout: Duration,
    ask_now: &Arc<Notify>,
    events: &mpsc::Sender<Event>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    if urls.is_empty() {
        return Ok(Vec::new());
    }
    let Some(key) = key else {
        anyhow::bail!(
            "the policy lists witnesses but no [guardrails] witness_key to check their votes with"
        );
    };
    let client = crate::clients::http::builder("witness")
        .timeout(timeout)
        .build()?;
    Ok(urls
        .iter()
        .map(|url| {
            let (client, url, events) = (client.clone(), url.clone(), events.clone());
            let (key, service) = (key.clone(), service.to_string());
            let ask_now = ask_now.clone();
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(every);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        _ = ask_now.notified() => {}
                    }
                    let result = ask(&client, &url, &service, &key).await;
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

    fn sees(down: &[RegionName], age: Duration) -> Result<Answer, String> {
        Ok(Answer {
            regions: [east(), RegionName::new("us-west-2")]
                .into_iter()
                .map(|r| RegionAnswer {
                    down: down.contains(&r),
                    region: r,
                    age: Some(age),
                })
                .collect(),
        })
    }

    #[test]
    fn only_fresh_answers_that_see_the_region_down_vote() {
        let urls = vec!["http://a".to_string(), "http://b".to_string()];
        let mut w = Witnesses::new(&urls, Duration::from_secs(3));
        let t0 = Instant::now() + Duration::from_secs(60);
        assert_eq!(w.agreeing(&east(), t0), 0, "nobody has answered yet");
        w.record(
            Poll {
                url: "http://a".into(),
                result: sees(&[east()], Duration::ZERO),
            },
            t0,
        );
        w.record(
            Poll {
                url: "http://b".into(),
                result: sees(&[], Duration::ZERO),
            },
            t0,
        );
        assert_eq!(w.agreeing(&east(), t0), 1);
        assert_eq!(w.agreeing(&RegionName::new("us-west-2"), t0), 0);
        // Too old: no vote, however it looked then.
        assert_eq!(w.agreeing(&east(), t0 + Duration::from_secs(4)), 0);
    }

    #[test]
    fn an_answer_that_arrives_now_about_an_old_observation_does_not_vote() {
        let urls = vec!["http://a".to_string()];
        let mut w = Witnesses::new(&urls, Duration::from_secs(3));
        let t0 = Instant::now() + Duration::from_secs(60);
        w.record(
            Poll {
                url: "http://a".into(),
                result: sees(&[east()], Duration::from_secs(10)),
            },
            t0,
        );
        assert_eq!(w.agreeing(&east(), t0), 0);
        assert!(!w.views(t0)[0].fresh);
    }

    #[test]
    fn a_failed_poll_keeps_the_last_answer_until_it_goes_stale() {
        let urls = vec!["http://a".to_string()];
        let mut w = Witnesses::new(&urls, Duration::from_secs(3));
        let t0 = Instant::now() + Duration::from_secs(60);
        w.record(
            Poll {
                url: "http://a".into(),
                result: sees(&[east()], Duration::ZERO),
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
