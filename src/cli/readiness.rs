//! `lifeboat readiness`: would the failover and the failback work if the disaster started
//! now? One round of every step's readiness check, planned from the serving region, and
//! of the IAM permissions. For CI pipelines: exit 0 ready, 1 not ready.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use super::FactoryFn;
use super::journal_args::DEFAULT_POLICY;
use super::standalone::aws_for;
use crate::clock::WallClock;
use crate::core::model::{Policy, RegionName};
use crate::daemon::client::Client;
use crate::journal::{self, Journal};
use crate::policy;
use crate::readiness::{self, Round, render};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat readiness --policy policies/sandbox.toml
  lifeboat readiness --policy policies/orders.toml --json | jq '.runbooks[].steps[] | select(.readiness.state == \"not_ready\")'

Every step of both runbooks (failover and failback, planned from the region serving now)
is asked whether it would work: the resources it acts on exist with the values it needs,
the servers answer, the roles hold the privileges, and for the runbook that would run
next the state it would find (a streaming standby within the RPO budget, the DNS switch
pointing at the serving region). Only read calls are made. `cannot tell` means the check
could not find out, and says why. Exit status: 0 when nothing is not ready, 1 otherwise,
2 on wrong usage.")]
pub struct Args {
    /// The service's policy file (default policies/sandbox.toml)
    #[arg(long, short = 'p')]
    pub policy: Option<std::path::PathBuf>,

    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, state_dir: &Path, factory: &FactoryFn) -> anyhow::Result<ExitCode> {
    let path = args.policy.clone().unwrap_or_else(|| DEFAULT_POLICY.into());
    let (policy, warnings) = policy::load_valid(&path)?;
    if warnings.warnings().next().is_some() && !args.json {
        eprint!("{}", warnings.render(false));
    }
    let policy = std::sync::Arc::new(policy);
    let rt = tokio::runtime::Runtime::new().context("start the async runtime")?;
    let report = rt.block_on(async {
        let serving = serving_region(&policy, state_dir).await;
        let aws = aws_for(&policy).await;
        readiness::round(
            Round {
                factory: factory(policy.clone(), aws.clone()),
                policy: policy.clone(),
                aws,
                serving,
            },
            WallClock::system().now(),
        )
        .await
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render::text(&report));
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The region serving now: the running daemon's word, else the journal's, else the
/// primary (a service that never moved).
async fn serving_region(policy: &Policy, state_dir: &Path) -> RegionName {
    let path = journal::location(policy, state_dir);
    if let Some(c) = Client::find(&path)
        && let Ok(v) = c.status().await
    {
        return v.active;
    }
    if path.exists()
        && let Ok(j) = Journal::open(&path)
        && let Ok(Some(s)) = j.service_state(&policy.service)
    {
        return s.active_region;
    }
    policy.regions.primary.clone()
}
