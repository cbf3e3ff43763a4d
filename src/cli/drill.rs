//! `lifeboat drill FILE`: a game day in one command, with its evidence written out.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::drill::report::{Report, Spread, spread};
use crate::drill::run::{Setup, once};
use crate::drill::scenario::Scenario;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat drill policies/drills/region-outage.toml
  lifeboat drill policies/drills/region-outage.toml --repeat 10
  lifeboat drill policies/drills/replica-lag.toml --out /tmp/reports --json

Each repetition starts a fresh sandbox, runs the real daemon against it with a write
load, injects the scenario's faults, checks what must (and must not) happen, fails back
when the scenario asks, and always takes the sandbox down at the end. It measures time
to detect, time to decision, each step, client-side RTO (writes failing), acknowledged
writes lost, and whether two databases were ever writable at once.

Reports go to --out: NAME-N.json, NAME-N.md and NAME-N.html (with an SVG timeline).
Exit status 0 only when every expectation of every repetition passed.")]
pub struct Args {
    /// The drill scenario (policies/drills/*.toml)
    pub scenario: PathBuf,

    /// The policy to drill (default: the scenario's, usually policies/sandbox.toml)
    #[arg(long, short = 'p')]
    pub policy: Option<PathBuf>,

    /// Run it this many times and report min / median / max
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,

    /// Where the reports go
    #[arg(long, default_value = ".lifeboat/reports")]
    pub out: PathBuf,

    /// Print the reports as JSON instead of Markdown
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Summary<'a> {
    drill: &'a str,
    repetitions: usize,
    passed: usize,
    figures: Vec<(String, Option<Spread>)>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let scenario = Scenario::load(&args.scenario)?;
    let policy = args
        .policy
        .clone()
        .unwrap_or_else(|| scenario.policy_path(&args.scenario));
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let setup = Setup {
        policy,
        bin: std::env::current_exe().context("find the lifeboat binary")?,
        logs: args.out.clone(),
        scenario,
    };
    let name = setup.scenario.drill.name.clone();
    let rt = tokio::runtime::Runtime::new()?;
    let mut reports = Vec::new();
    for rep in 1..=args.repeat.max(1) {
        eprintln!(
            "drill `{name}` — repetition {rep} of {}: starting a fresh sandbox…",
            args.repeat.max(1)
        );
        let report = rt.block_on(once(&setup, rep));
        let base = args.out.join(format!("{name}-{rep}"));
        std::fs::write(
            base.with_extension("json"),
            serde_json::to_string_pretty(&report)?,
        )?;
        std::fs::write(base.with_extension("md"), report.markdown())?;
        std::fs::write(base.with_extension("html"), report.html())?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!("{}", report.markdown());
            println!("{}", report.headline());
            println!("report: {}", base.with_extension("html").display());
            if let Some(j) = &report.journal {
                println!("journal: {j} (lifeboat history --journal {j} --decisions)");
            }
        }
        reports.push(report);
    }
    if reports.len() > 1 {
        let summary = summarize(&name, &reports);
        std::fs::write(
            args.out.join(format!("{name}-summary.json")),
            serde_json::to_string_pretty(&summary)?,
        )?;
        if !args.json {
            println!("{}", summary_table(&summary));
        }
    }
    let passed = reports.iter().all(|r| r.passed);
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn summarize<'a>(name: &'a str, reports: &[Report]) -> Summary<'a> {
    let f = |get: fn(&Report) -> Option<f64>| spread(reports.iter().map(get));
    Summary {
        drill: name,
        repetitions: reports.len(),
        passed: reports.iter().filter(|r| r.passed).count(),
        figures: vec![
            ("time to detect (s)".into(), f(|r| r.figures.detection)),
            ("time to decision (s)".into(), f(|r| r.figures.decision)),
            ("failover completed (s)".into(), f(|r| r.figures.failover)),
            ("client-side RTO (s)".into(), f(|r| r.figures.client_rto)),
            (
                "acknowledged writes lost (failover)".into(),
                f(|r| r.figures.lost_writes.map(|n| n as f64)),
            ),
            ("failback (s)".into(), f(|r| r.figures.failback)),
            (
                "acknowledged writes lost (failback)".into(),
                f(|r| r.figures.failback_lost_writes.map(|n| n as f64)),
            ),
        ],
    }
}

fn summary_table(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## `{}` over {} repetitions: {} passed\n",
        s.drill, s.repetitions, s.passed
    );
    let _ = writeln!(
        out,
        "| figure | min | median | max | n |\n|---|---|---|---|---|"
    );
    for (name, v) in &s.figures {
        match v {
            Some((min, med, max, n)) => {
                let _ = writeln!(out, "| {name} | {min:.2} | {med:.2} | {max:.2} | {n} |");
            }
            None => {
                let _ = writeln!(out, "| {name} | — | — | — | 0 |");
            }
        }
    }
    out
}
