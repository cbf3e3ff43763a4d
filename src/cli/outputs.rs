//! The JSON Schemas of the `--json` outputs (`lifeboat schema --output NAME`, kept in
//! `deploy/schemas/NAME.schema.json`), generated from the types the commands print, so a
//! script's contract cannot drift from what the commands write.

use schemars::JsonSchema;
use schemars::generate::{Contract, SchemaSettings};
use serde_json::{Value, json};

use crate::core::controller::Decision;
use crate::core::plan::Plan;
use crate::daemon::status::StatusView;
use crate::drill::report::Report;
use crate::journal::{RunDetail, RunRecord};

/// One `--json` output: its name, the commands that print it, and its schema.
pub struct Output {
    pub name: &'static str,
    pub printed_by: &'static str,
    schema: fn() -> Value,
}

impl Output {
    pub fn schema(&self) -> Value {
        let mut s = (self.schema)();
        if let Some(m) = s.as_object_mut() {
            m.insert(
                "title".into(),
                json!(format!("lifeboat {} --json", self.name)),
            );
            m.insert("description".into(), json!(self.printed_by));
        }
        s
    }
}

pub const OUTPUTS: &[Output] = &[
    Output {
        name: "probe",
        printed_by: "`lifeboat probe --json`: one probe round's observations, each with the component its probe stands for, and the regions' verdicts. With --watch, one such document per line.",
        schema: of::<super::probe::JsonRound<'static>>,
    },
    Output {
        name: "status",
        printed_by: "`lifeboat status --json` and the daemon's `GET /v1/status`.",
        schema: of::<StatusView>,
    },
    Output {
        name: "plan",
        printed_by: "`lifeboat plan failover|failback --json`: the resolved plan, stage by stage.",
        schema: of::<Plan>,
    },
    Output {
        name: "history",
        printed_by: "`lifeboat history --json` and `GET /v1/runs`: runs, newest first.",
        schema: of::<Vec<RunRecord>>,
    },
    Output {
        name: "decisions",
        printed_by: "`lifeboat history --decisions --json` and `GET /v1/decisions`: the controller's decisions with their evidence, newest first.",
        schema: of::<Vec<Decision>>,
    },
    Output {
        name: "show",
        printed_by: "`lifeboat show RUN --json`, `GET /v1/runs/{id}`, and `lifeboat failover|failback --json` once their run ends: one run with its steps, attempts, approvals and audit trail.",
        schema: of::<RunDetail>,
    },
    Output {
        name: "validate",
        printed_by: "`lifeboat validate --json`: each policy file, whether it loads, and its diagnostics.",
        schema: of::<super::validate::JsonOut<'static>>,
    },
    Output {
        name: "readiness",
        printed_by: "`lifeboat readiness --json`, and the daemon's last round under `readiness` in `GET /v1/status`: every step of both runbooks checked, read-only, and the IAM permissions.",
        schema: of::<crate::core::readiness::ReadinessReport>,
    },
    Output {
        name: "drill",
        printed_by: "`lifeboat drill --json` (one document per repetition) and the NAME-N.json report beside the Markdown and HTML ones.",
        schema: of::<Report>,
    },
];

pub fn find(name: &str) -> Option<&'static Output> {
    OUTPUTS.iter().find(|o| o.name == name)
}

/// The schema of what `T` serializes to (every field always written is required).
fn of<T: JsonSchema>() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.contract = Contract::Serialize;
    settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}
