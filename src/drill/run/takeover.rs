//! HA drills: waiting for a run to reach a step before a fault lands, watching what the
//! controllers do once the acting one is hit (when it stops saying it leads, and when
//! another one leads instead), and checking that against what the drill expects.

use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::task::JoinHandle;

use super::daemon::Daemon;
use crate::core::controller::Leadership;
use crate::core::step::StepState;
use crate::daemon::client::Client;
use crate::drill::report::{Assertion, Report};

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

/// The epoch of the controller that leads now, if one does.
pub async fn leading_epoch(daemon: &Daemon) -> Option<u64> {
    match daemon.leader().await?.1.leadership {
        Leadership::Leading { epoch } => Some(epoch.0),
        _ => None,
    }
}

/// What an HA drill expects of the controllers: another one takes over from the one hit
/// (and how fast), the one hit stops acting in time, or the same one leads throughout.
pub async fn checks(
    e: &crate::drill::scenario::Expect,
    daemon: &Daemon,
    report: &mut Report,
    seen: Option<Seen>,
    epoch_before: Option<u64>,
) {
    let seen = seen.unwrap_or_default();
    report.figures.handover = seen.new_leader.as_ref().map(|(_, t)| *t);
    report.figures.stopped_acting = seen.victim_stopped;
    match e.handover {
        Some(true) => report.checks.push(Assertion {
            what: "another controller takes over".into(),
            passed: seen.new_leader.is_some(),
            detail: match &seen.new_leader {
                Some((name, t)) => format!("{name} leads {t:.2}s after the fault"),
                None => "no other controller said it leads within 60s".into(),
            },
        }),
        Some(false) => {
            let after = leading_epoch(daemon).await;
            report.checks.push(Assertion {
                what: "no handover: the same controller leads throughout".into(),
                passed: epoch_before.is_some() && after == epoch_before,
                detail: format!(
                    "leader's epoch before the faults {}, after {}",
                    epoch_before
                        .map(|e| e.to_string())
                        .unwrap_or("(none)".into()),
                    after.map(|e| e.to_string()).unwrap_or("(none)".into())
                ),
            });
        }
        None => {}
    }
    if let Some(within) = e.stops_acting_within {
        report.checks.push(Assertion {
            what: format!(
                "the controller hit stops acting within {}s",
                within.as_secs_f64()
            ),
            passed: seen
                .victim_stopped
                .is_some_and(|t| t <= within.as_secs_f64()),
            detail: match seen.victim_stopped {
                Some(t) => format!("it said it no longer leads {t:.2}s after the fault"),
                None => "it never said it no longer leads".into(),
            },
        });
    }
}
