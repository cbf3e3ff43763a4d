//! Alerts: what the controller wants a human to know (a detection it may not act on, a
//! hold, a failed run, an old primary left unfenced) goes to the policy's channels marked
//! `alerts = true`, besides the log. Sending never blocks the control loop; a command
//! that exits soon after (the standalone CLI) waits for what it sent with `flush`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tracing::{error, warn};

use crate::action::notify::Via;
use crate::clients::aws::AwsClients;
use crate::core::controller::Decision;
use crate::core::model::Policy;

/// Where the driver's alerts go. The daemon and the CLI use `Alerter`; tests record.
pub trait Alerts: Send + Sync {
    /// Sends in the background; never blocks.
    fn send(&self, d: &Decision);
}

pub struct Alerter {
    service: String,
    channels: Arc<Vec<(String, Via)>>,
    pending: Mutex<JoinSet<()>>,
}

impl Alerter {
    /// The policy's alert channels. A channel that cannot be set up is reported and left
    /// out; the others still get alerts.
    pub fn new(policy: &Policy, aws: Option<&AwsClients>) -> Alerter {
        let http = crate::probe::shared_client("probe");
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
            pending: Mutex::new(JoinSet::new()),
        }
    }

    /// Waits up to `within` for the alerts still being sent.
    pub async fn flush(&self, within: Duration) {
        let mut set = match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return,
        };
        let all = async { while set.join_next().await.is_some() {} };
        if tokio::time::timeout(within, all).await.is_err() {
            warn!("some alerts were still being sent when lifeboat stopped waiting for them");
        }
    }
}

impl Alerts for Alerter {
    fn send(&self, d: &Decision) {
        let detail = d.reason.to_string();
        warn!(
            alert = true,
            reason = d.reason.label(),
            "{}: {detail}",
            d.summary
        );
        if self.channels.is_empty() {
            return;
        }
        let subject = format!("lifeboat: {}: {}", self.service, d.summary);
        let mut text = format!("[{}] {}: {detail}", self.service, d.summary);
        if let Some(n) = d.reason.next_step() {
            text.push_str(&format!("\nnext: {n}"));
        }
        let channels = self.channels.clone();
        let task = async move {
            for (name, via) in channels.iter() {
                if let Err(e) = via.send(name, &subject, &text).await {
                    error!("an alert did not reach channel `{name}`: {e}");
                }
            }
        };
        if let Ok(mut p) = self.pending.lock() {
            // Finished sends are reaped as new ones come, so the set stays small.
            while p.try_join_next().is_some() {}
            p.spawn(task);
        }
    }
}
