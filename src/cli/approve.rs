//! `lifeboat approve RUN_ID` and `lifeboat abort RUN_ID --reason …`: an operator's
//! decisions on a run, recorded in the journal with who made them and why.

use std::path::Path;
use std::process::ExitCode;

use std::sync::Arc;

use super::journal_args::{JournalArgs, operator};
use super::reply::{answer, finish};
use super::standalone::Standalone;
use crate::clock::WallClock;
use crate::contract::{AbortBody, ApproveBody, Reply};
use crate::core::ids::RunId;
use crate::daemon::client::Client;
use crate::driver::Request;
use crate::policy;

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
    let rt = tokio::runtime::Runtime::new()?;
    let body = ApproveBody {
        by,
        allow_data_loss: args.allow_data_loss,
    };
    let run_id = args.run_id.map(RunId);
    if let Some(client) = Client::find(&path) {
        return Ok(answer(rt.block_on(client.approve(run_id.as_ref(), &body))?));
    }
    let Some(run_id) = run_id else {
        anyhow::bail!(
            "no daemon is running, so no failover is being held back; to fail over by hand accepting the loss: lifeboat failover --allow-data-loss"
        );
    };
    // No daemon: approve here and carry the run on, holding the journal's lock.
    let Some(policy_path) = args.journal.policy_path() else {
        // Only a journal: record the approval; whoever acts on it next resumes the run.
        let journal = args.journal.open(state_dir)?;
        let steps = journal.approve(
            &run_id,
            &body.by,
            body.allow_data_loss,
            WallClock::system().now(),
        )?;
        let loss = if body.allow_data_loss {
            " Data loss accepted for the rest of the run."
        } else {
            ""
        };
        println!(
            "Approved step(s) {} of run {run_id} as {}.{loss}",
            steps.join(", "),
            body.by
        );
        println!(
            "lifeboat resumes the run at its next start on this journal (give --policy to resume it now); `lifeboat show {run_id}` follows it."
        );
        return Ok(ExitCode::SUCCESS);
    };
    let (policy, _) = policy::load_valid(&policy_path)?;
    rt.block_on(async {
        let mut here = Standalone::open(Arc::new(policy), &path, factory).await?;
        let req = Request::ApproveRun {
            run: run_id.clone(),
            by: body.by,
            allow_data_loss: body.allow_data_loss,
        };
        match here.driver.request(req) {
            Reply::Accepted { message, .. } => eprintln!("{message} (here: no daemon is running)"),
            other => return Ok(answer(other)),
        }
        let outcome = here.follow().await?;
        let run = here.driver.journal().run(&run_id)?;
        Ok(finish(&run, outcome))
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

pub fn abort(
    args: AbortArgs,
    state_dir: &Path,
    factory: &super::FactoryFn,
) -> anyhow::Result<ExitCode> {
    if args.reason.trim().is_empty() {
        anyhow::bail!("say why the run is aborted: --reason \"…\" (it goes in the audit trail)");
    }
    let by = operator(args.by)?;
    let path = args.journal.path(state_dir)?;
    let run_id = RunId(args.run_id);
    let rt = tokio::runtime::Runtime::new()?;
    if let Some(client) = Client::find(&path) {
        let body = AbortBody {
            by,
            reason: args.reason,
        };
        return Ok(answer(rt.block_on(client.abort(&run_id, &body))?));
    }
    let reason = args.reason.clone();
    let reply = match args.journal.policy_path().map(|p| policy::load_valid(&p)) {
        // The driver records the controller's decision too.
        Some(Ok((policy, _))) => rt.block_on(async {
            let mut here = Standalone::open(Arc::new(policy), &path, factory).await?;
            anyhow::Ok(here.driver.request(Request::AbortRun {
                run: run_id.clone(),
                by: by.clone(),
                reason: reason.clone(),
            }))
        })?,
        // Only a journal: abort in it directly.
        None => {
            let journal = args.journal.open(state_dir)?;
            match journal.abort(&run_id, &by, &reason, WallClock::system().now()) {
                Ok(epoch) => Reply::Accepted {
                    message: format!(
                        "run {run_id} aborted (fencing epoch now {epoch}); nothing was undone"
                    ),
                    run_id: Some(run_id.clone()),
                },
                Err(e) => Reply::refused_because(e.to_string(), None),
            }
        }
        Some(Err(e)) => return Err(e),
    };
    let code = answer(reply);
    if code == ExitCode::SUCCESS {
        println!(
            "An executor still running it stops at its next step. `lifeboat show {run_id}` lists the steps that were applied."
        );
    }
    Ok(code)
}
