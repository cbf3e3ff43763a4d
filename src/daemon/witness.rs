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
    /// The serving region while this controller's own probes of it fail and the quorum
    /// is not met yet: the pollers then ask often, so a witness's "down" is counted
    /// within a fraction of a confirmation round of its confirming it. (The witness is
    /// not told: it samples on its own schedule, so a brief trouble that both share, a
    /// slow AWS API say, does not get confirmed by both at the same moment.)
    pub suspect: Suspect,
}

/// The region a controller suspects, shared with its witness pollers. A suspicion rushes
/// them for `window` from when it began: long enough for a witness to confirm an outage
/// at the confirmation interval, not for as long as a partition on the controller's side
/// keeps its own probes failing.
#[derive(Clone, Debug)]
pub struct Suspect {
    since: Arc<std::sync::Mutex<Option<(RegionName, Instant)>>>,
    window: Duration,
}

impl Default for Suspect {
    fn default() -> Suspect {
        Suspect::new(Duration::from_secs(5))
    }
}

impl Suspect {
    pub fn new(window: Duration) -> Suspect {
        Suspect {
            since: Arc::default(),
            window,
        }
    }

    /// The window for a policy: the confirmation rounds that take a region down, one
    /// more, and a probe timeout.
    pub fn window_for(policy: &crate::core::model::Policy) -> Duration {
        let d = &policy.detection;
        d.confirm_interval * (d.failure_threshold + 1) + d.timeout
    }

    /// The suspected region, while its window lasts.
    pub fn get(&self) -> Option<RegionName> {
        let s = self.since.lock().unwrap_or_else(|e| e.into_inner());
        s.as_ref()
            .filter(|(_, since)| since.elapsed() < self.window)
            .map(|(region, _)| region.clone())
    }

    /// Sets the suspicion (`None`: nothing suspected); true when it names a region it did
    /// not name before, which starts a new window.
    pub fn set(&self, region: Option<RegionName>) -> bool {
        let mut s = self.since.lock().unwrap_or_else(|e| e.into_inner());
        if s.as_ref().map(|(r, _)| r) == region.as_ref() {
            return false;
        }
        let newly = region.is_some();
        *s = region.map(|r| (r, Instant::now()));
        newly
    }
}

impl Witnesses {
    /// `fresh_for`: how old a witness's observation may be and still count.
    pub fn new(urls: &[String], fresh_for: Duration) -> Witnesses {
        Witnesses {
            seen: urls.iter().map(|u| (u.clone(), Seen::default())).collect(),
            fresh_for,
            ask_now: Arc::new(Notify::new()),
            suspect: Suspect::default(),
        }
    }

    /// How long a suspicion rushes the pollers (`Suspect::window_for`).
    pub fn suspicion_window(mut self, window: Duration) -> Witnesses {
        self.suspect = Suspect::new(window);
        self
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

/// How often the pollers ask while the controller suspects a region: ten times per
/// confirmation round (at most every 25 ms), so a witness's confirmation reaches the
/// quorum within a small fraction of one.
pub fn hurried(confirm_interval: Duration, every: Duration) -> Duration {
    let floor = Duration::from_millis(25);
    (confirm_interval / 10).clamp(floor, every.max(floor))
}

/// The witnesses' pollers: where they ask, how, and how often.
pub struct Pollers<'a> {
    pub urls: &'a [String],
    pub service: &'a str,
    pub key: Option<VoteKey>,
    /// The normal gap between two polls of one witness.
    pub every: Duration,
    /// The gap while `suspect` names a region.
    pub hurried: Duration,
    pub timeout: Duration,
    pub ask_now: &'a Arc<Notify>,
    pub suspect: &'a Suspect,
    pub events: &'a mpsc::Sender<Event>,
}

/// Polls every witness every `every` (every `hurried` while the controller suspects a
/// region), and at once when `ask_now` is notified; one task
/// each so a slow witness never delays another. Each answer (or failure) is sent as an
/// event. The tasks end with the loop.
pub fn spawn_pollers(p: Pollers<'_>) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let Pollers {
        urls,
        service,
        key,
        every,
        hurried,
        timeout,
        ask_now,
        suspect,
        events,
    } = p;
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
            let (ask_now, suspect) = (ask_now.clone(), suspect.clone());
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(every);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    let hurry = suspect.get().is_some();
                    tokio::select! {
                        _ = ticker.tick() => {}
                        _ = ask_now.notified() => {}
                        _ = tokio::time::sleep(hurried), if hurry => {}
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

    #[tokio::test(start_paused = true)]
    async fn a_suspicion_rushes_the_pollers_for_its_window_only() {
        let s = Suspect::new(Duration::from_secs(1));
        assert_eq!(s.get(), None);
        assert!(s.set(Some(east())), "a new suspicion");
        assert!(!s.set(Some(east())), "the same one, still going");
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(s.get(), Some(east()));
        // Still suspected a moment later, but no longer rushing the pollers.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!s.set(Some(east())));
        assert_eq!(s.get(), None);
        // Healthy again, then failing again: a new window.
        assert!(!s.set(None));
        assert!(s.set(Some(east())));
        assert_eq!(s.get(), Some(east()));
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
