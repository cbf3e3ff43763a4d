//! Running one drill: a fresh sandbox, the real daemon as a child process, a write load
//! throughout, the faults, the expectations, a verified failback when asked, and a
//! rollback that always runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::accounting;
use super::faults::{self, Injected};
use super::observe::{self, Seen, Write};
use super::report::{Assertion, Figures, Mark, Report, Span, WritePoint};
use super::scenario::Scenario;
use super::scratch;
use crate::contract::{ApproveBody, FailbackBody, Reply};
use crate::core::health::Verdict;
use crate::core::model::Direction;
use crate::core::step::RunStatus;
use crate::core::time::Ts;
use crate::daemon::status::StatusView;
use crate::journal::{RunDetail, RunRecord};
use crate::sandbox::world::{self, PRIMARY, SECONDARY, World};

mod daemon;
mod hold;
mod takeover;

pub use daemon::Daemon;

/// What a drill needs from its caller.
pub struct Setup {
    pub scenario: Scenario,
    pub policy: PathBuf,
    /// The lifeboat binary that runs the daemon (this one).
    pub bin: PathBuf,
    /// Where the daemon's logs go.
    pub logs: PathBuf,
}

/// The wall clock, as the daemon under test reads it.
fn now() -> Ts {
    crate::clock::WallClock::system().now()
}

/// Runs the drill once and reports; never leaves the sandbox broken behind it.
pub async fn once(setup: &Setup, repetition: u32) -> Report {
    let s = &setup.scenario;
    let mut report = Report {
        drill: s.drill.name.clone(),
        description: s.drill.description.clone(),
        repetition,
        ..Report::default()
    };
    let dir = match world::dir_for_policy(&setup.policy) {
        Ok(d) => d,
        Err(e) => {
            report.error = Some(format!("{e:#}"));
            return report;
        }
    };
    let policy = match scratch::drill_policy(&s.drill, &setup.policy) {
        Ok(p) => p,
        Err(e) => {
            report.error = Some(format!("{e:#}"));
            return report;
        }
    };
    if let Err(e) = drive(setup, &policy, &dir, &mut report).await {
        report.error = Some(format!("{e:#}"));
        report.passed = false;
    }
    if policy != setup.policy {
        let _ = std::fs::remove_file(&policy);
    }
    // Rollback: whatever happened above, the sandbox is taken down.
    if let Err(e) = world::down(&dir) {
        report.checks.push(Assertion {
            what: "rollback leaves nothing running".into(),
            passed: false,
            detail: format!("{e:#}"),
        });
        report.passed = false;
    }
    report
}

async fn drive(
    setup: &Setup,
    policy_path: &Path,
    dir: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let s = &setup.scenario;
    if dir.join("sandbox.json").exists() {
        world::down(dir)?;
    }
    let world = match world::up(dir, policy_path).await {
        Ok(w) => w,
        Err(e) => {
            // Starting a dozen services on a loaded host can time out (moto's API is the
            // usual one); that is not what the drill is about, so try once more afresh.
            eprintln!("  the sandbox did not start ({e:#}); trying once more");
            let _ = world::down(dir);
            world::up(dir, policy_path)
                .await
                .context("start the sandbox")?
        }
    };
    let (policy, _) = crate::policy::load_valid(policy_path)?;
    let journal = crate::journal::location(&policy, Path::new("/var/lib/lifeboat"));
    let log = setup
        .logs
        .join(format!("{}-{}-daemon.log", s.drill.name, report.repetition));
    let daemon = match &world.ha {
        Some(ha) => Daemon::of_sandbox(ha)?,
        None => Daemon::start(&setup.bin, policy_path, &journal, &log).await?,
    };

    let t0 = Instant::now();
    let (active, dns) = observe::follow_dns(&world, t0);
    let (writes, load) = observe::write_load(&world, s.load.writes_per_second, active, t0);
    let sampler = observe::sample_writable(&world, t0)?;
    let (_latest, watcher) = observe::watch_daemon(daemon.urls(), PRIMARY.to_string(), t0);

    let mut outcome = scenario(setup, policy_path, &world, &daemon, report, &writes, t0).await;
    if let Some(ha) = &world.ha {
        // What every HA drill must leave true, read from etcd, the journals and the world.
        match super::invariants::check(&world, ha, &policy, &daemon).await {
            Ok(checks) => report.checks.extend(checks),
            Err(e) => outcome = outcome.and(Err(e.context("check the HA invariants"))),
        }
    }

    // Stop observing, then account.
    let seen = watcher.stop().await;
    load.stop().await;
    let writable = sampler.stop().await;
    let dns_changes = dns.stop().await;
    let writes = writes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let fault_ms = report
        .timeline
        .iter()
        .find(|m| m.what == "fault")
        .map(|m| m.at);
    finish_figures(report, &writes, &seen, &dns_changes, &writable, fault_ms);
    report.passed = outcome.is_ok() && report.checks.iter().all(|c| c.passed);
    drop(daemon);
    // Keep the journal beside the report: its runs and decisions, with their evidence,
    // outlive the sandbox (`lifeboat history --journal FILE --decisions`).
    let kept = setup
        .logs
        .join(format!("{}-{}.db", s.drill.name, report.repetition));
    match crate::journal::Journal::open(&journal).and_then(|j| j.snapshot_to(&kept)) {
        Ok(()) => report.journal = Some(kept.display().to_string()),
        Err(e) => tracing::warn!("could not keep the drill's journal: {e}"),
    }
    if let Some(ha) = &world.ha {
        // Every node's journal and log, before the sandbox (and its directory) goes.
        for n in &ha.nodes {
            let stem = format!("{}-{}-{}", s.drill.name, report.repetition, n.name);
            let _ = std::fs::copy(&n.log, setup.logs.join(format!("{stem}.log")));
            if n.journal != journal
                && let Err(e) = crate::journal::Journal::open(&n.journal)
                    .and_then(|j| j.snapshot_to(&setup.logs.join(format!("{stem}.db"))))
            {
                tracing::warn!("could not keep {}'s journal: {e}", n.name);
            }
        }
    }
    outcome
}

/// Waits until `ok` holds on the daemon's status, or `within` passes. On timeout the error
/// names the critical probes that failed meanwhile (how often, and their latest error).
async fn until(
    daemon: &Daemon,
    within: Duration,
    what: &str,
    ok: impl Fn(&StatusView) -> bool,
) -> anyhow::Result<StatusView> {
    let deadline = Instant::now() + within;
    let mut failing: std::collections::BTreeMap<String, (u32, String)> = Default::default();
    loop {
        if let Ok(v) = daemon.status().await {
            if ok(&v) {
                return Ok(v);
            }
            for p in v.probes.iter().filter(|p| p.critical && !p.ok) {
                let e = failing
                    .entry(format!("{} in {}", p.probe, p.region))
                    .or_default();
                e.0 += 1;
                e.1 = p.last_error.clone().unwrap_or_default();
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = failing
                    .iter()
                    .map(|(k, (n, e))| format!("{k} ({n} polls; latest: {e})"))
                    .collect();
                bail!(
                    "{what} did not happen within {}s (state {}, why: {}; critical probes seen failing: {})",
                    within.as_secs(),
                    v.state,
                    v.why.unwrap_or_default(),
                    if seen.is_empty() {
                        "none".to_string()
                    } else {
                        seen.join("; ")
                    }
                );
            }
        } else if Instant::now() > deadline {
            bail!("{what}: the daemon stopped answering");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long every region must have been healthy before a drill breaks anything: a blip
/// while the daemon starts (cold clients on a loaded host) must have healed and the
/// recovery rule been met, or the fault would land on a region still counted down.
const SETTLED: Duration = Duration::from_secs(3);

fn steady(v: &StatusView) -> bool {
    !v.probes.is_empty()
        && v.probes.iter().filter(|p| p.critical).all(|p| p.ok)
        && v.regions
            .iter()
            .all(|r| r.verdict.is_healthy() && r.healthy_for.is_some_and(|d| d >= SETTLED))
}

/// The witness, or every HA node, sees the same steady state (they vote on what comes
/// next).
async fn witness_steady(world: &World, within: Duration) -> anyhow::Result<()> {
    let ports: Vec<u16> = match (&world.witness, &world.ha) {
        (Some(w), _) => vec![w.port],
        (None, Some(ha)) => ha.nodes.iter().map(|n| n.port).collect(),
        (None, None) => Vec::new(),
    };
    for port in ports {
        voter_steady(port, within).await?;
    }
    Ok(())
}

async fn voter_steady(port: u16, within: Duration) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{port}/v1/status");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default();
    let deadline = Instant::now() + within;
    loop {
        let view = match http.get(&url).send().await {
            Ok(r) => r.json::<StatusView>().await.ok(),
            Err(_) => None,
        };
        if view.as_ref().is_some_and(steady) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the witness or observer at {url} did not see every region healthy within {}s",
                within.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A run of `direction` created after `after` (wall clock), if one exists.
async fn new_run(daemon: &Daemon, direction: Direction, after: Ts) -> Option<RunRecord> {
    daemon
        .runs()
        .await
        .ok()?
        .into_iter()
        .find(|r| r.direction == direction && r.created_at >= after)
}

async fn wait_run_end(
    daemon: &Daemon,
    direction: Direction,
    after: Ts,
    within: Duration,
) -> anyhow::Result<RunRecord> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(r) = new_run(daemon, direction, after).await
            && r.status.is_finished()
        {
            return Ok(r);
        }
        if Instant::now() > deadline {
            let v = daemon.status().await.ok();
            bail!(
                "no {direction} finished within {}s (state {}, why: {})",
                within.as_secs(),
                v.as_ref().map(|v| v.state.clone()).unwrap_or_default(),
                v.and_then(|v| v.why).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn secs_since(t: Ts, fault: Ts) -> f64 {
    (t.as_millis() as f64 - fault.as_millis() as f64) / 1000.0
}

#[allow(clippy::too_many_arguments)]
async fn scenario(
    setup: &Setup,
    policy_path: &Path,
    world: &World,
    daemon: &Daemon,
    report: &mut Report,
    writes: &observe::WriteLog,
    t0: Instant,
) -> anyhow::Result<()> {
    let s = &setup.scenario;
    let ms = |t: Instant| t.duration_since(t0).as_secs_f64();
    until(
        daemon,
        s.steady_state.timeout,
        "the steady state (every critical probe passing, every region healthy for 3s)",
        steady,
    )
    .await?;
    witness_steady(world, s.steady_state.timeout).await?;
    // A few seconds of writes before the fault: the baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A run before any fault means the controller was fooled while the sandbox started
    // (a slow emulator, a loaded host): what follows would measure nothing real.
    if let Some(r) = daemon.runs().await.unwrap_or_default().first() {
        report.figures.unexpected_failover = true;
        bail!(
            "the controller started run {} ({} to {}) before any fault was injected: {}; the drill measures nothing after that (its decision log has the evidence)",
            r.run_id,
            r.direction,
            r.to,
            r.reason
        );
    }
    if !s.drift.is_empty() {
        return super::drift::exercise(s, world, daemon.api().await, report, t0).await;
    }

    let fault_wall = now();
    let fault_at = Instant::now();
    report.timeline.push(Mark {
        at: ms(fault_at),
        what: "fault".into(),
    });
    let epoch_before = takeover::leading_epoch(daemon).await;
    let mut faults_sorted = s.faults.clone();
    faults_sorted.sort_by_key(|f| f.at);
    // Faults that wait for a run to reach a step are watched for from the start, beside
    // the timed ones: the first timed fault may start the run, and the step may come and
    // go while the later timed ones are injected.
    let (timed, in_step): (Vec<_>, Vec<_>) = faults_sorted
        .into_iter()
        .partition(|f| f.during_step.is_none());
    // A failover answers the last group of faults (the outage after a harmless phase, the
    // primary's death after the lag): its figures count from when that group began.
    let last_at = timed.last().map(|f| f.at).unwrap_or_default();
    type Landed = (Injected, Mark, Option<takeover::Watch>);
    let inject = async |f: &super::scenario::Fault| -> anyhow::Result<Landed> {
        let region = faults::region(f.region);
        // Watched from the moment it lands (a pause returns only once it is over).
        let mut watch = None;
        if daemon.is_ha()
            && f.kind.hits_acting_controller()
            && let Some((acting, _)) = daemon.leader().await
        {
            watch = Some(takeover::follow(
                daemon,
                &acting.name,
                Instant::now(),
                Duration::from_secs(60),
            ));
        }
        let done = faults::inject(world, f, region, daemon)
            .await
            .with_context(|| format!("inject {:?} in {region}", f.kind))?;
        let mark = Mark {
            at: ms(Instant::now()),
            what: format!("fault: {} ({region})", f.kind.describe()),
        };
        Ok((done, mark, watch))
    };
    let timed_faults = async {
        let mut out = Vec::new();
        let mut last_wall = fault_wall;
        for f in &timed {
            let wait = (fault_at + f.at).saturating_duration_since(Instant::now());
            tokio::time::sleep(wait).await;
            if f.at == last_at && last_at > Duration::ZERO && last_wall == fault_wall {
                last_wall = now();
            }
            match inject(f).await {
                Ok(done) => out.push(done),
                Err(e) => return (out, last_wall, Err(e)),
            }
        }
        (out, last_wall, Ok(()))
    };
    let step_faults = async {
        let mut out = Vec::new();
        for f in &in_step {
            let step = f.during_step.as_deref().unwrap_or_default();
            if let Err(e) = takeover::wait_in_step(daemon, step, Duration::from_secs(90)).await {
                return (out, Err(e));
            }
            match inject(f).await {
                Ok(done) => out.push(done),
                Err(e) => return (out, Err(e)),
            }
        }
        (out, Ok(()))
    };
    let ((timed_done, last_wall, timed_ok), (step_done, step_ok)) =
        tokio::join!(timed_faults, step_faults);
    let mut injected: Vec<Injected> = Vec::new();
    let mut watch = None;
    for (done, mark, w) in timed_done.into_iter().chain(step_done) {
        watch = w.or(watch);
        injected.push(done);
        report.timeline.push(mark);
    }
    if let Err(e) = timed_ok.and(step_ok) {
        for f in injected {
            let _ = faults::heal(world, f).await;
        }
        return Err(e);
    }

    let origin = Origin {
        first: fault_wall,
        last: last_wall,
    };
    let result = if s.expect.failover {
        expectations(setup, world, daemon, report, writes, origin, &mut injected).await
    } else {
        let held = hold::Held {
            expect: &s.expect,
            bin: &setup.bin,
            policy: policy_path,
            world,
            daemon,
            writes,
            origin,
        };
        held.check(report).await
    };
    if daemon.is_ha() {
        let seen = match watch {
            Some(w) => Some(w.seen().await),
            None => None,
        };
        takeover::checks(&s.expect, daemon, report, seen, epoch_before).await;
    }
    // Heal whatever is still broken (the rollback's first half; the sandbox goes down after).
    for f in injected {
        let _ = faults::heal(world, f).await;
    }
    result?;
    // The steady state again, for the service as its clients see it: every critical probe
    // of the region serving now passes.
    let after = until(
        daemon,
        s.steady_state.timeout,
        "the steady state after the drill (the serving region's critical probes passing)",
        serving_region_healthy,
    )
    .await;
    report.checks.push(Assertion {
        what: "steady state after: the serving region's critical probes pass".into(),
        passed: after.is_ok(),
        detail: match &after {
            Ok(v) => format!("{} serves, healthy", v.active),
            Err(e) => format!("{e:#}"),
        },
    });
    Ok(())
}

fn serving_region_healthy(v: &StatusView) -> bool {
    let probes: Vec<_> = v
        .probes
        .iter()
        .filter(|p| p.critical && p.region == v.active)
        .collect();
    !probes.is_empty() && probes.iter().all(|p| p.ok)
}

/// When the faults began: the first (the timeline's zero) and the last group (what a
/// failover answers, and what its figures count from).
#[derive(Clone, Copy, Debug)]
struct Origin {
    pub first: Ts,
    pub last: Ts,
}

#[allow(clippy::too_many_arguments)]
async fn expectations(
    setup: &Setup,
    world: &World,
    daemon: &Daemon,
    report: &mut Report,
    writes: &observe::WriteLog,
    origin: Origin,
    injected: &mut Vec<Injected>,
) -> anyhow::Result<()> {
    let e = &setup.scenario.expect;
    let fault_wall = origin.first;
    let off = fault_offset(report);
    let at = |wall: Ts| off + secs_since(wall, fault_wall);
    if let Some(reason) = &e.blocked {
        let held = until(daemon, Duration::from_secs(60), &format!("a hold for {reason}"), |v| {
            matches!(&v.phase, crate::core::controller::Phase::Blocked { hold: r, .. } if r.label() == reason)
        })
        .await;
        report.checks.push(Assertion {
            what: format!("holds the failover for {reason} until approved"),
            passed: held.is_ok(),
            detail: match &held {
                Ok(v) => v.why.clone().unwrap_or_default(),
                Err(err) => format!("{err:#}"),
            },
        });
        held?;
        report.timeline.push(Mark {
            at: at(now()),
            what: format!("held: {reason}"),
        });
        tokio::time::sleep(e.approve_after).await;
        let body = ApproveBody {
            by: "drill".into(),
            allow_data_loss: true,
        };
        match daemon.api().await.approve(None, &body).await? {
            Reply::Accepted { .. } => {}
            other => bail!("the daemon refused the approval: {other:?}"),
        }
        report.timeline.push(Mark {
            at: at(now()),
            what: "approved (data loss accepted)".into(),
        });
    }

    let within = e.within.unwrap_or(Duration::from_secs(60));
    let fo = wait_run_end(
        daemon,
        Direction::Failover,
        fault_wall,
        within + Duration::from_secs(30),
    )
    .await;
    let fo = match fo {
        Ok(r) => r,
        Err(err) => {
            report.checks.push(Assertion {
                what: format!("fails over within {}s", within.as_secs()),
                passed: false,
                detail: format!("{err:#}"),
            });
            return Ok(());
        }
    };
    let detail = daemon.run(&fo.run_id).await?;
    spans(report, &detail, fault_wall);
    if origin.last > origin.first {
        let early = fo.created_at < origin.last;
        report.checks.push(Assertion {
            what: "does not fail over before the last fault".into(),
            passed: !early,
            detail: format!(
                "decided {:.2}s after the first fault; the last came {:.2}s after it",
                secs_since(fo.created_at, fault_wall),
                secs_since(origin.last, fault_wall)
            ),
        });
    }
    // The figures count from the faults the failover answers.
    let from = origin.last;
    let completed = fo.status == RunStatus::Completed;
    let took = fo.finished_at.map(|f| secs_since(f, from));
    report.figures.decision = Some(secs_since(fo.created_at, from));
    let down = down_since(daemon).await;
    report.figures.detection = down.map(|since| secs_since(since, from));
    if let Some(d) = down {
        report.timeline.push(Mark {
            at: at(d),
            what: "detected: down".into(),
        });
    }
    report.figures.failover = took.filter(|_| completed);
    report.timeline.push(Mark {
        at: at(fo.created_at),
        what: "decision: failover".into(),
    });
    if let Some(f) = fo.finished_at {
        report.timeline.push(Mark {
            at: at(f),
            what: format!("failover {}", fo.status),
        });
    }
    report.checks.push(Assertion {
        what: format!("fails over by itself within {}s", within.as_secs()),
        passed: completed && took.is_some_and(|t| t <= within.as_secs_f64()),
        detail: format!(
            "run {} {} after {}",
            fo.run_id,
            fo.status,
            took.map(|t| format!("{t:.2}s")).unwrap_or_default()
        ),
    });

    // Let writes land in the new region, then count what the new primary lacks.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let snapshot = writes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let loss = accounting::lost(world, fo.to.as_str(), &snapshot).await?;
    let lost_fo = loss.total();
    report.figures.lost_writes = Some(lost_fo);
    if let Some(max) = e.max_lost_writes {
        report.checks.push(Assertion {
            what: format!("at most {max} acknowledged writes lost on failover"),
            passed: lost_fo <= max,
            detail: loss.to_string(),
        });
    }
    if e.data_loss {
        report.checks.push(Assertion {
            what: "reports the data loss it was allowed".into(),
            passed: lost_fo > 0 && fo.allow_data_loss,
            detail: format!(
                "{lost_fo} acknowledged writes missing; run accepted data loss: {}",
                fo.allow_data_loss
            ),
        });
    }

    if e.failback {
        failback(setup, world, daemon, report, writes, fault_wall, injected).await?;
    }
    Ok(())
}

/// When the daemon declared the primary down, by its own clock (the primary is still
/// down when this is asked, right after the failover).
async fn down_since(daemon: &Daemon) -> Option<Ts> {
    let v = daemon.status().await.ok()?;
    v.regions
        .iter()
        .find(|r| r.region.as_str() == PRIMARY)
        .and_then(|r| match r.verdict {
            Verdict::Down { since } => Some(since),
            _ => None,
        })
}

/// Seconds from the drill's start to the fault (marks are placed relative to the fault).
fn fault_offset(report: &Report) -> f64 {
    report
        .timeline
        .iter()
        .find(|m| m.what == "fault")
        .map(|m| m.at)
        .unwrap_or(0.0)
}

fn spans(report: &mut Report, detail: &RunDetail, fault_wall: Ts) {
    let off = fault_offset(report);
    let run = detail.run.run_id.to_string();
    for st in &detail.steps {
        if let (Some(a), Some(b)) = (st.started_at, st.finished_at.or(st.started_at)) {
            report.steps.push(Span {
                run: run.clone(),
                step: st.name.clone(),
                kind: st.kind.clone(),
                start: off + secs_since(a, fault_wall),
                end: off + secs_since(b, fault_wall),
                state: st.state.to_string(),
            });
        }
    }
}

async fn failback(
    setup: &Setup,
    world: &World,
    daemon: &Daemon,
    report: &mut Report,
    writes: &observe::WriteLog,
    fault_wall: Ts,
    injected: &mut Vec<Injected>,
) -> anyhow::Result<()> {
    let e = &setup.scenario.expect;
    let off = fault_offset(report);
    let at = |wall: Ts| off + secs_since(wall, fault_wall);
    // Repair the primary region, and rejoin its database as a standby of the new primary
    // (pg_rewind): the resync a failback waits for.
    for f in injected.drain(..) {
        faults::heal(world, f).await?;
    }
    let (old, new) = (world.pg(PRIMARY)?, world.pg(SECONDARY)?);
    tokio::task::spawn_blocking(move || old.rewind_from(&new))
        .await?
        .context("rejoin the old primary as a standby (pg_rewind)")?;
    report.timeline.push(Mark {
        at: at(now()),
        what: "primary repaired and rejoined".into(),
    });
    let needed = Duration::from_secs(90);
    until(
        daemon,
        needed,
        "the primary healthy for the failback window and in sync",
        |v| {
            v.regions.iter().any(|r| {
                r.region.as_str() == PRIMARY
                    && r.in_sync == Some(true)
                    && r.verdict == Verdict::Healthy
            })
        },
    )
    .await?;
    // The daemon refuses until the primary has been healthy long enough; ask until it accepts.
    let asked = now();
    let deadline = Instant::now() + needed;
    loop {
        let body = FailbackBody {
            by: "drill".into(),
            note: "drill failback".into(),
            dry_run: false,
        };
        match daemon.api().await.failback(&body).await {
            Ok(Reply::Accepted { .. }) => break,
            _ if Instant::now() > deadline => bail!("the daemon kept refusing the failback"),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    report.timeline.push(Mark {
        at: at(now()),
        what: "failback asked".into(),
    });
    let within = e.failback_within.unwrap_or(Duration::from_secs(60));
    let fb = wait_run_end(
        daemon,
        Direction::Failback,
        asked,
        within + Duration::from_secs(30),
    )
    .await?;
    let detail = daemon.run(&fb.run_id).await?;
    spans(report, &detail, fault_wall);
    let took = fb.finished_at.map(|f| secs_since(f, fb.created_at));
    report.figures.failback = took.filter(|_| fb.status == RunStatus::Completed);
    if let Some(f) = fb.finished_at {
        report.timeline.push(Mark {
            at: at(f),
            what: format!("failback {}", fb.status),
        });
    }
    report.checks.push(Assertion {
        what: format!("fails back within {}s", within.as_secs()),
        passed: fb.status == RunStatus::Completed
            && took.is_some_and(|t| t <= within.as_secs_f64()),
        detail: format!(
            "run {} {} in {}",
            fb.run_id,
            fb.status,
            took.map(|t| format!("{t:.2}s")).unwrap_or_default()
        ),
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = writes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let failback_start = (asked.as_millis() as f64 - fault_wall.as_millis() as f64) / 1000.0 + off;
    // Writes acknowledged from the failback's start on must all be on the primary.
    let after: Vec<Write> = all
        .into_iter()
        .filter(|w| w.at as f64 / 1000.0 >= failback_start - 1.0)
        .collect();
    let lost_fb = accounting::lost(world, PRIMARY, &after).await?.total();
    report.figures.failback_lost_writes = Some(lost_fb);
    report.checks.push(Assertion {
        what: "no acknowledged write lost on the failback".into(),
        passed: lost_fb == 0,
        detail: format!(
            "{lost_fb} lost of {} acknowledged",
            after.iter().filter(|w| w.acked).count()
        ),
    });
    Ok(())
}

/// The figures the observers give: write counts, client-side RTO, split brain.
fn finish_figures(
    report: &mut Report,
    writes: &[Write],
    seen: &[Seen],
    dns: &[(u64, String)],
    writable: &observe::WritableLog,
    fault_ms: Option<f64>,
) {
    let f: &mut Figures = &mut report.figures;
    f.writes_acked = writes.iter().filter(|w| w.acked).count() as u64;
    f.writes_failed = writes.iter().filter(|w| !w.acked).count() as u64;
    f.two_writable = !writable.both_writable_at.is_empty();
    f.writable_samples = writable.samples;
    let fault = fault_ms.unwrap_or(0.0);
    if f.detection.is_none() {
        let down = seen
            .iter()
            .find(|s| s.at as f64 / 1000.0 >= fault && s.primary_verdict.starts_with("down"));
        f.detection = down.map(|s| s.at as f64 / 1000.0 - fault);
        if let Some(s) = down {
            report.timeline.push(Mark {
                at: s.at as f64 / 1000.0,
                what: format!("detected: down ({})", s.failing.join("; ")),
            });
        }
    }
    // Client-side RTO: the first failed write after the fault to the first success after it.
    let first_fail = writes
        .iter()
        .find(|w| w.at as f64 / 1000.0 >= fault && !w.acked);
    f.client_rto = first_fail.and_then(|ff| {
        writes
            .iter()
            .find(|w| w.at > ff.at && w.acked)
            .map(|ok| (ok.at - ff.at) as f64 / 1000.0)
    });
    for (at, region) in dns.iter().skip(1) {
        report.timeline.push(Mark {
            at: *at as f64 / 1000.0,
            what: format!("DNS → {region}"),
        });
    }
    report.writes = writes
        .iter()
        .map(|w| WritePoint {
            at: w.at as f64 / 1000.0 - fault,
            acked: w.acked,
        })
        .collect();
    for m in &mut report.timeline {
        m.at -= fault;
    }
    for s in &mut report.steps {
        s.start -= fault;
        s.end -= fault;
    }
    report.checks.push(Assertion {
        what: "never two writable primaries".into(),
        passed: writable.both_writable_at.is_empty() && writable.samples > 0,
        detail: format!(
            "{} of {} samples had two",
            writable.both_writable_at.len(),
            writable.samples
        ),
    });
}
