//! `notify`: tell people what the run is doing, by SNS (Publish) or a webhook (a JSON
//! POST whose `text` Slack and its look-alikes display). The message says in plain
//! words which service moves where and why, with the run id, the epoch and the
//! timeline so far.
//!
//! A notification never blocks a failover: the policy forces `continue_on_error` on
//! notify steps, and retryable failures (throttling, 5xx, timeouts) go back to the
//! executor, which retries them until the step's deadline and then reports the step
//! failed while the run goes on.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::aws_error;
use crate::clients::aws::AwsClients;
use crate::clients::secret::{self, Secret};
use crate::core::model::{Channel, ChannelKind, Direction, RegionName};
use crate::core::readiness::Readiness;
use crate::core::step::TimelineEntry;
use crate::runbook::{Applied, Check, ReadyCtx, Step, StepCtx, StepError, Verify};

/// What a notification says, as data (rendered to text by `render_text`, and sent
/// whole as the webhook's `lifeboat` object).
#[derive(Clone, Debug, Serialize)]
pub struct Message {
    pub service: String,
    pub direction: Direction,
    pub from: RegionName,
    pub to: RegionName,
    pub run_id: String,
    pub epoch: u64,
    pub reason: String,
    /// The step's own words from the policy (`message = "…"`), if any.
    pub note: Option<String>,
    pub timeline: Vec<TimelineEntry>,
}

impl Message {
    pub fn new(ctx: &StepCtx, reason: &str, note: Option<&str>) -> Message {
        Message {
            service: ctx.service.clone(),
            direction: ctx.direction,
            from: ctx.from.clone(),
            to: ctx.to.clone(),
            run_id: ctx.run_id.0.clone(),
            epoch: ctx.epoch.0,
            reason: reason.to_string(),
            note: note.map(str::to_string),
            timeline: ctx.timeline.clone(),
        }
    }

    /// A subject line for SNS (at most 100 characters, which SNS requires).
    pub fn subject(&self) -> String {
        let s = format!(
            "lifeboat: {} of {} from {} to {}",
            self.direction, self.service, self.from, self.to
        );
        s.chars().take(100).collect()
    }
}

/// The message in plain words, one fact per line, the timeline last.
pub fn render_text(m: &Message) -> String {
    let mut out = format!(
        "lifeboat is running a {} of `{}` from {} to {} (run {}, epoch {}).\nWhy: {}",
        m.direction, m.service, m.from, m.to, m.run_id, m.epoch, m.reason
    );
    if let Some(note) = &m.note {
        out.push_str(&format!("\n{note}"));
    }
    if !m.timeline.is_empty() {
        out.push_str("\nSo far:");
        for e in &m.timeline {
            let at = e.at.to_string();
            // HH:MM:SS of the RFC 3339 stamp; the JSON carries the full one.
            let clock = at.get(11..19).unwrap_or(&at);
            match &e.step {
                Some(step) => out.push_str(&format!("\n• {clock} {step}: {}", e.what)),
                None => out.push_str(&format!("\n• {clock} {}", e.what)),
            }
        }
    }
    out
}

/// The webhook body: Slack-compatible `text`, and the facts as data for machines.
#[derive(Serialize)]
struct WebhookBody<'a> {
    text: String,
    lifeboat: &'a Message,
}

/// The HTTP client webhooks share: bounded so a hung receiver cannot hold the step.
pub fn http_client() -> reqwest::Client {
    // One per process: each client carries its own TLS roots and session cache (about
    // 80 KB), which a fleet of 200 services would otherwise hold 200 times.
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            crate::clients::http::build(
                crate::clients::http::builder("notify").timeout(Duration::from_secs(10)),
            )
        })
        .clone()
}

/// How a channel is reached.
pub enum Via {
    Sns {
        client: aws_sdk_sns::Client,
        topic_arn: String,
    },
    /// The URL is a secret (Slack's carries a token): it is never printed.
    Webhook {
        client: reqwest::Client,
        url: Secret,
    },
}

impl Via {
    /// How to reach a policy channel: its SNS topic (in the topic's region) or its
    /// webhook (the URL read from its secret reference now, kept redacted).
    ///
    /// Errors: an SNS channel without AWS configuration; an unreadable webhook secret.
    pub fn for_channel(
        c: &Channel,
        aws: Option<&AwsClients>,
        http: &reqwest::Client,
    ) -> Result<Via, String> {
        Ok(match &c.kind {
            ChannelKind::Sns { topic_arn } => {
                let aws = aws.ok_or_else(|| {
                    format!(
                        "channel `{}` is an SNS topic, but no AWS configuration is loaded",
                        c.name
                    )
                })?;
                Via::Sns {
                    client: aws.sns(&sns_region(topic_arn)),
                    topic_arn: topic_arn.clone(),
                }
            }
            ChannelKind::Webhook { url } => {
                let url = secret::resolve(url)
                    .map_err(|e| format!("the webhook URL of channel `{}`: {e}", c.name))?;
                Via::Webhook {
                    client: http.clone(),
                    url,
                }
            }
        })
    }

    /// Sends a plain alert (not tied to a run step). Errors name the channel, never the URL.
    pub async fn send(&self, channel: &str, subject: &str, text: &str) -> Result<(), String> {
        match self {
            Via::Sns { client, topic_arn } => client
                .publish()
                .topic_arn(topic_arn)
                .subject(subject)
                .message(text)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    format!(
                        "SNS topic of channel `{channel}`: {}",
                        crate::clients::aws::describe_error(&e)
                    )
                }),
            Via::Webhook { client, url } => {
                let resp = client
                    .post(url.expose())
                    .json(&serde_json::json!({"text": text}))
                    .send()
                    .await
                    .map_err(|_| {
                        format!("the webhook of channel `{channel}` could not be reached")
                    })?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(format!(
                        "the webhook of channel `{channel}` answered HTTP {}",
                        resp.status().as_u16()
                    ))
                }
            }
        }
    }
}

/// The region of an SNS topic, from its ARN (`arn:aws:sns:REGION:ACCOUNT:NAME`); topics
/// must be published to in their own region.
fn sns_region(topic_arn: &str) -> String {
    topic_arn
        .split(':')
        .nth(3)
        .filter(|r| !r.is_empty())
        .unwrap_or("us-east-1")
        .to_string()
}

/// Sends one notification.
///
/// Guarantees: one Publish or POST per `apply`; no secret in any message.
/// Assumptions: a resumed run may notify twice (there is no way to ask a channel what
/// it received); twice is better than never.
/// Errors: retryable for throttling, 5xx and transport failures; fatal for a refused
/// request (denied, unknown topic, a 4xx from the webhook).
pub struct Notify {
    pub(super) channel: String,
    pub(super) via: Via,
    pub(super) note: Option<String>,
    pub(super) reason: String,
}

impl Notify {
    pub fn new(channel: &str, via: Via, note: Option<String>, reason: String) -> Notify {
        Notify {
            channel: channel.to_string(),
            via,
            note,
            reason,
        }
    }
}

#[async_trait]
impl Step for Notify {
    async fn readiness(&self, ctx: &ReadyCtx) -> Readiness {
        self.ready(ctx).await
    }

    async fn check(&self, _ctx: &StepCtx) -> Result<Check, StepError> {
        Ok(Check::NotDone(format!(
            "notifications are sent every time (channel `{}`)",
            self.channel
        )))
    }

    async fn apply(&self, ctx: &StepCtx) -> Result<Applied, StepError> {
        let m = Message::new(ctx, &self.reason, self.note.as_deref());
        let text = render_text(&m);
        match &self.via {
            Via::Sns { client, topic_arn } => {
                let subject = format!("SNS topic `{topic_arn}` (channel `{}`)", self.channel);
                let out = client
                    .publish()
                    .topic_arn(topic_arn)
                    .subject(m.subject())
                    .message(&text)
                    .send()
                    .await
                    .map_err(|e| {
                        aws_error(
                            "sns:Publish",
                            &subject,
                            &format!("[channels.{}]", self.channel),
                            &e,
                        )
                    })?;
                Ok(Applied::new(format!(
                    "published to {subject}: message {}",
                    out.message_id().unwrap_or("?")
                )))
            }
            Via::Webhook { client, url } => {
                let what = format!("the webhook of channel `{}`", self.channel);
                let body = WebhookBody { text, lifeboat: &m };
                let resp = client
                    .post(url.expose())
                    .json(&body)
                    .send()
                    .await
                    // Without the URL: reqwest's errors quote it, and it is a secret.
                    .map_err(|e| {
                        let kind = if e.is_timeout() {
                            "timed out"
                        } else if e.is_connect() {
                            "could not connect"
                        } else {
                            "request failed"
                        };
                        StepError::retryable(format!("POST to {what}: {kind}"))
                    })?;
                let status = resp.status();
                if status.is_redirection() {
                    // Only the origin: a redirect of a secret URL may carry the secret.
                    let to = crate::clients::http::location(&resp)
                        .and_then(|l| reqwest::Url::parse(&l).ok())
                        .map(|u| u.origin().ascii_serialization())
                        .unwrap_or_else(|| "nowhere".to_string());
                    return Err(StepError::fatal(format!(
                        "POST to {what} was redirected (HTTP {} to {to}/…); lifeboat follows no redirects: put the final URL in the channel's secret",
                        status.as_u16()
                    )));
                }
                if status.is_success() {
                    Ok(Applied::new(format!(
                        "posted to {what}: HTTP {}",
                        status.as_u16()
                    )))
                } else if status.is_server_error() || status.as_u16() == 429 {
                    Err(StepError::retryable(format!(
                        "POST to {what}: HTTP {}",
                        status.as_u16()
                    )))
                } else {
                    Err(StepError::fatal(format!(
                        "POST to {what} was refused: HTTP {}; check the webhook URL the channel's secret holds",
                        status.as_u16()
                    )))
                }
            }
        }
    }

    async fn verify(&self, _ctx: &StepCtx) -> Result<Verify, StepError> {
        Ok(Verify::Done(format!(
            "channel `{}` accepted the notification",
            self.channel
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::time::Ts;

    #[test]
    fn sns_topics_are_published_to_in_their_own_region() {
        assert_eq!(
            sns_region("arn:aws:sns:us-east-2:111122223333:checkout-dr"),
            "us-east-2"
        );
        assert_eq!(sns_region("not-an-arn"), "us-east-1");
    }

    #[test]
    fn the_text_says_what_moves_where_and_why_with_the_timeline() {
        let m = Message {
            service: "orders".into(),
            direction: Direction::Failover,
            from: RegionName::new("us-east-1"),
            to: RegionName::new("us-west-2"),
            run_id: "fo-1".into(),
            epoch: 3,
            reason: "primary region down: 3 failed rounds of db".into(),
            note: Some("Status page updated by hand.".into()),
            timeline: vec![
                TimelineEntry {
                    at: Ts::from_secs(1_795_437_296),
                    step: None,
                    what: "run started".into(),
                },
                TimelineEntry {
                    at: Ts::from_secs(1_795_437_300),
                    step: Some("promote".into()),
                    what: "verified: out of recovery".into(),
                },
            ],
        };
        expect_test::expect![[r#"
            lifeboat is running a failover of `orders` from us-east-1 to us-west-2 (run fo-1, epoch 3).
            Why: primary region down: 3 failed rounds of db
            Status page updated by hand.
            So far:
            • 12:34:56 run started
            • 12:35:00 promote: verified: out of recovery"#]]
        .assert_eq(&render_text(&m));
        assert_eq!(
            m.subject(),
            "lifeboat: failover of orders from us-east-1 to us-west-2"
        );
    }
}
