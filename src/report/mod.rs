//! The report of one real run (failover or failback), written when it ends: what
//! started it and the evidence, the timeline, every step's attempts with durations and
//! errors, the approvals and the fencing epoch. JSON for machines, Markdown for tickets,
//! HTML with a step timeline for people; beside the journal, and in the reports bucket
//! when the policy names one. `lifeboat show RUN --report` writes it again from the
//! journal, which holds everything it says.

pub mod render;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::controller::Decision;
use crate::core::ids::RunId;
use crate::core::plan::Plan;
use crate::core::reason::{Hold, Note, Reason};
use crate::core::step::AttemptPhase;
use crate::core::time::Ts;
use crate::journal::{
    ApprovalRecord, AuditRecord, Journal, JournalError, RunDetail, RunRecord, StepRecord,
};

/// Everything a run's report says.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    pub generated_at: Ts,
    pub run: RunRecord,
    /// The plan it ran (stages, bindings, trigger), when its format is readable.
    pub plan: Option<Plan>,
    /// The controller's decisions about this run, oldest first: the one that started it
    /// (with its evidence) and every later one that names it.
    pub decisions: Vec<Decision>,
    pub timeline: Vec<Event>,
    pub steps: Vec<StepRecord>,
    pub approvals: Vec<ApprovalRecord>,
    pub audit: Vec<AuditRecord>,
}

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: Ts,
    pub what: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// How many decisions are searched for the ones about a run.
const DECISIONS: usize = 2000;

/// Builds the report of `run` from the journal.
///
/// Errors: the journal's (an unknown run among them).
pub fn build(journal: &Journal, run: &RunId, now: Ts) -> Result<RunReport, JournalError> {
    let detail = journal.detail(run)?;
    let mut all = journal.decisions(&detail.run.service, DECISIONS)?;
    all.reverse();
    Ok(assemble(detail, &all, now))
}

/// The report from what the journal holds (pure, for tests).
pub fn assemble(d: RunDetail, decisions: &[Decision], now: Ts) -> RunReport {
    let id = &d.run.run_id;
    let started = decisions
        .iter()
        .position(|x| matches!(&x.reason, Reason::Note(Note::RunStarted { run, .. }) if run == id));
    let mut mine: Vec<Decision> = Vec::new();
    // The decision that asked for the run: the trigger just before its start.
    if let Some(i) = started
        && let Some(prev) = i.checked_sub(1).and_then(|j| decisions.get(j))
        && matches!(prev.reason, Reason::Trigger(_))
    {
        mine.push(prev.clone());
    }
    mine.extend(
        decisions
            .iter()
            .filter(|x| names_run(&x.reason, id))
            .cloned(),
    );
    let timeline = timeline(&d, &mine);
    RunReport {
        generated_at: now,
        run: d.run,
        plan: d.plan,
        decisions: mine,
        timeline,
        steps: d.steps,
        approvals: d.approvals,
        audit: d.audit,
    }
}

/// Whether a decision is about `run`.
fn names_run(reason: &Reason, id: &RunId) -> bool {
    match reason {
        Reason::Note(
            Note::RunStarted { run, .. }
            | Note::RunResumed { run, .. }
            | Note::RunCompleted { run, .. }
            | Note::StaleResult { run }
            | Note::Notice { run, .. },
        ) => run == id,
        Reason::Hold(
            Hold::RunFailed { run, .. }
            | Hold::RunAborted { run, .. }
            | Hold::AwaitingApproval { run, .. },
        ) => run == id,
        _ => false,
    }
}

fn timeline(d: &RunDetail, decisions: &[Decision]) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for x in decisions {
        out.push(Event {
            at: x.at,
            what: format!("decision: {}", x.summary),
            detail: x.reason.to_string(),
        });
    }
    for a in &d.audit {
        out.push(Event {
            at: a.at,
            what: a.action.replace('_', " "),
            detail: format!("{} — {}", a.actor, a.detail),
        });
    }
    for s in &d.steps {
        for a in &s.attempts {
            if a.phase == AttemptPhase::Verify && a.outcome.is_some() {
                // One line per verification series, at its end, not per observation.
                continue;
            }
            let outcome = match a.outcome {
                Some(o) => o.to_string().replace('_', " "),
                None => "interrupted".to_string(),
            };
            out.push(Event {
                at: a.started_at,
                what: format!("{} {} #{}: {outcome}", s.name, a.phase, a.attempt),
                detail: a.detail.clone().unwrap_or_default(),
            });
        }
        if let (Some(end), Some(_)) = (s.finished_at, s.started_at) {
            out.push(Event {
                at: end,
                what: format!("step {} {}", s.name, s.state),
                detail: s.detail.clone().unwrap_or_default(),
            });
        }
    }
    for a in &d.approvals {
        let loss = if a.allow_data_loss {
            ", data loss accepted"
        } else {
            ""
        };
        out.push(Event {
            at: a.at,
            what: format!("approved `{}` by {}{loss}", a.step, a.approved_by),
            detail: String::new(),
        });
    }
    // Stable: events at the same millisecond keep the order above.
    out.sort_by_key(|e| e.at);
    out
}

/// Where a service's run reports live beside its journal: `<dir>/reports/<service>/`.
pub fn dir_beside(journal: &Path, service: &str) -> PathBuf {
    journal
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("reports")
        .join(service)
}

/// The three files of a report, as `(extension, content)`.
pub fn files(r: &RunReport) -> Vec<(&'static str, String)> {
    vec![
        (
            "json",
            serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")),
        ),
        ("md", render::markdown(r)),
        ("html", render::html(r)),
    ]
}

/// Writes the report's three files into `dir` (atomically each). Returns their paths.
pub fn write(r: &RunReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for (ext, content) in files(r) {
        let path = dir.join(format!("{}.{ext}", r.run.run_id));
        crate::clients::files::write_atomic(&path, content.as_bytes(), 0o644)?;
        out.push(path);
    }
    Ok(out)
}
