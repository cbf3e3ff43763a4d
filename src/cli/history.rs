//! `lifeboat history`: the runs a service's journal holds, newest first.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use super::journal_args::JournalArgs;
use crate::core::time::fmt_duration;
use crate::journal::RunRecord;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat history --policy policies/sandbox.toml
  lifeboat history --journal /var/lib/lifeboat/orders.db --limit 5
  lifeboat history --policy policies/sandbox.toml --json | jq '.[] | select(.status == \"failed\")'

`lifeboat show RUN_ID` prints one run's timeline.")]
pub struct Args {
    #[command(flatten)]
    pub journal: JournalArgs,

    /// Show at most this many runs
    #[arg(long, default_value_t = 20)]
    pub limit: usize,

    /// Print the runs as a JSON array
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
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
        if let Some(outcome) = &r.outcome {
            let _ = writeln!(out, "    end: {outcome}");
        }
    }
    out
}
