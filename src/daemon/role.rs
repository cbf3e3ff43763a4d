//! What a daemon is for: a controller acts; a shadow daemon and a witness never do,
//! whoever asks. A daemon that must not act serves no control call and builds its runs'
//! steps with `NeverAct`, which refuses every one, so even a bug that let a run reach
//! the executor could not touch a database, a DNS record or a group.

use std::sync::Arc;

use crate::core::plan::{Plan, PlannedStep};
use crate::runbook::{Step, StepError, StepFactory};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Probes, decides, runs the runbooks the policy allows, and serves the control calls.
    Controller,
    /// Probes and decides, logs what it would do, and acts never: no automatic run, no
    /// operator run, no control call (`lifeboat run --shadow`).
    Shadow,
    /// Probes for a controller elsewhere and answers its signed vote requests; acts never
    /// and sends no alerts (`lifeboat run --witness`).
    Witness,
}

impl Role {
    pub fn acts(self) -> bool {
        self == Role::Controller
    }

    /// How this daemon names itself in refusals and logs.
    pub fn describe(self) -> &'static str {
        match self {
            Role::Controller => "a controller",
            Role::Shadow => "a shadow daemon (--shadow)",
            Role::Witness => "a witness (--witness)",
        }
    }
}

/// A step factory that builds nothing: every step is refused before it could act.
pub struct NeverAct(pub Role);

impl StepFactory for NeverAct {
    fn build(&self, _plan: &Plan, step: &PlannedStep) -> Result<Arc<dyn Step>, StepError> {
        Err(StepError::fatal(format!(
            "step {} refused: this lifeboat is {} and never acts; run steps from the controller",
            step.name,
            self.0.describe()
        )))
    }
}

/// The step factory a daemon of `role` runs with: the real one for a controller only.
pub fn factory_for(role: Role, factory: Arc<dyn StepFactory>) -> Arc<dyn StepFactory> {
    if role.acts() {
        factory
    } else {
        Arc::new(NeverAct(role))
    }
}
