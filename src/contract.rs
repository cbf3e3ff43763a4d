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
