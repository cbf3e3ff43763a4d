//! `lifeboat approve RUN_ID` and `lifeboat abort RUN_ID --reason …`: an operator's
//! decisions on a run, recorded in the journal with who made them and why.

use std::path::Path;
use std::process::ExitCode;

use super::client::Client;
use super::journal_args::{JournalArgs, operator};
use crate::core::ids::RunId;
use crate::daemon::engine::Reply;
use crate::runbook::system_clock;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat approve fo-20261123-153012-7f3a --policy policies/sandbox.toml
  lifeboat approve fo-20261123-153012-7f3a --policy policies/sandbox.toml --allow-data-loss --by alice

A run pauses at a manual_approval step, or when a guardrail asks for a human (e.g.
replica lag above the RPO budget). Approving records who approved and lets the run go
on: lifeboat resumes it at its next start on this journal. --allow-data-loss accepts
losing writes not yet replicated for the rest of the run.")]
pub struct ApproveArgs {
    /// The run waiting for approval (see `lifeboat status`); leave it out to approve a
    /// failover the daemon holds back (e.g. replica lag over the RPO budget)
    pub run_id: Option<String>,

    /// Accept losing writes not yet replicated (lets an RPO-gated promotion proceed)
    #[arg(long)]
    pub allow_data_loss: bool,

    /// Who approves (default: $USER)
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,

    #[command(flatten)]
    pub journal: JournalArgs,
}

pub fn approve(
    args: ApproveArgs,
    state_dir: &Path,
    factory: &super::FactoryFn,
) -> anyhow::Result<ExitCode> {
    let by = operator(args.by)?;
    let path = args.journal.path(state_dir)?;
    if let Some(client) = Client::find(&path) {
        let (url, body) = match &args.run_id {
            Some(id) => (
                format!("/v1/runs/{id}/approve"),
                serde_json::json!({"by": by, "allow_data_loss": args.allow_data_loss}),
            ),
            None => (
                "/v1/approve".to_string(),
                serde_json::json!({"by": by, "allow_data_loss": args.allow_data_loss}),
            ),
        };
        return answer(tokio::runtime::Runtime::new()?.block_on(client.post(&url, &body))?);
    }
    let Some(run_id) = args.run_id else {
        anyhow::bail!(
            "no daemon is running, so no failover is being held back; to fail over by hand accepting the loss: lifeboat failover --allow-data-loss"
        );
    };
    let journal = args.journal.open(state_dir)?;
    let run_id = RunId(run_id);
    let steps = journal.approve(&run_id, &by, args.allow_data_loss, system_clock()())?;
    let loss = if args.allow_data_loss {
        " Data loss accepted for the rest of the run."
    } else {
        ""
    };
    println!(
        "Approved step(s) {} of run {run_id} as {by}.{loss}",
        steps.join(", ")
    );
    // No daemon: carry the run on from here, holding the journal's lock.
    let Some(policy_path) = &args.journal.policy else {
        println!(
            "lifeboat resumes the run at its next start on this journal (give --policy to resume it now); `lifeboat show {run_id}` follows it."
        );
        return Ok(ExitCode::SUCCESS);
    };
    super::control::resume_run(policy_path, &path, journal, &run_id, factory)
}

/// A daemon's answer, printed; exit 1 when it refused.
fn answer(reply: Reply) -> anyhow::Result<ExitCode> {
    Ok(match reply {
        Reply::Accepted { message, .. } => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Reply::Refused { message, next_step } => {
            eprintln!("refused: {message}");
            if let Some(n) = next_step {
                eprintln!("  next: {n}");
            }
            ExitCode::from(1)
        }
    })
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat abort fo-20261123-153012-7f3a --reason \"primary came back; failing over is no longer needed\" --policy policies/sandbox.toml

Aborting ends the run and records why. It undoes nothing: steps already applied stay
applied (`lifeboat show RUN_ID` lists them). The fencing epoch is raised, so an executor
still running the run stops at its next journal write.")]
pub struct AbortArgs {
    /// The unfinished run to end
    pub run_id: String,

    /// Why, for the audit trail
    #[arg(long)]
    pub reason: String,

    /// Who aborts (default: $USER)
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,

    #[command(flatten)]
    pub journal: JournalArgs,
}

pub fn abort(args: AbortArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    if args.reason.trim().is_empty() {
        anyhow::bail!("say why the run is aborted: --reason \"…\" (it goes in the audit trail)");
    }
    let by = operator(args.by)?;
    let path = args.journal.path(state_dir)?;
    if let Some(client) = Client::find(&path) {
        let body = serde_json::json!({"by": by, "reason": args.reason});
        let url = format!("/v1/runs/{}/abort", args.run_id);
        return answer(tokio::runtime::Runtime::new()?.block_on(client.post(&url, &body))?);
    }
    let journal = args.journal.open(state_dir)?;
    let run_id = RunId(args.run_id);
    let epoch = journal.abort(&run_id, &by, &args.reason, system_clock()())?;
    println!(
        "Aborted run {run_id} as {by}: {}\nFencing epoch raised to {epoch}: an executor still running it stops at its next step. \
         Nothing was undone; `lifeboat show {run_id}` lists the steps that were applied.",
        args.reason
    );
    Ok(ExitCode::SUCCESS)
}
