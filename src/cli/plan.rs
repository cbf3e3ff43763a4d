//! `lifeboat plan failover|failback`: print the stages and steps a run would execute.
//! Touches nothing: no AWS call, no database connection, no journal write.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use super::ColorChoice;
use crate::core::ids::{Epoch, RunId};
use crate::core::model::{Direction, Policy, RegionName};
use crate::core::plan::{self, Plan, PlanRequest};
use crate::core::reason::Trigger;
use crate::core::time::fmt_duration;
use crate::policy;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Which {
    /// Move the service from the serving region to a secondary
    Failover,
    /// Move it back to the primary region
    Failback,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat plan failover --policy policies/sandbox.toml
  lifeboat plan failover --policy policies/examples/aurora-global.toml --to eu-west-1
  lifeboat plan failback --policy policies/sandbox.toml --json

The plan shows each stage (steps in one stage run in parallel), what every step will
do, the guardrails that apply, and the worst-case detection time.")]
pub struct Args {
    /// failover or failback
    #[arg(value_enum)]
    pub direction: Which,

    /// The service's policy file
    #[arg(long, short = 'p')]
    pub policy: PathBuf,

    /// Region to move to (failover: default the first secondary; failback: the primary)
    #[arg(long)]
    pub to: Option<String>,

    /// Region serving now (failover: default the primary; failback: the first secondary)
    #[arg(long)]
    pub from: Option<String>,

    /// Print the plan as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, color: ColorChoice) -> anyhow::Result<ExitCode> {
    let (policy, report) = policy::load_valid(&args.policy)?;
    if report.warnings().next().is_some() && !args.json {
        eprint!("{}", report.render(color.stdout()));
    }
    let direction = match args.direction {
        Which::Failover => Direction::Failover,
        Which::Failback => Direction::Failback,
    };
    let (from, to) = default_regions(&policy, direction, args.from, args.to);
    let plan = plan::build(
        &policy,
        PlanRequest {
            direction,
            from,
            to,
            run_id: RunId("preview".to_string()),
            epoch: Epoch(0),
            trigger: Trigger::Operator {
                by: "plan preview".to_string(),
                note: String::new(),
            },
            allow_data_loss: false,
        },
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", render_plan(&plan, true));
    }
    Ok(ExitCode::SUCCESS)
}

/// The regions a run moves between when the operator names none.
pub fn default_regions(
    policy: &Policy,
    direction: Direction,
    from: Option<String>,
    to: Option<String>,
) -> (RegionName, RegionName) {
    let r = &policy.regions;
    let first_secondary = r
        .secondaries
        .first()
        .cloned()
        .unwrap_or_else(|| r.primary.clone());
    match direction {
        Direction::Failover => {
            let from = from.map(RegionName).unwrap_or_else(|| r.primary.clone());
            let to = to.map(RegionName).unwrap_or_else(|| {
                r.secondaries
                    .iter()
                    .find(|s| **s != from)
                    .cloned()
                    .unwrap_or(first_secondary)
            });
            (from, to)
        }
        Direction::Failback => (
            from.map(RegionName).unwrap_or(first_secondary),
            to.map(RegionName).unwrap_or_else(|| r.primary.clone()),
        ),
    }
}

/// The plan as an operator reads it. `preview` hides the run id and epoch, which only
/// exist once a run starts.
pub fn render_plan(plan: &Plan, preview: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} of `{}`: {} → {}",
        capitalize(plan.direction.as_str()),
        plan.service,
        plan.from,
        plan.to
    );
    if preview {
        let _ = writeln!(
            s,
            "  (preview: nothing is touched; the run id and fencing epoch are assigned when a run starts)"
        );
    } else {
        let _ = writeln!(
            s,
            "  run {}  epoch {}  reason: {}",
            plan.run_id,
            plan.epoch,
            plan.reason()
        );
    }
    let total: usize = plan.stages.iter().map(|st| st.steps.len()).sum();
    let _ = writeln!(s, "\n{} stage(s), {} step(s):", plan.stages.len(), total);
    for (i, stage) in plan.stages.iter().enumerate() {
        let parallel = stage.steps.len() > 1;
        let _ = match (&stage.label, parallel) {
            (Some(l), true) => writeln!(
                s,
                "\n  Stage {} · {} — these {} steps run in parallel",
                i + 1,
                l,
                stage.steps.len()
            ),
            (Some(l), false) => writeln!(s, "\n  Stage {} · {}", i + 1, l),
            (None, _) => writeln!(s, "\n  Stage {}", i + 1),
        };
        for (j, step) in stage.steps.iter().enumerate() {
            let id = if parallel {
                format!("{}{}", i + 1, (b'a' + j as u8) as char)
            } else {
                format!("{}", i + 1)
            };
            let flags = if step.continue_on_error {
                ", failure does not stop the run"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "    {id:<4}{}  [{} in {}, timeout {}{flags}]",
                step.name,
                step.kind(),
                step.region,
                fmt_duration(step.timeout)
            );
            let _ = writeln!(s, "        {}", step.description);
        }
    }
    let _ = writeln!(s, "\nGuardrails:");
    for g in &plan.guardrails {
        let _ = writeln!(s, "  - {g}");
    }
    let d = &plan.detection;
    let confirm = d.confirm_interval.unwrap_or(d.interval);
    let span = d.min_failure_span.unwrap_or_default();
    let _ = writeln!(
        s,
        "\nWorst-case detection time: {} + max({} × {}, {}) + {} = {} (interval + max((failure_threshold − 1) × confirm_interval, min_failure_span) + timeout)",
        fmt_duration(d.interval),
        d.failure_threshold.saturating_sub(1),
        fmt_duration(confirm),
        fmt_duration(span),
        fmt_duration(d.timeout),
        fmt_duration(d.worst_case)
    );
    if !d.rule.is_empty() {
        let _ = writeln!(s, "Detection rule: {}.", d.rule);
    }
    s
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
