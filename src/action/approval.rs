//! `manual_approval`: a gate in the runbook. The run pauses at it until an operator runs
//! `lifeboat approve RUN_ID`; then it goes on.

use async_trait::async_trait;

use crate::runbook::{Applied, Check, Step, StepCtx, StepError, Verify};

/// Pauses the run until a person approves.
///
/// Guarantees: no side effect. `check` is done once the journal holds an approval of
/// this step (the executor passes it in `ctx.approved_by`); until then `apply` asks for
/// one, which pauses the run as `awaiting_approval`.
pub struct Gate {
    prompt: String,
}

impl Gate {
    pub fn new(prompt: String) -> Gate {
        Gate { prompt }
    }
}

#[async_trait]
impl Step for Gate {
    async fn check(&self, ctx: &StepCtx) -> Result<Check, StepError> {
        Ok(match &ctx.approved_by {
            Some(by) => Check::Done(format!("approved by {by}")),
            None => Check::NotDone(format!("waiting for an operator: {}", self.prompt)),
        })
    }

    async fn apply(&self, _ctx: &StepCtx) -> Result<Applied, StepError> {
        Err(StepError::needs_approval(self.prompt.clone()))
    }

    async fn verify(&self, ctx: &StepCtx) -> Result<Verify, StepError> {
        Ok(match &ctx.approved_by {
            Some(by) => Verify::Done(format!("approved by {by}")),
            None => Verify::NotYet("not approved yet".to_string()),
        })
    }
}
