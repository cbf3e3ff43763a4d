//! `command`: run an operator's program as a step. Its environment names the run
//! (`LIFEBOAT_RUN_ID`, `LIFEBOAT_EPOCH`, `LIFEBOAT_DIRECTION`, `LIFEBOAT_FROM`,
//! `LIFEBOAT_TO`, `LIFEBOAT_REGION`, `LIFEBOAT_STEP`, `LIFEBOAT_SERVICE`) beside the
//! basic environment and what `[commands] pass_env` names, and nothing else of
//! lifeboat's (no API token, no AWS credentials, no secret). It runs through
//! `clients::subprocess`, in its own process group, killed whole at the step's deadline.

use async_trait::async_trait;

use crate::clients::subprocess::{self, Program, SpawnError};
use crate::probe::snippet_lines;
use crate::runbook::{Applied, Check, Step, StepCtx, StepError, Verify};

/// Runs a program; exit status 0 is success.
///
/// Guarantees: the program and everything it started are killed (SIGKILL to the
/// process group) when the step's deadline passes or the executor abandons the call.
/// Assumptions: the program is idempotent. lifeboat cannot know whether its effect is
/// in place, so `check` always says "not done", and a resumed run may run it again;
/// `LIFEBOAT_RUN_ID` and `LIFEBOAT_EPOCH` let it recognise a repeat (and refuse a stale
/// epoch).
/// Errors: fatal on a non-zero exit (with the last lines it wrote to stderr), when it
/// cannot start, or when it outlives the deadline.
pub struct Command {
    run: Vec<String>,
    pass_env: Vec<String>,
}

impl Command {
    /// `pass_env`: the variables of lifeboat's environment the program may see
    /// (`[commands] pass_env`).
    pub fn new(run: Vec<String>, pass_env: Vec<String>) -> Command {
        Command { run, pass_env }
    }

    fn shown(&self) -> String {
        self.run.join(" ")
    }
}

#[async_trait]
impl Step for Command {
    async fn check(&self, _ctx: &StepCtx) -> Result<Check, StepError> {
        Ok(Check::NotDone(format!(
            "`{}` is run every time (commands must be idempotent)",
            self.shown()
        )))
    }

    async fn apply(&self, ctx: &StepCtx) -> Result<Applied, StepError> {
        let program = Program {
            run: &self.run,
            vars: vec![
                ("LIFEBOAT_RUN_ID", ctx.run_id.0.clone()),
                ("LIFEBOAT_EPOCH", ctx.epoch.0.to_string()),
                ("LIFEBOAT_DIRECTION", ctx.direction.as_str().to_string()),
                ("LIFEBOAT_FROM", ctx.from.as_str().to_string()),
                ("LIFEBOAT_TO", ctx.to.as_str().to_string()),
                ("LIFEBOAT_REGION", ctx.region.as_str().to_string()),
                ("LIFEBOAT_STEP", ctx.step.clone()),
                ("LIFEBOAT_SERVICE", ctx.service.clone()),
            ],
            pass: &self.pass_env,
        };
        // Dropping the call at the deadline kills the whole process group.
        let out = match tokio::time::timeout_at(ctx.deadline, subprocess::run(&program)).await {
            Err(_) => {
                return Err(StepError::fatal(format!(
                    "`{}` did not finish before the step's deadline and was killed with its process group",
                    self.shown()
                )));
            }
            Ok(Err(SpawnError::Start { source, .. })) => {
                return Err(StepError::fatal(format!(
                    "could not start `{}`: {source}; check the step's `run` in the policy",
                    self.shown()
                )));
            }
            Ok(Err(e)) => {
                return Err(StepError::fatal(format!("`{}`: {e}", self.shown())));
            }
            Ok(Ok(out)) => out,
        };
        let (stdout, stderr) = (&out.stdout, &out.stderr);
        if out.status.success() {
            let said = snippet_lines(stdout, 1).or_else(|| snippet_lines(stderr, 1));
            return Ok(Applied::new(match said {
                Some(s) => format!("`{}` exited 0: {s}", self.shown()),
                None => format!("`{}` exited 0", self.shown()),
            }));
        }
        let status = match out.status.code() {
            Some(code) => format!("exit status {code}"),
            None => out.status.to_string(),
        };
        Err(StepError::fatal(match snippet_lines(stderr, 5) {
            Some(s) => format!("`{}` failed with {status}: {s}", self.shown()),
            None => format!("`{}` failed with {status}", self.shown()),
        }))
    }

    async fn verify(&self, _ctx: &StepCtx) -> Result<Verify, StepError> {
        Ok(Verify::Done(format!("`{}` exited 0", self.shown())))
    }
}
