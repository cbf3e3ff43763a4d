//! Drift drills: the world changes under a runbook while nothing fails (a switch health
//! check deleted, an Auto Scaling group capped, replication stopped). The daemon's
//! readiness rounds must go red naming the step and the fix, go green again once the
//! drift is repaired, and no failover may start.
//!
//! ```toml
//! [[drift]]
//! kind = "delete_health_check"
//!
//! [expect]
//! failover = false
//! [expect.readiness]
//! direction = "failover"
//! step = "move-dns"
//! fix = "health check"       # words the fix must contain
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType,
    ResourceRecordSetFailover,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::report::{Assertion, Mark, Report};
use super::scenario::Scenario;
use crate::clients::aws::{AwsClients, describe_error};
use crate::core::model::Direction;
use crate::core::readiness::{ReadinessReport, ReadyState};
use crate::core::time::Ts;
use crate::daemon::client::Client;
use crate::policy::schema::DurationText;
use crate::sandbox::world::{SECONDARY, World};

/// One change to make to the sandbox.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Drift {
    pub kind: DriftKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// The Route 53 health check the failover pair's switch inverts is deleted.
    DeleteHealthCheck,
    /// The secondary's Auto Scaling group is capped below what the failover scales to.
    LowerAsgMax,
    /// The standby's replication is switched off (its primary_conninfo emptied).
    StopReplication,
}

impl DriftKind {
    pub fn describe(self) -> &'static str {
        match self {
            DriftKind::DeleteHealthCheck => "the switch health check deleted",
            DriftKind::LowerAsgMax => "the secondary Auto Scaling group's max lowered to 1",
            DriftKind::StopReplication => "replication to the standby stopped",
        }
    }
}

/// What readiness must report about the drift.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectReadiness {
    /// The runbook the step is in: failover or failback.
    #[schemars(with = "DirectionText")]
    pub direction: Direction,
    /// The step readiness must name as not ready.
    pub step: String,
    /// Words its fix must contain.
    pub fix: String,
    /// From the drift to readiness going red, and from the repair to green.
    #[serde(default = "d30", deserialize_with = "super::scenario::duration")]
    #[schemars(with = "DurationText")]
    pub within: Duration,
}

/// `direction`'s two values, for the schema (core's types carry no schema).
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum DirectionText {
    Failover,
    Failback,
}

fn d30() -> Duration {
    Duration::from_secs(30)
}

/// What a drift needs to be repaired.
enum Made {
    HealthCheck { zone: String, record: String },
    AsgMax { group: String, max: i32 },
    Replication { conninfo: String },
}

const STANDBY_GROUP: &str = "sandbox-orders-workers-usw2";

async fn make(world: &World, kind: DriftKind) -> anyhow::Result<Made> {
    let aws = AwsClients::for_emulator(&world.moto_url());
    match kind {
        DriftKind::DeleteHealthCheck => {
            let r53 = aws.route53();
            let zone = world.aws.zone_id.clone();
            let hc = primary_health_check(&aws, &zone, &world.record).await?;
            r53.delete_health_check()
                .health_check_id(&hc)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("delete health check {hc}: {}", describe_error(&e)))?;
            Ok(Made::HealthCheck {
                zone,
                record: world.record.clone(),
            })
        }
        DriftKind::LowerAsgMax => {
            let asg = aws.autoscaling(SECONDARY);
            let out = asg
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(STANDBY_GROUP)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("describe {STANDBY_GROUP}: {}", describe_error(&e)))?;
            let g = out
                .auto_scaling_groups()
                .first()
                .context("the secondary's Auto Scaling group is missing")?;
            let max = g.max_size().unwrap_or(4);
            asg.update_auto_scaling_group()
                .auto_scaling_group_name(STANDBY_GROUP)
                .min_size(1)
                .desired_capacity(1)
                .max_size(1)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("cap {STANDBY_GROUP}: {}", describe_error(&e)))?;
            Ok(Made::AsgMax {
                group: STANDBY_GROUP.to_string(),
                max,
            })
        }
        DriftKind::StopReplication => {
            let standby = world.pg(SECONDARY)?;
            let conninfo = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
                let c = standby.sql("SHOW primary_conninfo")?.trim().to_string();
                standby.sql("ALTER SYSTEM SET primary_conninfo = ''")?;
                standby.sql("SELECT pg_reload_conf()")?;
                Ok(c)
            })
            .await??;
            Ok(Made::Replication { conninfo })
        }
    }
}

async fn repair(world: &World, made: Made) -> anyhow::Result<()> {
    let aws = AwsClients::for_emulator(&world.moto_url());
    match made {
        Made::HealthCheck { zone, record } => {
            // A new switch, as `sandbox up` makes it, attached to the PRIMARY record.
            let r53 = aws.route53();
            let hc = r53
                .create_health_check()
                .caller_reference(format!("lifeboat-drift-repair-{}", fastrand::u64(..)))
                .health_check_config(
                    HealthCheckConfig::builder()
                        .r#type(HealthCheckType::Calculated)
                        .health_threshold(0)
                        .set_child_health_checks(Some(vec![]))
                        .build()?,
                )
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("recreate the switch: {}", describe_error(&e)))?;
            let id = hc
                .health_check()
                .map(|h| h.id().to_string())
                .context("no id")?;
            let sets = r53
                .list_resource_record_sets()
                .hosted_zone_id(&zone)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("list {zone}: {}", describe_error(&e)))?;
            let mut primary = sets
                .resource_record_sets()
                .iter()
                .find(|r| {
                    same_name(r.name(), &record)
                        && r.failover() == Some(&ResourceRecordSetFailover::Primary)
                })
                .cloned()
                .context("no PRIMARY record")?;
            primary.health_check_id = Some(id);
            r53.change_resource_record_sets()
                .hosted_zone_id(&zone)
                .change_batch(
                    ChangeBatch::builder()
                        .changes(
                            Change::builder()
                                .action(ChangeAction::Upsert)
                                .resource_record_set(primary)
                                .build()?,
                        )
                        .build()?,
                )
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("attach the switch: {}", describe_error(&e)))?;
        }
        Made::AsgMax { group, max } => {
            aws.autoscaling(SECONDARY)
                .update_auto_scaling_group()
                .auto_scaling_group_name(&group)
                .max_size(max)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("uncap {group}: {}", describe_error(&e)))?;
        }
        Made::Replication { conninfo } => {
            let standby = world.pg(SECONDARY)?;
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                standby.sql(&format!(
                    "ALTER SYSTEM SET primary_conninfo = '{}'",
                    conninfo.replace('\'', "''")
                ))?;
                standby.sql("SELECT pg_reload_conf()")?;
                Ok(())
            })
            .await??;
        }
    }
    Ok(())
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

async fn primary_health_check(
    aws: &AwsClients,
    zone: &str,
    record: &str,
) -> anyhow::Result<String> {
    let sets = aws
        .route53()
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("list {zone}: {}", describe_error(&e)))?;
    sets.resource_record_sets()
        .iter()
        .find(|r| {
            same_name(r.name(), record) && r.failover() == Some(&ResourceRecordSetFailover::Primary)
        })
        .and_then(|r| r.health_check_id().map(str::to_string))
        .context("the PRIMARY record has no health check")
}

/// The newest readiness round the daemon reports that started after `after`.
async fn round_after(api: &Client, after: Ts) -> Option<ReadinessReport> {
    api.status().await.ok()?.readiness.filter(|r| r.at > after)
}

/// Waits for a round after `after` that satisfies `ok`.
async fn until_round(
    api: &Client,
    after: Ts,
    within: Duration,
    ok: impl Fn(&ReadinessReport) -> bool,
) -> Result<ReadinessReport, Option<ReadinessReport>> {
    let deadline = Instant::now() + within;
    let mut last = None;
    loop {
        if let Some(r) = round_after(api, after).await {
            if ok(&r) {
                return Ok(r);
            }
            last = Some(r);
        }
        if Instant::now() > deadline {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn not_ready_list(r: &ReadinessReport) -> String {
    let items: Vec<String> = r
        .not_ready()
        .into_iter()
        .map(|((d, s), why, _)| {
            format!(
                "{}{s}: {why}",
                d.map(|d| format!("{d} ")).unwrap_or_default()
            )
        })
        .collect();
    if items.is_empty() {
        "everything ready".into()
    } else {
        items.join("; ")
    }
}

/// The metric the daemon exports for one step, as text (`0`, `1`, or absent).
async fn metric(url: &str, direction: Direction, step: &str) -> Option<String> {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    readiness_ok(&text, direction, step)
}

/// `lifeboat_readiness_ok`'s value for one step in Prometheus text, whatever other labels
/// the series carries and in whatever order (the daemon adds `service` to every series).
fn readiness_ok(text: &str, direction: Direction, step: &str) -> Option<String> {
    let labels = [
        format!("direction=\"{}\"", direction.as_str()),
        format!("step=\"{step}\""),
    ];
    text.lines()
        .filter_map(|l| l.strip_prefix("lifeboat_readiness_ok{"))
        .find(|l| {
            let inside = l.split('}').next().unwrap_or_default();
            labels
                .iter()
                .all(|want| inside.split(',').any(|kv| kv == want))
        })
        .and_then(|l| l.split_whitespace().last())
        .map(str::to_string)
}

/// The drift drill proper, after the sandbox and the daemon are up and the steady state
/// holds: green, drift, red naming the step and fix, repair, green, and no failover.
pub async fn exercise(
    s: &Scenario,
    world: &World,
    api: &Client,
    report: &mut Report,
    t0: Instant,
) -> anyhow::Result<()> {
    let Some(want) = &s.expect.readiness else {
        bail!("a drift drill needs [expect.readiness]");
    };
    let at = |t: Instant| t.duration_since(t0).as_secs_f64();
    let started = now();

    let green = until_round(api, Ts::from_millis(0), Duration::from_secs(60), |r| r.ok()).await;
    report.checks.push(Assertion {
        what: "readiness is green on the healthy sandbox".into(),
        passed: green.is_ok(),
        detail: match &green {
            Ok(r) => counts(r),
            Err(Some(r)) => not_ready_list(r),
            Err(None) => "the daemon reported no readiness round within 60s".into(),
        },
    });
    if green.is_err() {
        return Ok(());
    }

    let drift_wall = now();
    let drift_at = Instant::now();
    report.timeline.push(Mark {
        at: at(drift_at),
        what: "fault".into(),
    });
    let mut made = Vec::new();
    for d in &s.drift {
        made.push(
            make(world, d.kind)
                .await
                .with_context(|| format!("make the drift: {}", d.kind.describe()))?,
        );
        report.timeline.push(Mark {
            at: at(Instant::now()),
            what: format!("drift: {}", d.kind.describe()),
        });
    }

    let names_step = |r: &ReadinessReport| {
        r.not_ready().iter().any(|((d, step), _, fix)| {
            *d == Some(want.direction) && *step == want.step && fix.contains(&want.fix)
        })
    };
    let red = until_round(api, drift_wall, want.within, names_step).await;
    let red_after = red.as_ref().ok().map(|r| secs_between(drift_wall, r.at));
    if let Some(secs) = red_after {
        report.timeline.push(Mark {
            at: at(drift_at) + secs,
            what: format!("readiness red: {} {}", want.direction, want.step),
        });
    }
    report.checks.push(Assertion {
        what: format!(
            "readiness goes red within {}s naming {} step `{}` and a fix about \"{}\"",
            want.within.as_secs(),
            want.direction,
            want.step,
            want.fix
        ),
        passed: red.is_ok(),
        detail: match &red {
            Ok(r) => {
                let (_, why, fix) = r
                    .not_ready()
                    .into_iter()
                    .find(|((d, step), _, _)| *d == Some(want.direction) && *step == want.step)
                    .unwrap_or(((None, String::new()), "", ""));
                format!(
                    "red {:.1}s after the drift: {why} — fix: {fix}",
                    red_after.unwrap_or_default()
                )
            }
            Err(Some(r)) => format!("the latest round said: {}", not_ready_list(r)),
            Err(None) => "no readiness round after the drift".into(),
        },
    });
    if red.is_ok() {
        let m = metric(&api.url, want.direction, &want.step).await;
        report.checks.push(Assertion {
            what: format!(
                "the metric lifeboat_readiness_ok{{direction=\"{}\",step=\"{}\"}} reads 0",
                want.direction, want.step
            ),
            passed: m.as_deref() == Some("0"),
            detail: format!("reads {}", m.unwrap_or_else(|| "nothing".into())),
        });
    }

    let repair_wall = now();
    let repaired = Instant::now();
    for m in made {
        repair(world, m).await.context("repair the drift")?;
    }
    report.timeline.push(Mark {
        at: at(repaired),
        what: "drift repaired".into(),
    });
    let green_again = until_round(api, repair_wall, want.within, |r| r.ok()).await;
    if let Ok(r) = &green_again {
        report.timeline.push(Mark {
            at: at(repaired) + secs_between(repair_wall, r.at),
            what: "readiness green".into(),
        });
    }
    report.checks.push(Assertion {
        what: format!(
            "readiness is green within {}s of the repair",
            want.within.as_secs()
        ),
        passed: green_again.is_ok(),
        detail: match &green_again {
            Ok(r) => format!(
                "green {:.1}s after the repair: {}",
                secs_between(repair_wall, r.at),
                counts(r)
            ),
            Err(Some(r)) => format!("the latest round said: {}", not_ready_list(r)),
            Err(None) => "no readiness round after the repair".into(),
        },
    });

    let runs = api.runs().await.unwrap_or_default();
    let started_runs: Vec<String> = runs
        .iter()
        .filter(|r| r.created_at >= started)
        .map(|r| format!("{} {}", r.direction, r.run_id))
        .collect();
    report.checks.push(Assertion {
        what: "no failover (or any run) starts".into(),
        passed: started_runs.is_empty(),
        detail: if started_runs.is_empty() {
            "no run".into()
        } else {
            started_runs.join(", ")
        },
    });
    Ok(())
}

fn counts(r: &ReadinessReport) -> String {
    let (ready, not, cannot) = r.counts();
    let cannot_tell: Vec<String> = r
        .findings()
        .filter(|(_, f)| f.state() == ReadyState::CannotTell)
        .map(|((_, s), _)| s)
        .collect();
    format!(
        "{ready} ready, {not} not ready, {cannot} cannot tell ({})",
        cannot_tell.join(", ")
    )
}

fn now() -> Ts {
    crate::clock::WallClock::system().now()
}

fn secs_between(a: Ts, b: Ts) -> f64 {
    (b.as_millis() as f64 - a.as_millis() as f64) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readiness_metric_is_found_beside_the_service_label() {
        let text = "# TYPE lifeboat_readiness_ok gauge\n\
            lifeboat_readiness_ok{service=\"orders\",direction=\"failback\",step=\"move-dns\"} 1\n\
            lifeboat_readiness_ok{service=\"orders\",direction=\"failover\",step=\"move-dns\"} 0\n\
            lifeboat_readiness_ok{service=\"orders\",direction=\"failover\",step=\"move-dns-2\"} 1\n";
        assert_eq!(
            readiness_ok(text, Direction::Failover, "move-dns").as_deref(),
            Some("0")
        );
        assert_eq!(readiness_ok(text, Direction::Failover, "scale"), None);
    }
}
