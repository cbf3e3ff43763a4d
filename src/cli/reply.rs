//! How an operator command ends: a reply printed with what to do next, a confirmation
//! asked before production changes, a run's outcome and the exit status that goes with it.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::bail;

use super::render_plan;
use crate::contract::Reply;
use crate::core::plan::Plan;
use crate::journal;
use crate::runbook::RunOutcome;

/// Prints a reply; exit 1 when it refused.
pub fn answer(reply: Reply) -> ExitCode {
    match reply {
        Reply::Accepted { message, .. } => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Reply::Preview { plan } => {
            print!("{}", render_plan(&plan, true));
            ExitCode::SUCCESS
        }
        Reply::Refused {
            message, next_step, ..
        } => {
            eprintln!("refused: {message}");
            if let Some(n) = next_step {
                eprintln!("  next: {n}");
            }
            ExitCode::from(1)
        }
    }
}

/// Asks before touching production, unless `--yes`. Without a terminal to ask on, refuses.
pub fn confirm(plan: &Plan, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to {} without confirmation: run it on a terminal, or add --yes",
            plan.direction
        );
    }
    eprint!(
        "\nThis {} changes production. Type the target region ({}) to go on: ",
        plan.direction, plan.to
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != plan.to.as_str() {
        bail!("not confirmed; nothing was changed");
    }
    Ok(())
}

/// How a run ended, for the operator; exit 0 only when it completed.
pub fn finish(run: &journal::RunRecord, outcome: RunOutcome) -> ExitCode {
    let id = &run.run_id;
    match outcome {
        RunOutcome::Completed => {
            let took = crate::core::time::fmt_duration(run.duration());
            eprintln!(
                "\n{} {id} completed in {took}: {} serves now",
                run.direction, run.to
            );
            return ExitCode::SUCCESS;
        }
        RunOutcome::AwaitingApproval(steps) => {
            for (s, why) in steps {
                eprintln!("\nwaiting: step {s}: {why}");
            }
            eprintln!("  next: lifeboat approve {id} (or lifeboat abort {id} --reason …)");
        }
        RunOutcome::Failed(steps) => {
            for (s, why) in steps {
                eprintln!("\nfailed: step {s}: {why}");
            }
            eprintln!(
                "  next: lifeboat show {id} for the whole story; fix the cause, then run the command again"
            );
        }
        other => eprintln!("\nthe run stopped: {other:?}; lifeboat show {id}"),
    }
    ExitCode::from(1)
}
