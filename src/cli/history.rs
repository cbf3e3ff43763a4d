//! `lifeboat history`: the runs a service's journal holds, newest first; with
//! `--decisions`, the controller's decisions and the evidence behind each.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use super::journal_args::JournalArgs;
use crate::core::controller::Decision;
use crate::core::time::fmt_duration;
use crate::journal::RunRecord;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat history --policy policies/sandbox.toml
  lifeboat history --journal /var/lib/lifeboat/orders.db --limit 5
  lifeboat history --policy policies/sandbox.toml --json | jq '.[] | select(.status == \"failed\")'
  lifeboat history --decisions                     # why it did, or did not, fail over
  lifeboat history --decisions --json | jq '.[0].evidence'

`lifeboat show RUN_ID` prints one run's timeline. With --decisions, each decision (a run
started, a hold and the guardrail behind it, a recovery, a notice) is listed with its
evidence: the failing probes and their errors, which observers voted, the replica lag.")]
pub struct Args {
    #[command(flatten)]
    pub journal: JournalArgs,

    /// Show at most this many runs
    #[arg(long, default_value_t = 20)]
    pub limit: usize,

    /// List the controller's decisions with their evidence instead of the runs
    #[arg(long)]
    pub decisions: bool,

    /// Print a JSON array
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    if args.decisions {
        return decisions(&args, state_dir);
    }
    let journal = args.journal.open(state_dir)?;
    let runs = journal.runs(args.limit)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else if runs.is_empty() {
        println!("No runs recorded in {} yet.", journal.path().display());
    } else {
        print!("{}", render_history(&runs));
    }
    Ok(ExitCode::SUCCESS)
}

/// The runs as a table, each followed by why it started and how it ended.
pub fn render_history(runs: &[RunRecord]) -> String {
    let rows: Vec<[String; 7]> = runs
        .iter()
        .map(|r| {
            [
                r.run_id.to_string(),
                r.direction.to_string(),
                format!("{} → {}", r.from, r.to),
                r.status.to_string(),
                r.created_at.to_string(),
                fmt_duration(r.duration()),
                r.started_by.clone(),
            ]
        })
        .collect();
    let header = [
        "RUN",
        "DIRECTION",
        "FROM → TO",
        "STATUS",
        "STARTED",
        "TOOK",
        "STARTED BY",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut s = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                s.push_str(cell);
            } else {
                let pad = w - cell.chars().count();
                let _ = write!(s, "{cell}{}  ", " ".repeat(pad));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", line(&mut header.iter().copied()));
    for (row, r) in rows.iter().zip(runs) {
        let _ = writeln!(out, "{}", line(&mut row.iter().map(String::as_str)));
        let _ = writeln!(out, "    why: {}", r.reason);
        match (&r.ended_by, &r.outcome) {
            (Some(by), Some(outcome)) => {
                let _ = writeln!(out, "    end: aborted by {by}: {outcome}");
            }
            (None, Some(outcome)) => {
                let _ = writeln!(out, "    end: {outcome}");
            }
            _ => {}
        }
    }
    out
}

/// `--decisions`: from the daemon when one runs (the same journal), else the journal.
fn decisions(args: &Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let path = args.journal.path(state_dir)?;
    let list = match crate::daemon::client::Client::find(&path) {
        Some(c) => tokio::runtime::Runtime::new()?.block_on(c.decisions(args.limit))?,
        None => {
            let journal = args.journal.open(state_dir)?;
            let service = match args.journal.policy_path() {
                Some(_) => Some(args.journal.service()?),
                None => None,
            };
            journal.decisions_of(service.as_deref(), args.limit)?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if list.is_empty() {
        println!("No decisions recorded in {} yet.", path.display());
    } else {
        print!("{}", render_decisions(&list));
    }
    Ok(ExitCode::SUCCESS)
}

/// Decisions, newest first, each with its evidence.
pub fn render_decisions(list: &[Decision]) -> String {
    let mut out = String::new();
    for d in list {
        let _ = writeln!(out, "{}  {:<24} {}", d.at, d.reason.label(), d.summary);
        let _ = writeln!(out, "    why: {}", d.reason);
        for line in d.evidence.lines() {
            let _ = writeln!(out, "    {line}");
        }
        if let Some(n) = d.reason.next_step() {
            let _ = writeln!(out, "    next: {n}");
        }
    }
    out
}
