//! `lifeboat show RUN_ID`: one run's timeline — who started it and why, every step with
//! its attempts, durations and errors, approvals, and the audit trail.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use super::journal_args::JournalArgs;
use crate::core::ids::RunId;
use crate::core::step::{AttemptOutcome, AttemptPhase};
use crate::core::time::{Ts, fmt_duration};
use crate::journal::{AttemptRecord, RunDetail, StepRecord};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat show fo-20261123-153012-7f3a --policy policies/sandbox.toml
  lifeboat show fo-20261123-153012-7f3a --journal /var/lib/lifeboat/orders.db --json | jq '.steps[] | {name, state}'

Times of attempts are offsets from the run's start. An attempt marked `interrupted`
was in flight when the process stopped; the run's next executor checked the step again
before doing anything.")]
pub struct Args {
    /// The run (see `lifeboat history`)
    pub run_id: String,

    #[command(flatten)]
    pub journal: JournalArgs,

    /// Print everything the journal holds about the run as one JSON document
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let journal = args.journal.open(state_dir)?;
    let detail = journal.detail(&RunId(args.run_id))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
    } else {
        print!("{}", render_run(&detail));
    }
    Ok(ExitCode::SUCCESS)
}

/// The run as an operator reads it.
pub fn render_run(d: &RunDetail) -> String {
    let r = &d.run;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Run {} · {} of `{}`: {} → {}",
        r.run_id, r.direction, r.service, r.from, r.to
    );
    let status = match r.finished_at {
        Some(end) => format!(
            "{} at {end} (took {})",
            r.status,
            fmt_duration(r.duration())
        ),
        None => format!(
            "{} (last update {}, {} after the start)",
            r.status,
            r.updated_at,
            fmt_duration(r.duration())
        ),
    };
    let field = |s: &mut String, name: &str, value: &str| {
        let _ = writeln!(s, "  {name:<10} {value}");
    };
    field(&mut s, "status", &status);
    field(
        &mut s,
        "started",
        &format!("{} by {}", r.created_at, r.started_by),
    );
    field(&mut s, "why", &r.reason);
    if let Some(outcome) = &r.outcome {
        field(&mut s, "outcome", outcome);
    }
    field(&mut s, "epoch", &r.epoch.to_string());
    field(
        &mut s,
        "data loss",
        if r.allow_data_loss {
            "accepted"
        } else {
            "not accepted"
        },
    );

    if let Some(outcome) = &r.ended_by {
        field(&mut s, "ended by", outcome);
    }
    // Stages from the journal's step records, labelled from the plan when it is readable.
    let last = d.steps.iter().map(|x| x.stage).max().unwrap_or(0);
    for n in 1..=last {
        let steps: Vec<_> = d.steps.iter().filter(|x| x.stage == n).collect();
        let parallel = if steps.len() > 1 {
            " — in parallel"
        } else {
            ""
        };
        let label = d
            .plan
            .as_ref()
            .and_then(|p| p.stages.get((n - 1) as usize))
            .and_then(|st| st.label.as_deref())
            .map(|l| format!(" · {l}"))
            .unwrap_or_default();
        let _ = writeln!(s, "\nStage {n}{label}{parallel}");
        for step in steps {
            render_step(&mut s, step, r.created_at);
        }
    }

    if !d.approvals.is_empty() {
        let _ = writeln!(s, "\nApprovals");
        for a in &d.approvals {
            let loss = if a.allow_data_loss {
                ", data loss accepted"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  {}  {} approved `{}`{loss}",
                a.at, a.approved_by, a.step
            );
        }
    }

    let _ = writeln!(s, "\nAudit trail");
    for a in &d.audit {
        let epoch = a.epoch.map(|e| format!("epoch {e}")).unwrap_or_default();
        let _ = writeln!(s, "  {}  {:<16} {:<9} {}", a.at, a.action, epoch, a.actor);
        let _ = writeln!(s, "      {}", a.detail);
    }
    s
}

fn render_step(s: &mut String, step: &StepRecord, run_start: Ts) {
    let took = match (step.started_at, step.finished_at) {
        (Some(a), Some(b)) => format!("took {}", fmt_duration(b.since(a))),
        (Some(_), None) => "unfinished".to_string(),
        _ => "not started".to_string(),
    };
    let _ = writeln!(
        s,
        "  {}  {}  {took}  [{} in {}]",
        step.name, step.state, step.kind, step.region
    );
    for a in &step.attempts {
        render_attempt(s, a, run_start);
    }
    if let Some(detail) = &step.detail {
        let class = step
            .error_class
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        let _ = writeln!(s, "      → {detail}{class}");
    }
}

fn render_attempt(s: &mut String, a: &AttemptRecord, run_start: Ts) {
    let offset = format!("+{}", fmt_duration(a.started_at.since(run_start)));
    let label = match a.phase {
        AttemptPhase::Verify => format!("{} obs.", a.attempt),
        AttemptPhase::Compensate => String::new(),
        _ => format!("#{}", a.attempt),
    };
    let outcome = match (a.phase, a.outcome) {
        (_, None) => "interrupted".to_string(),
        (AttemptPhase::Check, Some(AttemptOutcome::Done)) => "in place".to_string(),
        (AttemptPhase::Check, Some(AttemptOutcome::NotDone)) => "not in place".to_string(),
        (_, Some(AttemptOutcome::Error)) => match a.error_class {
            Some(c) => format!("error ({c})"),
            None => "error".to_string(),
        },
        (_, Some(o)) => o.to_string().replace('_', " "),
    };
    let took = match a.finished_at {
        Some(end) => fmt_duration(end.since(a.started_at)),
        None => "—".to_string(),
    };
    let detail = match (&a.detail, a.outcome) {
        (Some(d), _) => d.clone(),
        (None, None) => "the process stopped during this attempt".to_string(),
        (None, Some(_)) => String::new(),
    };
    let line = format!(
        "      {offset:>8}  {:<10} {label:<8} {outcome:<20} {took:>6}  epoch {}  {detail}",
        a.phase.to_string(),
        a.epoch
    );
    let _ = writeln!(s, "{}", line.trim_end());
}
