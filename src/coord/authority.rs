//! The executor's [`Authority`] on etcd: before a side effect, the acting rule and this
//! epoch's intent record; after a step, its outcome, recorded once per step whatever the
//! epoch. A deposed or paused leader is refused by the fence at etcd's apply time.

use std::sync::Mutex;

use async_trait::async_trait;

use super::error::{CoordError, Expect};
use super::etcd::{Etcd, FencedWrite, Leadership};
use super::keys::ServiceKeys;
use super::records::{CountedVote, RunEnd, RunIntent, SharedState, StepDone, StepIntent};
use crate::core::ids::RunId;
use crate::core::plan::Plan;
use crate::core::time::Ts;
use crate::runbook::{Authority, AuthorityError, SharedOutcome};

/// Acts for one leadership (one service, one epoch).
pub struct EtcdAuthority {
    leadership: Leadership,
    node: String,
    /// The votes the decision counted: the run-intent txn requires each unchanged.
    votes: Mutex<Vec<(String, i64)>>,
}

impl EtcdAuthority {
    pub fn new(leadership: Leadership, node: &str) -> EtcdAuthority {
        EtcdAuthority {
            leadership,
            node: node.to_string(),
            votes: Mutex::default(),
        }
    }

    /// The votes an automatic decision counted; the next `begin` commits only if none
    /// of them changed since (a vote that flipped or expired refuses the run).
    pub fn counted(&self, votes: &[CountedVote]) {
        if let Ok(mut v) = self.votes.lock() {
            *v = votes
                .iter()
                .map(|c| (c.key.clone(), c.mod_revision))
                .collect();
        }
    }

    pub fn leadership(&self) -> &Leadership {
        &self.leadership
    }
}

/// What a new leader needs to finish its predecessor's run: the run as started, and
/// the steps whose outcome is recorded (plan position, record).
#[derive(Debug)]
pub struct Unfinished {
    pub intent: RunIntent,
    pub ended: Vec<(u32, StepDone)>,
}

impl Unfinished {
    /// The ended steps by name, with who ended them, for [`crate::runbook::Executor::adopt`].
    pub fn ended_steps(&self) -> Vec<(String, String)> {
        self.ended
            .iter()
            .filter(|(_, d)| d.outcome != "failed")
            .map(|(_, d)| {
                (
                    d.step.clone(),
                    format!(
                        "{} by {} at epoch {} before the takeover",
                        d.outcome, d.node, d.epoch
                    ),
                )
            })
            .collect()
    }
}

/// The service's current run, if its leader started one and did not end it.
pub async fn unfinished(
    etcd: &Etcd,
    service: &ServiceKeys,
) -> Result<Option<Unfinished>, CoordError> {
    let Some(current) = etcd.get(&service.run_current()).await? else {
        return Ok(None);
    };
    let intent: RunIntent = current.json()?;
    let prefix = service.run_prefix(&intent.run_id)?;
    let mut ended = Vec::new();
    for s in etcd.list(&format!("{prefix}step/")).await? {
        let Some(rest) = s.key.strip_prefix(&format!("{prefix}step/")) else {
            continue;
        };
        if let Some(seq) = rest.strip_suffix("/done")
            && let Ok(seq) = seq.parse::<u32>()
        {
            ended.push((seq, s.json::<StepDone>()?));
        }
    }
    ended.sort_by_key(|(seq, _)| *seq);
    Ok(Some(Unfinished { intent, ended }))
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn refused(e: CoordError) -> AuthorityError {
    match e {
        CoordError::Deposed { .. } => AuthorityError::Deposed(e.to_string()),
        other => AuthorityError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl Authority for EtcdAuthority {
    async fn begin(&self, plan: &Plan, started_by: &str, at: Ts) -> Result<(), AuthorityError> {
        let service = self.leadership.service();
        let intent = RunIntent {
            run_id: plan.run_id.0.clone(),
            epoch: self.leadership.epoch(),
            node: self.node.clone(),
            started_by: started_by.to_string(),
            started_at: Some(at),
            plan: plan.clone(),
        };
        let mut write = FencedWrite::append_once(service.run_current(), json(&intent));
        let votes = self
            .votes
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        for (key, rev) in &votes {
            write = write.expect(key.clone(), Expect::ModRevision(*rev));
        }
        match self.leadership.write(&write).await {
            Ok(_) => Ok(()),
            Err(CoordError::Conflict {
                key, same_value, ..
            }) => {
                if same_value {
                    return Ok(());
                }
                if key == service.run_current() {
                    // Nothing of this run was recorded, so nothing acts; a leader adopts
                    // the current run as soon as it has read it.
                    Err(AuthorityError::NotRecorded(
                        "another run is current in etcd; it is finished first".to_string(),
                    ))
                } else {
                    Err(AuthorityError::NotRecorded(format!(
                        "the vote at {key} changed after it was counted; the decision is taken again"
                    )))
                }
            }
            Err(e) => Err(refused(e)),
        }
    }

    async fn end(&self, run: &RunId, status: &str) -> Result<(), AuthorityError> {
        let service = self.leadership.service();
        let current = self
            .leadership
            .etcd()
            .get(&service.run_current())
            .await
            .map_err(refused)?;
        let Some(current) = current else {
            return Ok(());
        };
        let intent: RunIntent = current
            .json()
            .map_err(|e| AuthorityError::Unavailable(e.to_string()))?;
        if intent.run_id != run.0 {
            return Ok(());
        }
        let end_key = format!(
            "{}end",
            service
                .run_prefix(&run.0)
                .map_err(|e| AuthorityError::Unavailable(e.to_string()))?
        );
        let record = RunEnd {
            status: status.to_string(),
            epoch: self.leadership.epoch(),
            node: self.node.clone(),
        };
        let mut write = FencedWrite::new()
            .expect(
                service.run_current(),
                Expect::ModRevision(current.mod_revision),
            )
            .delete(service.run_current())
            .put(end_key, json(&record));
        if status == "completed" {
            // The serving region moves with the run's end, in the same txn: whoever
            // leads next starts from it.
            let state = SharedState {
                active: intent.plan.to.clone(),
                run_id: run.0.clone(),
                epoch: self.leadership.epoch(),
            };
            write = write.put(service.state(), json(&state));
        }
        match self.leadership.write(&write).await {
            Ok(_) => Ok(()),
            Err(e) => Err(refused(e)),
        }
    }

    fn may_act(&self) -> Result<(), String> {
        if self.leadership.deposed() {
            return Err(format!(
                "epoch {} was deposed by a newer leader",
                self.leadership.epoch()
            ));
        }
        if !self.leadership.acting() {
            return Err(format!(
                "epoch {}'s etcd lease is not confirmed recently enough to act (the acting rule)",
                self.leadership.epoch()
            ));
        }
        Ok(())
    }

    async fn intent(&self, run: &RunId, seq: u32, step: &str) -> Result<(), AuthorityError> {
        let epoch = self.leadership.epoch();
        let key = self
            .leadership
            .service()
            .step_intent(&run.0, seq, epoch)
            .map_err(|e| AuthorityError::Unavailable(e.to_string()))?;
        let record = StepIntent {
            step: step.to_string(),
            epoch,
            node: self.node.clone(),
        };
        match self
            .leadership
            .write(&FencedWrite::append_once(key, json(&record)))
            .await
        {
            Ok(_) => Ok(()),
            // A retried attempt of the same step in the same epoch: already recorded.
            Err(CoordError::Conflict {
                same_value: true, ..
            }) => Ok(()),
            Err(e) => Err(refused(e)),
        }
    }

    async fn done(
        &self,
        run: &RunId,
        seq: u32,
        step: &str,
        outcome: SharedOutcome,
    ) -> Result<(), AuthorityError> {
        let epoch = self.leadership.epoch();
        let key = self
            .leadership
            .service()
            .step_done(&run.0, seq)
            .map_err(|e| AuthorityError::Unavailable(e.to_string()))?;
        let (outcome, detail) = match outcome {
            SharedOutcome::Done => ("done", None),
            SharedOutcome::Adopted => ("adopted", None),
            SharedOutcome::Failed(why) => ("failed", Some(why)),
        };
        let record = StepDone {
            step: step.to_string(),
            epoch,
            node: self.node.clone(),
            outcome: outcome.to_string(),
            detail,
        };
        match self
            .leadership
            .write(&FencedWrite::append_once(key.clone(), json(&record)))
            .await
        {
            Ok(_) => Ok(()),
            // This epoch's own record, whose first answer was lost.
            Err(CoordError::Conflict {
                same_value: true, ..
            }) => Ok(()),
            Err(CoordError::Conflict { .. }) => Err(AuthorityError::Deposed(format!(
                "step {step}'s outcome is already recorded at {key} by another epoch; epoch {epoch} stops"
            ))),
            Err(e) => Err(refused(e)),
        }
    }
}

/// The authority of a controller that does not lead: it refuses every run and step, so
/// nothing acts while the coordination says someone else (or nobody) leads.
#[derive(Clone, Debug)]
pub struct NotLeading {
    pub leader: Option<String>,
}

impl NotLeading {
    fn why(&self) -> String {
        match &self.leader {
            Some(l) => format!("this controller does not lead the service; {l} does"),
            None => "this controller does not lead the service (nobody is elected yet, or its etcd lease is not confirmed)".to_string(),
        }
    }
}

#[async_trait]
impl Authority for NotLeading {
    async fn begin(&self, _plan: &Plan, _started_by: &str, _at: Ts) -> Result<(), AuthorityError> {
        Err(AuthorityError::Deposed(self.why()))
    }

    fn may_act(&self) -> Result<(), String> {
        Err(self.why())
    }

    async fn intent(&self, _run: &RunId, _seq: u32, _step: &str) -> Result<(), AuthorityError> {
        Err(AuthorityError::Deposed(self.why()))
    }

    async fn done(
        &self,
        _run: &RunId,
        _seq: u32,
        _step: &str,
        _outcome: SharedOutcome,
    ) -> Result<(), AuthorityError> {
        Err(AuthorityError::Deposed(self.why()))
    }
}
