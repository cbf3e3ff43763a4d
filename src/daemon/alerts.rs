//! Alerts: what the controller wants a human to know (a detection it may not act on, a
//! hold, a failed run, an old primary left unfenced) goes to the policy's channels marked
//! `alerts = true`, besides the log. Sending never blocks the control loop.

use std::sync::Arc;

use tracing::{error, warn};

use crate::action::notify::Via;
use crate::clients::aws::AwsClients;
use crate::core::model::Policy;

pub struct Alerter {
    service: String,
    channels: Arc<Vec<(String, Via)>>,
}

impl Alerter {
    /// The policy's alert channels. A channel that cannot be set up is reported and left
    /// out; the others still get alerts.
    pub fn new(policy: &Policy, aws: Option<&AwsClients>) -> Alerter {
        let http = crate::probe::http_client();
        let mut channels = Vec::new();
        for c in policy.channels.iter().filter(|c| c.alerts) {
            match Via::for_channel(c, aws, &http) {
                Ok(v) => channels.push((c.name.clone(), v)),
                Err(e) => error!("alerts will not reach channel `{}`: {e}", c.name),
            }
        }
        Alerter {
            service: policy.service.clone(),
            channels: Arc::new(channels),
        }
    }

    /// Logs the alert and sends it to every alert channel in the background.
    pub fn send(&self, summary: &str, detail: &str, next: Option<&str>) {
        warn!(alert = true, "{summary}: {detail}");
        if self.channels.is_empty() {
            return;
        }
        let subject = format!("lifeboat: {}: {summary}", self.service);
        let mut text = format!("[{}] {summary}: {detail}", self.service);
        if let Some(n) = next {
            text.push_str(&format!("\nnext: {n}"));
        }
        let channels = self.channels.clone();
        tokio::spawn(async move {
            for (name, via) in channels.iter() {
                if let Err(e) = via.send(name, &subject, &text).await {
                    error!("an alert did not reach channel `{name}`: {e}");
                }
            }
        });
    }
}
