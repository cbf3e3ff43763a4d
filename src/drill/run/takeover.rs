//! HA drills: waiting for a run to reach a step before a fault lands, and watching what
//! the controllers do once the acting one is hit (when it stops saying it leads, and when
//! another one leads instead).

use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::task::JoinHandle;

use super::daemon::Daemon;
use crate::core::controller::Leadership;
use crate::core::step::StepState;
use crate::daemon::client::Client;

/// Waits until the acting controller's unfinished run is in `step` (taken up, not yet
/// done).
pub async fn wait_in_step(daemon: &Daemon, step: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if let Some((n, _)) = daemon.leader().await
            && let Ok(runs) = n.api.runs().await
        {
            for r in runs.iter().filter(|r| !r.status.is_finished()) {
                if let Ok(d) = n.api.run(&r.run_id).await
                    && d.steps.iter().any(|s| {
                        s.name == step && matches!(s.state, StepState::Started | StepState::Applied)
                    })
                {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("no run reached step `{step}` within {}s", within.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// What the watch saw, in seconds from the fault.
#[derive(Debug, Default)]
pub struct Seen {
    /// The controller hit said it no longer leads (a stopped or dead one cannot say).
    pub victim_stopped: Option<f64>,
    /// Another controller said it leads: its name and when.
    pub new_leader: Option<(String, f64)>,
}

pub struct Watch {
    task: JoinHandle<Seen>,
}

impl Watch {
    pub async fn seen(self) -> Seen {
        self.task.await.unwrap_or_default()
    }
}

/// Polls every controller every 50 ms, from `from` for at most `max`, until the
/// controller `victim` no longer leads (or cannot answer) and another one leads.
pub fn follow(daemon: &Daemon, victim: &str, from: Instant, max: Duration) -> Watch {
    let nodes: Vec<(String, Client)> = daemon
        .controllers()
        .filter_map(|n| {
            Client::new(&n.api.url, n.pid, None)
                .ok()
                .map(|c| (n.name.clone(), c.with_timeout(Duration::from_millis(300))))
        })
        .collect();
    let victim = victim.to_string();
    let task = tokio::spawn(async move {
        let mut seen = Seen::default();
        let mut victim_silent = false;
        while from.elapsed() < max {
            for (name, api) in &nodes {
                let Ok(v) = api.status().await else {
                    victim_silent |= *name == victim;
                    continue;
                };
                let at = from.elapsed().as_secs_f64();
                let leads = matches!(v.leadership, Leadership::Leading { .. });
                if *name == victim {
                    if !leads && seen.victim_stopped.is_none() {
                        seen.victim_stopped = Some(at);
                    }
                } else if leads && seen.new_leader.is_none() {
                    seen.new_leader = Some((name.clone(), at));
                }
            }
            if seen.new_leader.is_some() && (seen.victim_stopped.is_some() || victim_silent) {
                break;
            }
            victim_silent = false;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen
    });
    Watch { task }
}
