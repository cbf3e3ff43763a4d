//! The daemon's readiness schedule: a round soon after start, then every
//! `[readiness] every`, and one at once when asked (`now`, which the event loop pokes on
//! SIGHUP), each handed to the event loop as `Event::Readiness`. A round is skipped while
//! a run is under way: the world is meant to be changing then, and the run itself
//! reports what fails.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tracing::{debug, info};

use super::engine::Event;
use super::status::StatusView;
use crate::clients::aws::AwsClients;
use crate::clock::WallClock;
use crate::core::model::Policy;
use crate::readiness::{self, Round};
use crate::runbook::StepFactory;

/// How long after start the first round waits at least: the probes' first rounds go
/// first.
const FIRST_AFTER: Duration = Duration::from_secs(2);

/// When the first round starts: after `FIRST_AFTER`, plus a random part of a quarter of
/// the period (at most 15 s), so controllers started together (a deployment, the HA
/// sandbox) do not check the same APIs at the same moment every period.
fn first_round(every: Duration) -> Duration {
    let spread = (every / 4).min(Duration::from_secs(15));
    let first = FIRST_AFTER + spread.mul_f64(fastrand::f64());
    first.min(every)
}

pub struct Schedule {
    pub policy: Arc<Policy>,
    pub factory: Arc<dyn StepFactory>,
    pub aws: Option<AwsClients>,
    /// Where the serving region and the current run are read from.
    pub status: Arc<RwLock<StatusView>>,
    pub events: mpsc::Sender<Event>,
    pub clock: WallClock,
    /// Notified to start a round at once (SIGHUP), whatever the schedule says.
    pub now: Arc<Notify>,
}

impl Schedule {
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let every = self.policy.readiness.every;
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + first_round(every), every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let asked = tokio::select! {
                    _ = tick.tick() => false,
                    _ = self.now.notified() => true,
                };
                let (serving, busy) = match self.status.read() {
                    Ok(v) => (v.active.clone(), v.current_run.is_some()),
                    Err(_) => continue,
                };
                if busy {
                    if asked {
                        info!("readiness round not started: a run is under way");
                    } else {
                        debug!("readiness round skipped: a run is under way");
                    }
                    continue;
                }
                if asked {
                    // The next scheduled round is a whole period after this one.
                    tick.reset();
                }
                let report = readiness::round(
                    Round {
                        policy: self.policy.clone(),
                        factory: self.factory.clone(),
                        aws: self.aws.clone(),
                        serving,
                    },
                    self.clock.now(),
                )
                .await;
                if self
                    .events
                    .send(Event::Readiness(Box::new(report)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        })
    }
}
