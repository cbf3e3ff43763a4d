//! What every drill on the HA sandbox must leave true, whatever it broke: read after the
//! drill from etcd's history, every node's journal and the world (PostgreSQL), not from
//! what the controllers say about themselves.
//!
//! - at most one epoch recorded `done` for each step (the done key was written once);
//! - no fenced write from an epoch older than one etcd had already applied;
//! - each effect once per run: one promotion, one DNS switch and one notification, as
//!   counted over every node's journal (each `apply` that succeeded), and on the new
//!   primary one timeline switch per promotion.
//!
//! The drill's own checks cover the rest: never two writable primaries (sampled
//! throughout) and no acknowledged write lost beyond the budget (counted on the database
//! that took each write).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use etcd_client::{EventType, GetOptions, WatchOptions};

use super::report::Assertion;
use super::run::Daemon;
use crate::coord::keys::Keys;
use crate::core::model::{Coordination, Policy};
use crate::core::step::{AttemptOutcome, AttemptPhase, RunStatus};
use crate::journal::RunDetail;
use crate::sandbox::ha::Ha;
use crate::sandbox::world::World;

/// The step kinds whose effect must happen exactly once per completed failover.
const ONCE: [&str; 3] = ["postgres_promote", "route53_switch", "notify"];

/// Runs every check; an error means the evidence could not be read.
pub async fn check(
    world: &World,
    ha: &Ha,
    policy: &Policy,
    daemon: &Daemon,
) -> anyhow::Result<Vec<Assertion>> {
    let Coordination::Etcd(etcd) = &policy.coordination else {
        return Ok(Vec::new());
    };
    let prefix = Keys::new(&etcd.cluster)?
        .service(&policy.service)?
        .prefix()
        .to_string();
    let history = history(ha, &prefix).await?;
    let mut out = vec![done_once(&history), epochs_never_go_back(&history)];
    let runs = runs(daemon, ha).await?;
    out.push(effects_once(&runs));
    out.push(timelines(world, &runs)?);
    Ok(out)
}

/// One put under the service's prefix, in etcd's order.
struct Put {
    key: String,
    revision: i64,
    epoch: Option<u64>,
}

/// Every put under `prefix` since the cluster began (the sandbox never compacts), read
/// with a watch from revision 1 up to the revision a read saw just before.
async fn history(ha: &Ha, prefix: &str) -> anyhow::Result<Vec<Put>> {
    // Only members still running: a drill may have killed one.
    let endpoints: Vec<String> = ha
        .etcd
        .iter()
        .filter(|m| crate::sandbox::process::alive(m.pid))
        .map(|m| format!("http://127.0.0.1:{}", m.client_port))
        .collect();
    let deadline = Duration::from_secs(10);
    let mut client = tokio::time::timeout(deadline, etcd_client::Client::connect(&endpoints, None))
        .await
        .context("connect to the sandbox's etcd: timed out")??;
    let head = tokio::time::timeout(
        deadline,
        client.get(
            prefix,
            Some(GetOptions::new().with_prefix().with_count_only()),
        ),
    )
    .await
    .context("read etcd's revision: timed out")??
    .header()
    .map(|h| h.revision())
    .unwrap_or_default();
    let mut stream = client
        .watch(
            prefix,
            Some(WatchOptions::new().with_prefix().with_start_revision(1)),
        )
        .await?;
    let mut puts = Vec::new();
    let mut last = 0;
    // etcd sends the stored history at once; a second without a message means it has
    // all arrived (the newest put under the prefix may be older than `head`, the
    // revision of the whole cluster).
    while last < head {
        let Ok(message) = tokio::time::timeout(Duration::from_secs(1), stream.message()).await
        else {
            break;
        };
        let Some(resp) = message? else {
            break;
        };
        for e in resp.events() {
            let Some(kv) = e.kv() else { continue };
            last = last.max(kv.mod_revision());
            if e.event_type() != EventType::Put || kv.mod_revision() > head {
                continue;
            }
            let epoch = serde_json::from_slice::<serde_json::Value>(kv.value())
                .ok()
                .and_then(|v| v.get("epoch").and_then(|e| e.as_u64()));
            puts.push(Put {
                key: kv.key_str().unwrap_or_default().to_string(),
                revision: kv.mod_revision(),
                epoch,
            });
        }
    }
    Ok(puts)
}

fn done_once(history: &[Put]) -> Assertion {
    let mut writes: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for p in history.iter().filter(|p| p.key.ends_with("/done")) {
        writes
            .entry(&p.key)
            .or_default()
            .push(p.epoch.unwrap_or_default());
    }
    let twice: Vec<String> = writes
        .iter()
        .filter(|(_, e)| e.len() > 1)
        .map(|(k, e)| format!("{k} by epochs {e:?}"))
        .collect();
    Assertion {
        what: "at most one epoch recorded each step done".into(),
        passed: twice.is_empty(),
        detail: if twice.is_empty() {
            format!("{} step(s) recorded done, each once", writes.len())
        } else {
            format!("written more than once: {}", twice.join("; "))
        },
    }
}

/// Fenced writes carry the writer's epoch; in etcd's order it never goes down. Votes
/// (under each observer's lease) and the leader key are not fenced writes.
fn epochs_never_go_back(history: &[Put]) -> Assertion {
    let mut newest: Option<(u64, i64)> = None;
    let mut stale = Vec::new();
    let mut fenced = 0;
    for p in history {
        if p.key.contains("/votes/") || p.key.ends_with("/leader") {
            continue;
        }
        let Some(epoch) = p.epoch else { continue };
        fenced += 1;
        match newest {
            Some((n, rev)) if epoch < n => stale.push(format!(
                "{} at revision {} by epoch {epoch}, after epoch {n} wrote at revision {rev}",
                p.key, p.revision
            )),
            Some((n, _)) if epoch == n => {}
            _ => newest = Some((epoch, p.revision)),
        }
    }
    Assertion {
        what: "no fenced write from an epoch older than one already seen".into(),
        passed: stale.is_empty(),
        detail: if stale.is_empty() {
            format!(
                "{fenced} fenced writes, epochs in order (newest {})",
                newest.map(|(e, _)| e).unwrap_or_default()
            )
        } else {
            stale.join("; ")
        },
    }
}

/// Every node's runs, from its API or, for a node that no longer runs, its journal file.
async fn runs(daemon: &Daemon, ha: &Ha) -> anyhow::Result<Vec<(String, RunDetail)>> {
    let mut out = Vec::new();
    for n in &ha.nodes {
        let node = daemon.node(&n.name);
        let from_api = match node {
            Some(d) if crate::sandbox::process::alive(n.pid) => {
                let mut details = Vec::new();
                let mut ok = true;
                match d.api.runs().await {
                    Ok(list) => {
                        for r in list {
                            match d.api.run(&r.run_id).await {
                                Ok(detail) => details.push(detail),
                                Err(_) => ok = false,
                            }
                        }
                    }
                    Err(_) => ok = false,
                }
                ok.then_some(details)
            }
            _ => None,
        };
        let details = match from_api {
            Some(d) => d,
            None => {
                let j = crate::journal::Journal::open(&n.journal)
                    .with_context(|| format!("open {}'s journal", n.name))?;
                let mut details = Vec::new();
                for r in j.runs(1000)? {
                    details.push(j.detail(&r.run_id)?);
                }
                details
            }
        };
        out.extend(details.into_iter().map(|d| (n.name.clone(), d)));
    }
    Ok(out)
}

/// Each run's promotion, DNS switch and notification succeeded once over all journals,
/// exactly once if the run completed. Runs that never acted (a start the shared record
/// refused) are counted but not listed.
fn effects_once(runs: &[(String, RunDetail)]) -> Assertion {
    let mut by_run: BTreeMap<String, (bool, BTreeMap<String, Vec<String>>)> = BTreeMap::new();
    for (node, d) in runs {
        let entry = by_run.entry(d.run.run_id.to_string()).or_default();
        entry.0 |= d.run.status == RunStatus::Completed;
        for st in d.steps.iter().filter(|s| ONCE.contains(&s.kind.as_str())) {
            let applied = st
                .attempts
                .iter()
                .filter(|a| {
                    a.phase == AttemptPhase::Apply && a.outcome == Some(AttemptOutcome::Done)
                })
                .count();
            let seen = entry.1.entry(st.name.clone()).or_default();
            seen.extend(std::iter::repeat_n(node.clone(), applied));
        }
    }
    let mut wrong = Vec::new();
    let mut listed = Vec::new();
    for (run, (completed, steps)) in &by_run {
        for (step, by) in steps {
            if by.len() > 1 || (*completed && by.len() != 1) {
                wrong.push(format!(
                    "{run}: {step} applied {} time(s) by {by:?}",
                    by.len()
                ));
            }
        }
        if *completed || steps.values().any(|by| !by.is_empty()) {
            let each: Vec<String> = steps
                .iter()
                .map(|(step, by)| format!("{step} ×{} ({})", by.len(), by.join(", ")))
                .collect();
            listed.push(format!("{run}: {}", each.join(", ")));
        }
    }
    Assertion {
        what: "each run's promotion, DNS switch and notification happened once".into(),
        passed: wrong.is_empty(),
        detail: if wrong.is_empty() {
            format!("{} run(s); {}", by_run.len(), listed.join("; "))
        } else {
            wrong.join("; ")
        },
    }
}

/// A fresh sandbox's databases are on timeline 1; each promotion moves the promoted one
/// to the next. So the writable database's timeline is 1 + the completed failovers, and
/// a promotion applied twice (or a second primary) shows.
fn timelines(world: &World, runs: &[(String, RunDetail)]) -> anyhow::Result<Assertion> {
    let mut failovers: Vec<String> = runs
        .iter()
        .filter(|(_, d)| {
            d.run.status == RunStatus::Completed
                && d.steps.iter().any(|s| s.kind == "postgres_promote")
        })
        .map(|(_, d)| d.run.run_id.to_string())
        .collect();
    failovers.sort();
    failovers.dedup();
    let mut seen = Vec::new();
    let mut writable = Vec::new();
    for region in world.pg.keys() {
        let pg = world.pg(region)?;
        if !pg.is_running() {
            seen.push(format!("{region} stopped"));
            continue;
        }
        if pg.in_recovery().unwrap_or(true) {
            seen.push(format!("{region} standby"));
            continue;
        }
        // A fenced primary (read-only by default) takes no writes: not a second primary.
        if pg
            .sql("SELECT current_setting('default_transaction_read_only')")
            .is_ok_and(|v| v.trim() == "on")
        {
            seen.push(format!("{region} fenced (read-only)"));
            continue;
        }
        // The current WAL file's name starts with the timeline, in hex (the checkpoint's
        // timeline lags a fresh promotion).
        let timeline = pg
            .sql("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")
            .ok()
            .and_then(|t| u64::from_str_radix(t.trim(), 16).ok())
            .unwrap_or_default();
        writable.push((region.clone(), timeline));
        seen.push(format!("{region} primary on timeline {timeline}"));
    }
    let expected = 1 + failovers.len() as u64;
    let passed = writable.len() == 1 && writable[0].1 == expected;
    Ok(Assertion {
        what: "the database was promoted once per failover".into(),
        passed,
        detail: format!(
            "{} completed failover(s), so timeline {expected} expected; {}",
            failovers.len(),
            seen.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, revision: i64, epoch: Option<u64>) -> Put {
        Put {
            key: format!("/lifeboat/v1/sandbox/svc/orders/{key}"),
            revision,
            epoch,
        }
    }

    #[test]
    fn a_step_recorded_done_by_two_epochs_is_caught() {
        let once = [
            put("run/r1/step/000001/done", 10, Some(3)),
            put("run/r1/step/000002/done", 12, Some(7)),
        ];
        assert!(done_once(&once).passed);
        let twice = [
            put("run/r1/step/000001/done", 10, Some(3)),
            put("run/r1/step/000001/done", 14, Some(7)),
        ];
        let a = done_once(&twice);
        assert!(!a.passed);
        assert!(a.detail.contains("[3, 7]"), "{}", a.detail);
    }

    #[test]
    fn a_fenced_write_from_an_older_epoch_after_a_newer_one_is_caught() {
        let ordered = [
            put("run/current", 5, Some(3)),
            put("run/r1/step/000001/intent/00000000000000000003", 6, Some(3)),
            // Votes and the leader key carry no fencing: ignored.
            put("votes/obs", 7, None),
            put("leader", 8, Some(1)),
            put("run/r1/step/000002/intent/00000000000000000009", 9, Some(9)),
        ];
        assert!(epochs_never_go_back(&ordered).passed);
        let stale = [
            put("run/r1/step/000002/intent/00000000000000000009", 9, Some(9)),
            put("run/r1/step/000002/done", 11, Some(3)),
        ];
        let a = epochs_never_go_back(&stale);
        assert!(!a.passed);
        assert!(
            a.detail.contains("by epoch 3, after epoch 9"),
            "{}",
            a.detail
        );
    }
}
