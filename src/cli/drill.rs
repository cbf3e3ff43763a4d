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
  lifeboat drill policies/drills/flapping-api.toml --repeat 100 --summary-only
  lifeboat drill policies/drills/lossy-link.toml --repeat 100 --summary-only --json
  lifeboat drill policies/drills/replica-lag.toml --out /tmp/reports --json

Each repetition starts a fresh sandbox, runs the real daemon against it with a write
load, injects the scenario's faults, checks what must (and must not) happen, fails back
when the scenario asks, and always takes the sandbox down at the end. It measures time
to detect, time to decision, each step, client-side RTO (writes failing), acknowledged
writes lost, and whether two databases were ever writable at once.

Reports go to --out: NAME-N.json, NAME-N.md and NAME-N.html (with an SVG timeline), and
with --repeat, NAME-summary.json. --summary-only (a soak) prints one line per repetition
on stderr and one table at the end (or, with --json, one summary document).
Exit status 0 only when every expectation of every repetition passed.")]
pub struct Args {
    /// The drill scenario (policies/drills/*.toml)
    pub scenario: PathBuf,

    /// The policy to drill (default: the scenario's, usually policies/sandbox.toml)
    #[arg(long, short = 'p')]
    pub policy: Option<PathBuf>,

    /// Run it this many times and report min / median / p99 / max
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,

    /// Print only the summary over all repetitions (a soak), not each report
    #[arg(long)]
    pub summary_only: bool,

    /// Where the reports go
    #[arg(long, default_value = ".lifeboat/reports")]
    pub out: PathBuf,

    /// Print JSON instead of Markdown: each report, or with --summary-only the summary
    #[arg(long)]
    pub json: bool,
}

/// What a soak prints: how often each outcome happened and how each figure spread.
#[derive(Serialize, Debug)]
pub struct Summary {
    pub drill: String,
    pub repetitions: usize,
    pub passed: usize,
    /// Repetitions in which a failover started (expected or not).
    pub failovers: usize,
    /// Repetitions in which a failover started although the drill expected none.
    pub unexpected_failovers: usize,
    /// Repetitions where the drill itself could not run (the sandbox did not start…).
    pub errors: usize,
    pub lost_writes_total: u64,
    /// Repetitions that saw two writable primaries at once.
    pub two_writable: usize,
    pub figures: Vec<(String, Option<Spread>)>,
    /// The checks that failed, with the repetition.
    pub failed_checks: Vec<String>,
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
    let total = args.repeat.max(1);
    for rep in 1..=total {
        if !args.summary_only {
            eprintln!("drill `{name}` — repetition {rep} of {total}: starting a fresh sandbox…");
        }
        let report = rt.block_on(once(&setup, rep));
        let base = args.out.join(format!("{name}-{rep}"));
        std::fs::write(
            base.with_extension("json"),
            serde_json::to_string_pretty(&report)?,
        )?;
        std::fs::write(base.with_extension("md"), report.markdown())?;
        std::fs::write(base.with_extension("html"), report.html())?;
        if args.summary_only {
            eprintln!("[{rep}/{total}] {}", report.headline());
        } else if args.json {
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
    if reports.len() > 1 || args.summary_only {
        let summary = summarize(&name, &reports);
        std::fs::write(
            args.out.join(format!("{name}-summary.json")),
            serde_json::to_string_pretty(&summary)?,
        )?;
        if args.json && args.summary_only {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else if !args.json {
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

pub fn summarize(name: &str, reports: &[Report]) -> Summary {
    let f = |get: fn(&Report) -> Option<f64>| spread(reports.iter().map(get));
    let count = |p: fn(&Report) -> bool| reports.iter().filter(|r| p(r)).count();
    Summary {
        drill: name.to_string(),
        repetitions: reports.len(),
        passed: count(|r| r.passed),
        failovers: count(|r| r.figures.decision.is_some() || r.figures.unexpected_failover),
        unexpected_failovers: count(|r| r.figures.unexpected_failover),
        errors: count(|r| r.error.is_some()),
        lost_writes_total: reports.iter().filter_map(|r| r.figures.lost_writes).sum(),
        two_writable: count(|r| r.figures.two_writable),
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
                "handover to another controller (s)".into(),
                f(|r| r.figures.handover),
            ),
            (
                "hit controller stopped acting (s)".into(),
                f(|r| r.figures.stopped_acting),
            ),
            (
                "acknowledged writes lost (failback)".into(),
                f(|r| r.figures.failback_lost_writes.map(|n| n as f64)),
            ),
        ],
        failed_checks: reports
            .iter()
            .flat_map(|r| {
                let checks = r
                    .checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(move |c| format!("#{}: {} — {}", r.repetition, c.what, c.detail));
                let error = r
                    .error
                    .iter()
                    .map(move |e| format!("#{}: the drill failed: {e}", r.repetition));
                checks.chain(error)
            })
            .collect(),
    }
}

pub fn summary_table(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## `{}` over {} repetitions: {} passed\n",
        s.drill, s.repetitions, s.passed
    );
    let _ = writeln!(
        out,
        "failovers: {} (unexpected: {}); acknowledged writes lost in all: {}; two writable primaries: {} repetition(s); drill errors: {}\n",
        s.failovers, s.unexpected_failovers, s.lost_writes_total, s.two_writable, s.errors
    );
    let _ = writeln!(
        out,
        "| figure | min | median | p99 | max | n |\n|---|---|---|---|---|---|"
    );
    for (name, v) in &s.figures {
        match v {
            Some(v) => {
                let _ = writeln!(
                    out,
                    "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                    v.min, v.median, v.p99, v.max, v.n
                );
            }
            None => {
                let _ = writeln!(out, "| {name} | — | — | — | — | 0 |");
            }
        }
    }
    if !s.failed_checks.is_empty() {
        let _ = writeln!(out, "\nFailed:");
        for c in &s.failed_checks {
            let _ = writeln!(out, "- {c}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::report::{Assertion, Figures};

    fn rep(n: u32, passed: bool, decision: Option<f64>, unexpected: bool) -> Report {
        Report {
            drill: "d".into(),
            repetition: n,
            passed,
            figures: Figures {
                decision,
                unexpected_failover: unexpected,
                lost_writes: Some(if unexpected { 7 } else { 0 }),
                ..Figures::default()
            },
            checks: vec![Assertion {
                what: "does not fail over".into(),
                passed,
                detail: "x".into(),
            }],
            ..Report::default()
        }
    }

    #[test]
    fn a_soak_summary_counts_failovers_and_names_the_repetitions_that_failed() {
        let reports = vec![
            rep(1, true, None, false),
            rep(2, false, Some(1.2), true),
            rep(3, true, None, false),
        ];
        let s = summarize("flapping-api", &reports);
        assert_eq!((s.repetitions, s.passed), (3, 2));
        assert_eq!((s.failovers, s.unexpected_failovers), (1, 1));
        assert_eq!(s.lost_writes_total, 7);
        assert_eq!(
            s.failed_checks,
            vec!["#2: does not fail over — x".to_string()]
        );
        let table = summary_table(&s);
        assert!(table.contains("failovers: 1 (unexpected: 1)"), "{table}");
        assert!(
            table.contains("| time to decision (s) | 1.20 | 1.20 | 1.20 | 1.20 | 1 |"),
            "{table}"
        );
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["unexpected_failovers"], 1);
        assert_eq!(json["figures"][1][1]["p99"], 1.2);
    }
}
