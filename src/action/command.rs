//! `command`: run an operator's program as a step. Its environment names the run
//! (`LIFEBOAT_RUN_ID`, `LIFEBOAT_EPOCH`, `LIFEBOAT_DIRECTION`, `LIFEBOAT_FROM`,
//! `LIFEBOAT_TO`, `LIFEBOAT_REGION`, `LIFEBOAT_STEP`, `LIFEBOAT_SERVICE`); it runs in
//! its own process group, and the whole group is killed at the step's deadline.

use async_trait::async_trait;

use crate::probe::{GroupKill, snippet_lines};
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
}

impl Command {
    pub fn new(run: Vec<String>) -> Command {
        Command { run }
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
        let Some((program, args)) = self.run.split_first() else {
            return Err(StepError::fatal("the step has nothing to run"));
        };
        let child = tokio::process::Command::new(program)
            .args(args)
            .env("LIFEBOAT_RUN_ID", &ctx.run_id.0)
            .env("LIFEBOAT_EPOCH", ctx.epoch.0.to_string())
            .env("LIFEBOAT_DIRECTION", ctx.direction.as_str())
            .env("LIFEBOAT_FROM", ctx.from.as_str())
            .env("LIFEBOAT_TO", ctx.to.as_str())
            .env("LIFEBOAT_REGION", ctx.region.as_str())
            .env("LIFEBOAT_STEP", &ctx.step)
            .env("LIFEBOAT_SERVICE", &ctx.service)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                StepError::fatal(format!(
                    "could not start `{}`: {e}; check the step's `run` in the policy",
                    self.shown()
                ))
            })?;
        // Armed until the program exits by itself: if the deadline passes first, or the
        // executor drops this call, the whole group is killed.
        let guard = child.id().map(GroupKill);
        let out = match tokio::time::timeout_at(ctx.deadline, child.wait_with_output()).await {
            Err(_) => {
                drop(guard);
                return Err(StepError::fatal(format!(
                    "`{}` did not finish before the step's deadline and was killed with its process group",
                    self.shown()
                )));
            }
            Ok(Err(e)) => {
                return Err(StepError::fatal(format!(
                    "could not wait for `{}`: {e}",
                    self.shown()
                )));
            }
            Ok(Ok(out)) => out,
        };
        if let Some(g) = guard {
            std::mem::forget(g);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() {
            let said = snippet_lines(&stdout, 1).or_else(|| snippet_lines(&stderr, 1));
            return Ok(Applied::new(match said {
                Some(s) => format!("`{}` exited 0: {s}", self.shown()),
                None => format!("`{}` exited 0", self.shown()),
            }));
        }
        let status = match out.status.code() {
            Some(code) => format!("exit status {code}"),
            None => out.status.to_string(),
        };
        Err(StepError::fatal(match snippet_lines(&stderr, 5) {
            Some(s) => format!("`{}` failed with {status}: {s}", self.shown()),
            None => format!("`{}` failed with {status}", self.shown()),
        }))
    }

    async fn verify(&self, _ctx: &StepCtx) -> Result<Verify, StepError> {
        Ok(Verify::Done(format!("`{}` exited 0", self.shown())))
    }
}
