//! `lifeboat probe`: run the policy's probes once (or continuously with `--watch`) and
//! show each probe's status per region and each region's verdict.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::ColorChoice;
use crate::clients::aws::AwsClients;
use crate::core::health::{HealthTracker, Observation, Snapshot, Verdict, ago};
use crate::core::model::{Component, Policy, RegionName};
use crate::core::time::Ts;
use crate::policy;
use crate::probe::scheduler::{Cadence, Scheduler};
use crate::probe::{self, Clock, Context, RegionProbe, fmt_latency};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat probe --policy policies/sandbox.toml
  lifeboat probe --policy policies/sandbox.toml --region us-west-2 --json
  lifeboat probe --policy policies/sandbox.toml --watch      # Ctrl-C to stop

Status: ok; FAIL (a critical probe failed, fewer than failure_threshold rounds in a
row); DOWN (a critical probe failed failure_threshold rounds in a row); warn (an
advisory probe failed; advisory probes never take a region down).

Exit status: 0 when every critical probe of the primary region passed its latest
round (with --region, of that region), 1 otherwise or on error, 2 on wrong usage.

AWS probes (s3, rds, heartbeats on s3/asg/ecs) use the standard credential chain.
Against moto's server (the sandbox policy's [aws] endpoint_url), export
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing.")]
pub struct Args {
    /// The service's policy file
    #[arg(long, short = 'p')]
    pub policy: PathBuf,

    /// Probe only this region
    #[arg(long)]
    pub region: Option<String>,

    /// Keep probing on the policy's interval and redraw after every round
    #[arg(long)]
    pub watch: bool,

    /// Print observations and tracker state as JSON (one document per round with --watch)
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, color: ColorChoice) -> anyhow::Result<ExitCode> {
    let (policy, report) = policy::load_valid(&args.policy)?;
    if report.warnings().next().is_some() && !args.json {
        eprint!("{}", report.render(color.stdout()));
    }
    let region = match args.region {
        Some(r) => {
            let r = RegionName(r);
            if !policy.regions.is_serving(&r) {
                let serving: Vec<&str> = policy.regions.serving().map(|r| r.as_str()).collect();
                bail!(
                    "region {r} is not one of the policy's regions ({})",
                    serving.join(", ")
                );
            }
            Some(r)
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let view = View {
        color: color.stdout(),
        json: args.json,
        judged: region
            .clone()
            .unwrap_or_else(|| policy.regions.primary.clone()),
    };
    runtime.block_on(async {
        let aws = if probe::needs_aws(&policy) {
            Some(AwsClients::from_settings(&policy.aws, policy.detection.timeout).await)
        } else {
            None
        };
        let ctx = Context::new(aws, policy.detection.timeout, policy.detection.interval);
        let probes = probe::build_all(&policy, &ctx, region.as_ref())?;
        if probes.is_empty() {
            bail!(
                "nothing to probe: no probe of the policy checks {}",
                region
                    .as_ref()
                    .map_or("any region".to_string(), |r| r.to_string())
            );
        }
        if args.watch {
            watch(&policy, probes, &view).await
        } else {
            once(&policy, probes, &view).await
        }
    })
}

/// How to show results, and which region decides the exit status.
struct View {
    color: bool,
    json: bool,
    judged: RegionName,
}

async fn once(policy: &Policy, probes: Vec<RegionProbe>, view: &View) -> anyhow::Result<ExitCode> {
    let clock = Clock::system();
    let observations = crate::probe::round(&probes, &clock).await;
    let mut tracker = HealthTracker::for_policy(policy);
    for obs in &observations {
        tracker.observe(obs.clone());
    }
    if view.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&JsonRound {
                observations: json_observations(&probes, &observations),
                health: tracker.snapshot(),
            })?
        );
    } else {
        print!(
            "{}",
            render(policy, &probes, &tracker, clock.now(), view.color)
        );
    }
    Ok(exit_status(&probes, &tracker, &view.judged))
}

async fn watch(policy: &Policy, probes: Vec<RegionProbe>, view: &View) -> anyhow::Result<ExitCode> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(probes.len().max(1) * 2);
    let clock = Clock::system();
    let scheduler = Scheduler::start(
        probes.clone(),
        Cadence::for_policy(policy),
        clock,
        tx,
        fastrand::u64(..),
    );
    let mut tracker = HealthTracker::for_policy(policy);
    let all: BTreeSet<(String, RegionName)> = probes
        .iter()
        .map(|p| (p.name.clone(), p.region.clone()))
        .collect();
    let mut fresh: BTreeSet<(String, RegionName)> = BTreeSet::new();
    let mut round: Vec<Observation> = Vec::new();
    // Redraw once every probe has reported again, or after two intervals regardless (a
    // probe that always times out still reports, so this is only a backstop).
    let backstop = policy.detection.interval.saturating_mul(2);
    let mut last_draw = tokio::time::Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            got = tokio::time::timeout(Duration::from_millis(200), rx.recv()) => {
                match got {
                    Ok(Some(obs)) => {
                        fresh.insert((obs.probe.clone(), obs.region.clone()));
                        round.push(obs.clone());
                        tracker.observe(obs);
                    }
                    Ok(None) => break,
                    Err(_) => {}
                }
            }
        }
        let due = fresh.is_superset(&all) || last_draw.elapsed() >= backstop;
        if due && !round.is_empty() {
            if view.json {
                println!(
                    "{}",
                    serde_json::to_string(&JsonRound {
                        observations: json_observations(&probes, &round),
                        health: tracker.snapshot(),
                    })?
                );
            } else {
                let mut screen = String::new();
                if view.color {
                    // Clear and home: redraw in place on a terminal.
                    screen.push_str("\x1b[2J\x1b[H");
                }
                let _ = writeln!(
                    screen,
                    "lifeboat probe · {} · {} · every {} · Ctrl-C to stop\n",
                    policy.service,
                    clock.now(),
                    crate::core::time::fmt_duration(policy.detection.interval)
                );
                screen.push_str(&render(policy, &probes, &tracker, clock.now(), view.color));
                print!("{screen}");
                if !view.color {
                    println!();
                }
            }
            fresh.clear();
            round.clear();
            last_draw = tokio::time::Instant::now();
        }
    }
    scheduler.stop().await;
    Ok(exit_status(&probes, &tracker, &view.judged))
}

#[derive(serde::Serialize, schemars::JsonSchema)]
pub(super) struct JsonRound<'a> {
    observations: Vec<JsonObservation<'a>>,
    health: Snapshot,
}

/// An observation with the component its probe stands for, as the table shows it.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub(super) struct JsonObservation<'a> {
    component: Option<Component>,
    #[serde(flatten)]
    observation: &'a Observation,
}

fn json_observations<'a>(
    probes: &[RegionProbe],
    observations: &'a [Observation],
) -> Vec<JsonObservation<'a>> {
    observations
        .iter()
        .map(|o| JsonObservation {
            component: probes
                .iter()
                .find(|p| p.name == o.probe && p.region == o.region)
                .map(|p| p.component),
            observation: o,
        })
        .collect()
}

/// 0 when every critical probe of `judged` passed its latest round, 1 otherwise
/// (including when one has not reported).
fn exit_status(probes: &[RegionProbe], tracker: &HealthTracker, judged: &RegionName) -> ExitCode {
    let passed = probes
        .iter()
        .filter(|p| p.critical && p.region == *judged)
        .all(|p| {
            tracker
                .latest(&p.name, &p.region)
                .is_some_and(|o| o.is_ok())
        });
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The table of probes, then each region's verdict.
pub fn render(
    policy: &Policy,
    probes: &[RegionProbe],
    tracker: &HealthTracker,
    now: Ts,
    color: bool,
) -> String {
    let threshold = policy.detection.failure_threshold;
    let header = [
        "COMPONENT",
        "REGION",
        "PROBE",
        "KIND",
        "STATUS",
        "LATENCY",
        "FAILS",
        "DETAIL",
        "LAST ERROR",
    ];
    let mut rows: Vec<(Vec<String>, Paint)> = Vec::new();
    for p in probes {
        let state = tracker.probe(&p.name, &p.region);
        let (status, paint) = match state {
            None => ("pending".to_string(), Paint::Dim),
            Some(s) if s.latest.is_ok() => ("ok".to_string(), Paint::Green),
            Some(_) if !p.critical => ("warn".to_string(), Paint::Yellow),
            Some(s) if s.consecutive_failures >= threshold => ("DOWN".to_string(), Paint::Red),
            Some(_) => ("FAIL".to_string(), Paint::Red),
        };
        let latency = state
            .map(|s| fmt_latency(s.latest.latency))
            .unwrap_or_default();
        let fails = state
            .map(|s| s.consecutive_failures.to_string())
            .unwrap_or_default();
        let detail = state
            .and_then(|s| s.latest.detail.clone())
            .unwrap_or_default();
        let last_error = match state.and_then(|s| s.last_failure.as_ref()) {
            Some(f) if state.is_some_and(|s| !s.latest.is_ok()) => f.reason.clone(),
            Some(f) => format!("{}: {}", ago(f.at, now), f.reason),
            None => String::new(),
        };
        let name = if p.critical {
            p.name.clone()
        } else {
            format!("{} (advisory)", p.name)
        };
        rows.push((
            vec![
                p.component.to_string(),
                p.region.to_string(),
                name,
                p.kind.to_string(),
                status,
                latency,
                fails,
                detail,
                last_error,
            ],
            paint,
        ));
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for (cells, _) in &rows {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, paint: Option<Paint>| -> String {
        let last = cells.len() - 1;
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            let padded = if i == last {
                c.clone()
            } else {
                format!("{c:<w$}  ")
            };
            match paint {
                Some(p) if i == 4 && color => s.push_str(&p.apply(&padded)),
                _ => s.push_str(&padded),
            }
        }
        s.trim_end().to_string()
    };
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let _ = writeln!(out, "{}", line(head, None));
    for (cells, paint) in rows {
        let _ = writeln!(out, "{}", line(cells, Some(paint)));
    }
    out.push('\n');
    let probed: BTreeSet<&RegionName> = probes.iter().map(|p| &p.region).collect();
    for (region, verdict) in tracker.verdicts() {
        if !probed.contains(&region) {
            continue;
        }
        let role = if region == policy.regions.primary {
            " (primary)"
        } else {
            ""
        };
        let paint = match verdict {
            Verdict::Healthy => Paint::Green,
            Verdict::Unknown => Paint::Dim,
            Verdict::Suspect { .. } | Verdict::Recovering { .. } => Paint::Yellow,
            Verdict::Down { .. } | Verdict::ObserverIsolated { .. } => Paint::Red,
        };
        let text = verdict.to_string();
        let text = if color { paint.apply(&text) } else { text };
        let _ = writeln!(out, "{:<22}{text}", format!("{region}{role}"));
    }
    out
}

#[derive(Clone, Copy, Debug)]
enum Paint {
    Green,
    Yellow,
    Red,
    Dim,
}

impl Paint {
    fn apply(self, s: &str) -> String {
        let code = match self {
            Paint::Green => "32",
            Paint::Yellow => "33",
            Paint::Red => "1;31",
            Paint::Dim => "2",
        };
        format!("\x1b[{code}m{s}\x1b[0m")
    }
}
