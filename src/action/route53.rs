//! `route53_switch`: send a record's traffic to the step's region, in one of three
//! styles — flip a pre-created failover record pair by (un)inverting the PRIMARY
//! record's health check (no record is edited: the data-plane way), move weighted
//! records to 100/0, or UPSERT a simple record's value.
//!
//! The record changes are computed as data (`record_changes`) from the live record
//! sets and the goal, so `check` and `apply` share one definition of "in place".

use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet,
    ResourceRecordSetFailover, RrType,
};

use super::{aws_error, target_section};
use crate::core::model::{DnsRecord, Route53Endpoint};
use crate::runbook::{Applied, Check, Step, StepCtx, StepError, Verify};

/// Moves a record's traffic to the step's region.
///
/// Guarantees: `failover_pair` only ever calls UpdateHealthCheck, passing the version it
/// read (a concurrent edit makes the call fail and be retried, never overwritten);
/// `weighted` and `simple` only UPSERT the target's record name and type, in one
/// change batch, copying every other field of the live records.
/// Assumptions: `failover_pair`'s health check is a dedicated switch (the Terraform
/// module's CALCULATED check, healthy unless inverted), not one that measures the
/// primary: inverting a real check of a dead primary would report it healthy.
/// Errors: fatal when the zone, record or health check does not exist or the call is
/// denied; retryable on throttling and version conflicts.
pub struct Switch {
    client: aws_sdk_route53::Client,
    goal: Route53Endpoint,
    /// The set identifiers of the other regions' records (`weighted`).
    others: Vec<String>,
    what: String,
    section: String,
    /// The change `apply` submitted, which `verify` waits for (weighted, simple).
    change: Mutex<Option<String>>,
}

impl Switch {
    pub fn new(
        client: aws_sdk_route53::Client,
        goal: Route53Endpoint,
        others: Vec<String>,
        target: &str,
    ) -> Switch {
        let section = target_section(target);
        Switch {
            what: format!(
                "{} {} in hosted zone {}",
                goal.record_name, goal.record_type, goal.zone_id
            ),
            client,
            goal,
            others,
            section,
            change: Mutex::new(None),
        }
    }

    /// The live record sets of the target's name and type.
    async fn records(&self) -> Result<Vec<ResourceRecordSet>, StepError> {
        let name = normalize(&self.goal.record_name);
        let rtype = RrType::from(self.goal.record_type.as_str());
        let mut out = Vec::new();
        let mut start: Option<(String, RrType)> = Some((name.clone(), rtype.clone()));
        while let Some((n, t)) = start.take() {
            let page = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(&self.goal.zone_id)
                .start_record_name(n)
                .start_record_type(t)
                .send()
                .await
                .map_err(|e| {
                    aws_error(
                        "route53:ListResourceRecordSets",
                        &format!("hosted zone `{}`", self.goal.zone_id),
                        &self.section,
                        &e,
                    )
                })?;
            let mut past = false;
            for r in page.resource_record_sets() {
                if normalize(&r.name) == name && r.r#type == rtype {
                    out.push(r.clone());
                } else if !out.is_empty() {
                    past = true;
                }
            }
            // Records come sorted by name and type: stop once past ours.
            if page.is_truncated()
                && !past
                && let (Some(n), Some(t)) = (page.next_record_name(), page.next_record_type())
                && normalize(n) == name
                && *t == rtype
            {
                start = Some((n.to_string(), t.clone()));
            }
        }
        Ok(out)
    }

    /// `failover_pair`: the switch's health check and whether it must be inverted.
    async fn pair_goal(
        &self,
        set_id: &str,
        health_check_id: Option<&str>,
    ) -> Result<(String, bool, String), StepError> {
        let records = self.records().await?;
        let mine = records
            .iter()
            .find(|r| r.set_identifier() == Some(set_id))
            .ok_or_else(|| {
                StepError::fatal(format!(
                    "{} has no record with set identifier `{set_id}`: create the failover record pair (terraform/route53.tf) or fix {}",
                    self.what, self.section
                ))
            })?;
        let invert = match mine.failover() {
            Some(ResourceRecordSetFailover::Secondary) => true,
            Some(ResourceRecordSetFailover::Primary) => false,
            _ => {
                return Err(StepError::fatal(format!(
                    "record `{set_id}` of {} is not part of a failover pair (no PRIMARY/SECONDARY): use style `weighted` or `simple` in {}",
                    self.what, self.section
                )));
            }
        };
        let hc = match health_check_id {
            Some(id) => id.to_string(),
            None => records
                .iter()
                .find(|r| r.failover() == Some(&ResourceRecordSetFailover::Primary))
                .and_then(|r| r.health_check_id().map(str::to_string))
                .ok_or_else(|| {
                    StepError::fatal(format!(
                        "the PRIMARY record of {} has no health check to flip: attach the switch health check or set health_check_id in {}",
                        self.what, self.section
                    ))
                })?,
        };
        let role = if invert { "SECONDARY" } else { "PRIMARY" };
        Ok((hc, invert, format!("{role} record `{set_id}`")))
    }

    /// The health check's inverted flag and version.
    async fn health_check(&self, id: &str) -> Result<(bool, i64), StepError> {
        let subject = format!("Route 53 health check `{id}`");
        let out = self
            .client
            .get_health_check()
            .health_check_id(id)
            .send()
            .await
            .map_err(|e| aws_error("route53:GetHealthCheck", &subject, &self.section, &e))?;
        let hc = out.health_check().ok_or_else(|| {
            StepError::fatal(format!(
                "{subject} does not exist: check {} in the policy",
                self.section
            ))
        })?;
        let inverted = hc
            .health_check_config()
            .and_then(|c| c.inverted())
            .unwrap_or(false);
        Ok((inverted, hc.health_check_version()))
    }

    /// `weighted`, `simple`: the changes still needed.
    async fn pending_changes(&self) -> Result<Vec<Change>, StepError> {
        let live = self.records().await?;
        record_changes(&self.goal, &self.others, &live)
            .map_err(|m| StepError::fatal(format!("{}: {m}: check {}", self.what, self.section)))
    }

    /// `failover_pair`: this region's set identifier and the configured health check.
    fn pair(&self) -> Option<(&str, Option<&str>)> {
        match &self.goal.record {
            DnsRecord::FailoverPair {
                set_identifier,
                health_check_id,
            } => Some((set_identifier, health_check_id.as_deref())),
            _ => None,
        }
    }

    fn describe_pair(&self, hc: &str, invert: bool, record: &str) -> String {
        let state = if invert { "inverted" } else { "not inverted" };
        format!(
            "health check `{hc}` is {state}, so Route 53 answers {} with the {record}",
            self.goal.record_name
        )
    }
}

/// Route 53 returns names fully qualified and lower-cased.
fn normalize(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n.ends_with('.') { n } else { format!("{n}.") }
}

fn same_value(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The UPSERTs that bring the live records to the goal: for `weighted`, weight 100 on
/// the goal's set and 0 on the other regions' sets (every other field copied from the
/// live record); for `simple`, the goal's value and TTL. Empty when in place.
pub(crate) fn record_changes(
    goal: &Route53Endpoint,
    others: &[String],
    live: &[ResourceRecordSet],
) -> Result<Vec<Change>, String> {
    let upsert = |r: ResourceRecordSet| {
        Change::builder()
            .action(ChangeAction::Upsert)
            .resource_record_set(r)
            .build()
            .map_err(|e| e.to_string())
    };
    match &goal.record {
        DnsRecord::FailoverPair { .. } => Ok(Vec::new()),
        DnsRecord::Weighted {
            set_identifier: goal_id,
        } => {
            let find = |id: &str| live.iter().find(|r| r.set_identifier() == Some(id));
            let mine = find(goal_id)
                .ok_or_else(|| format!("no weighted record with set identifier `{goal_id}`"))?;
            let mut wanted = vec![(mine, 100)];
            for id in others {
                // A region without a live record has nothing to take traffic from.
                if let Some(r) = find(id) {
                    wanted.push((r, 0));
                }
            }
            wanted
                .into_iter()
                .filter(|(r, w)| r.weight() != Some(*w))
                .map(|(r, w)| {
                    let mut r = r.clone();
                    r.weight = Some(w);
                    upsert(r)
                })
                .collect()
        }
        DnsRecord::Simple { value } => {
            let current = live.iter().find(|r| r.set_identifier().is_none());
            let in_place = current.is_some_and(|r| {
                let values = r.resource_records();
                values.len() == 1
                    && same_value(values[0].value(), value)
                    && r.ttl() == Some(i64::from(goal.ttl))
            });
            if in_place {
                return Ok(Vec::new());
            }
            let record = ResourceRecordSet::builder()
                .name(&goal.record_name)
                .r#type(RrType::from(goal.record_type.as_str()))
                .ttl(i64::from(goal.ttl))
                .resource_records(
                    ResourceRecord::builder()
                        .value(value)
                        .build()
                        .map_err(|e| e.to_string())?,
                )
                .build()
                .map_err(|e| e.to_string())?;
            Ok(vec![upsert(record)?])
        }
    }
}

#[async_trait]
impl Step for Switch {
    async fn check(&self, _ctx: &StepCtx) -> Result<Check, StepError> {
        if let Some((set_id, hc)) = self.pair() {
            let (hc, invert, record) = self.pair_goal(set_id, hc).await?;
            let (inverted, _) = self.health_check(&hc).await?;
            let now = self.describe_pair(&hc, inverted, &record);
            return Ok(if inverted == invert {
                Check::Done(now)
            } else {
                Check::NotDone(format!(
                    "health check `{hc}` is {}inverted; the {record} needs it {}inverted",
                    if inverted { "" } else { "not " },
                    if invert { "" } else { "not " }
                ))
            });
        }
        let changes = self.pending_changes().await?;
        Ok(if changes.is_empty() {
            Check::Done(format!("{} already sends traffic to the goal", self.what))
        } else {
            Check::NotDone(format!(
                "{} needs {} record change(s)",
                self.what,
                changes.len()
            ))
        })
    }

    async fn apply(&self, _ctx: &StepCtx) -> Result<Applied, StepError> {
        if let Some((set_id, hc)) = self.pair() {
            let (hc, invert, record) = self.pair_goal(set_id, hc).await?;
            let (_, version) = self.health_check(&hc).await?;
            let subject = format!("Route 53 health check `{hc}`");
            self.client
                .update_health_check()
                .health_check_id(&hc)
                .health_check_version(version)
                .inverted(invert)
                .send()
                .await
                .map_err(|e| aws_error("route53:UpdateHealthCheck", &subject, &self.section, &e))?;
            return Ok(Applied::new(format!(
                "UpdateHealthCheck accepted: {}",
                self.describe_pair(&hc, invert, &record)
            )));
        }
        let changes = self.pending_changes().await?;
        if changes.is_empty() {
            return Ok(Applied::new(format!("{} needed no change", self.what)));
        }
        let n = changes.len();
        let batch = ChangeBatch::builder()
            .comment("lifeboat route53_switch")
            .set_changes(Some(changes))
            .build()
            .map_err(|e| StepError::fatal(format!("build the change batch: {e}")))?;
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(&self.goal.zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    "route53:ChangeResourceRecordSets",
                    &self.what,
                    &self.section,
                    &e,
                )
            })?;
        let id = out.change_info().map(|c| c.id().to_string());
        if let (Ok(mut slot), Some(id)) = (self.change.lock(), id.clone()) {
            *slot = Some(id);
        }
        Ok(Applied::new(format!(
            "ChangeResourceRecordSets accepted for {}: {n} UPSERT(s), change {}",
            self.what,
            id.unwrap_or_default()
        )))
    }

    async fn verify(&self, _ctx: &StepCtx) -> Result<Verify, StepError> {
        if let Some((set_id, hc)) = self.pair() {
            // UpdateHealthCheck returns no change id to wait for: the flag itself is
            // the observation, and Route 53 acts on it at its next evaluation.
            let (hc, invert, record) = self.pair_goal(set_id, hc).await?;
            let (inverted, _) = self.health_check(&hc).await?;
            let now = self.describe_pair(&hc, inverted, &record);
            return Ok(if inverted == invert {
                Verify::Done(now)
            } else {
                Verify::NotYet(now)
            });
        }
        let pending = self.change.lock().ok().and_then(|c| c.clone());
        let Some(id) = pending else {
            // Nothing submitted by this instance (resumed, or nothing was needed).
            let changes = self.pending_changes().await?;
            return Ok(if changes.is_empty() {
                Verify::Done(format!("{} sends traffic to the goal", self.what))
            } else {
                Verify::NotYet(format!(
                    "{} still needs {} change(s)",
                    self.what,
                    changes.len()
                ))
            });
        };
        let out = self.client.get_change().id(&id).send().await.map_err(|e| {
            aws_error(
                "route53:GetChange",
                &format!("Route 53 change `{id}`"),
                &self.section,
                &e,
            )
        })?;
        let status = out.change_info().map(|c| c.status().clone());
        Ok(match status {
            Some(ChangeStatus::Insync) => {
                Verify::Done(format!("change {id} to {} is INSYNC", self.what))
            }
            other => Verify::NotYet(format!(
                "change {id} to {} is {}",
                self.what,
                other.map(|s| s.as_str().to_string()).unwrap_or_default()
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(record: DnsRecord) -> Route53Endpoint {
        Route53Endpoint {
            zone_id: "Z1".into(),
            record_name: "api.example.com.".into(),
            record_type: "CNAME".into(),
            ttl: 60,
            record,
        }
    }

    fn weighted_goal(set: &str) -> Route53Endpoint {
        ep(DnsRecord::Weighted {
            set_identifier: set.into(),
        })
    }

    fn weighted(set: &str, weight: i64, value: &str) -> ResourceRecordSet {
        ResourceRecordSet::builder()
            .name("api.example.com.")
            .r#type(RrType::Cname)
            .set_identifier(set)
            .weight(weight)
            .ttl(60)
            .health_check_id(format!("hc-{set}"))
            .resource_records(ResourceRecord::builder().value(value).build().expect("rr"))
            .build()
            .expect("record")
    }

    #[test]
    fn weighted_records_move_to_100_0_keeping_every_other_field() {
        let live = [
            weighted("euc1", 100, "euc1.example.com"),
            weighted("euw1", 0, "euw1.example.com"),
        ];
        let goal = weighted_goal("euw1");
        let changes = record_changes(&goal, &["euc1".into()], &live).expect("changes");
        let got: Vec<(String, Option<i64>, Option<String>, String)> = changes
            .iter()
            .map(|c| {
                let r = c.resource_record_set().expect("set");
                (
                    r.set_identifier().unwrap_or_default().to_string(),
                    r.weight(),
                    r.health_check_id().map(str::to_string),
                    r.resource_records()[0].value().to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "euw1".into(),
                    Some(100),
                    Some("hc-euw1".into()),
                    "euw1.example.com".into()
                ),
                (
                    "euc1".into(),
                    Some(0),
                    Some("hc-euc1".into()),
                    "euc1.example.com".into()
                ),
            ]
        );
        assert!(changes.iter().all(|c| c.action() == &ChangeAction::Upsert));

        let done = [
            weighted("euc1", 0, "euc1.example.com"),
            weighted("euw1", 100, "euw1.example.com"),
        ];
        assert!(
            record_changes(&goal, &["euc1".into()], &done)
                .expect("ok")
                .is_empty()
        );
        let missing = record_changes(&weighted_goal("zz"), &[], &done);
        assert!(missing.expect_err("no such set").contains("`zz`"));
    }

    #[test]
    fn a_simple_record_is_upserted_unless_it_already_has_the_value_and_ttl() {
        let goal = ep(DnsRecord::Simple {
            value: "usw2.example.com".into(),
        });
        let rec = |value: &str, ttl: i64| {
            ResourceRecordSet::builder()
                .name("api.example.com.")
                .r#type(RrType::Cname)
                .ttl(ttl)
                .resource_records(ResourceRecord::builder().value(value).build().expect("rr"))
                .build()
                .expect("record")
        };
        assert!(
            record_changes(&goal, &[], &[rec("USW2.example.com.", 60)])
                .expect("ok")
                .is_empty()
        );
        assert_eq!(
            record_changes(&goal, &[], &[rec("use1.example.com", 60)])
                .expect("ok")
                .len(),
            1
        );
        assert_eq!(
            record_changes(&goal, &[], &[rec("usw2.example.com", 300)])
                .expect("ok")
                .len(),
            1
        );
        let c = record_changes(&goal, &[], &[]).expect("ok");
        let r = c[0].resource_record_set().expect("set");
        assert_eq!(
            (r.ttl(), r.resource_records()[0].value()),
            (Some(60), "usw2.example.com")
        );
    }
}
