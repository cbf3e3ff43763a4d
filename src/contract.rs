//! The HTTP API's contract: the bodies of the control calls and the replies, shared by
//! the server (`daemon::api`), the client (`daemon::client`, which the CLI and the drills
//! use) and the driver, which produces the replies. One definition, so the three cannot
//! drift apart.

use serde::{Deserialize, Serialize};

use crate::core::ids::RunId;
use crate::core::model::RegionName;
use crate::core::plan::Plan;
use crate::core::reason::Hold;

fn api() -> String {
    "api".to_string()
}

/// `POST /v1/failover`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailoverBody {
    /// The secondary to move to; the controller picks the first healthy one when absent.
    #[serde(default)]
    pub to: Option<RegionName>,
    #[serde(default)]
    pub allow_data_loss: bool,
    /// Who is asking, for the audit trail.
    #[serde(default = "api")]
    pub by: String,
    #[serde(default)]
    pub note: String,
    /// Answer with the plan the controller would run (`Reply::Preview`); start nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Refuse unless the controller would still move to this region (the one a preview
    /// showed the operator who confirmed it).
    #[serde(default)]
    pub expect_to: Option<RegionName>,
}

/// `POST /v1/failback`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailbackBody {
    #[serde(default = "api")]
    pub by: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /v1/pause`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    #[serde(default = "api")]
    pub by: String,
    #[serde(default)]
    pub reason: String,
}

/// `POST /v1/resume`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeBody {
    #[serde(default = "api")]
    pub by: String,
}

/// `POST /v1/approve` (a held failover) and `POST /v1/runs/{id}/approve` (a paused run).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    #[serde(default = "api")]
    pub by: String,
    #[serde(default)]
    pub allow_data_loss: bool,
}

/// `POST /v1/runs/{id}/abort`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortBody {
    #[serde(default = "api")]
    pub by: String,
    /// Required: it goes in the audit trail.
    #[serde(default)]
    pub reason: String,
}

/// A control call's body names who asks (`by`); the server records it beside the name
/// of the token that made the call.
pub trait Claimed {
    fn by(&self) -> &str;
}

macro_rules! claimed {
    ($($t:ty),*) => {$(
        impl Claimed for $t {
            fn by(&self) -> &str {
                &self.by
            }
        }
    )*};
}
claimed!(
    FailoverBody,
    FailbackBody,
    PauseBody,
    ResumeBody,
    ApproveBody,
    AbortBody
);

/// The answer to a control call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reply {
    /// Done, or started: `run_id` names the run a failover or failback started.
    Accepted {
        message: String,
        run_id: Option<RunId>,
    },
    /// Not done, and why; `hold` is the typed reason when a guardrail refused.
    Refused {
        message: String,
        next_step: Option<String>,
        #[serde(default)]
        hold: Option<Hold>,
    },
    /// A dry run: the plan the controller would run now.
    Preview { plan: Box<Plan> },
}

impl Reply {
    pub fn refused(hold: Hold) -> Reply {
        Reply::Refused {
            message: hold.to_string(),
            next_step: hold.next_step().map(str::to_string),
            hold: Some(hold),
        }
    }

    pub fn refused_because(message: impl Into<String>, next_step: Option<&str>) -> Reply {
        Reply::Refused {
            message: message.into(),
            next_step: next_step.map(str::to_string),
            hold: None,
        }
    }
}

/// The body of every error answer (4xx, 5xx other than a refusal).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// One service of a daemon that runs several (`GET /v1/services`, `lifeboat status`
/// without `--policy`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceLine {
    pub name: String,
    /// The controller's state (`primary`, `suspect`, `on_secondary`, `blocked`, …).
    pub state: String,
    /// The region serving now.
    pub active: String,
    /// Why the controller is not acting, in words.
    pub why: Option<String>,
    /// The serving region passes its probes and nothing is blocked (what makes
    /// `lifeboat status` exit 0).
    pub healthy: bool,
    /// The run in progress, if any.
    pub run: Option<String>,
    /// The policy file the service runs from.
    pub policy: Option<String>,
    /// The last reload found this service's policy file invalid: the service keeps its
    /// last good policy, and this says what is wrong.
    pub policy_error: Option<String>,
}

/// What a reload did (`POST /v1/reload`, SIGHUP, `lifeboat reload`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReloadReport {
    /// Services started from new files.
    pub started: Vec<String>,
    /// Services restarted on a changed policy.
    pub restarted: Vec<String>,
    /// Services stopped because their file went away.
    pub stopped: Vec<String>,
    /// Services whose policy did not change.
    pub unchanged: Vec<String>,
    /// Files refused: the service (if it runs) keeps its last good policy.
    pub refused: Vec<Refusal>,
    /// Changes put off until a run in flight ends: reload again then.
    pub deferred: Vec<Refusal>,
}

/// A file or service a reload did not apply, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Refusal {
    pub file: Option<String>,
    pub service: Option<String>,
    /// What is wrong, as `lifeboat validate` says it.
    pub reason: String,
}
