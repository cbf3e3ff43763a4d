//! `lifeboat sandbox up|down|status`: the local two-region world for demos, drills and
//! tests, on 127.0.0.1 only.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::ColorChoice;
use crate::sandbox::{region, world};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat sandbox up            # start everything (about 10 s), print where it is
  lifeboat sandbox status        # what runs, which database is primary, where DNS points
  lifeboat sandbox down          # stop everything it started and remove its data

The sandbox serves policies/sandbox.toml: a PostgreSQL primary (us-east-1) with a
streaming standby (us-west-2), Redis, each region's API and workers with fault switches,
fault proxies in front of what the controller probes, and moto's server for the AWS APIs.
It listens on 127.0.0.1 only. Its state lives next to the policy's vars file
(.lifeboat/sandbox/ for the shipped policy).")]
pub struct Args {
    #[command(subcommand)]
    pub command: Cmd,

    /// The sandbox policy; the sandbox lives where its [vars] file points
    #[arg(
        long,
        short = 'p',
        global = true,
        default_value = "policies/sandbox.toml"
    )]
    pub policy: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Start the sandbox (does nothing if it is already up)
    Up {
        /// Print the sandbox record as JSON
        #[arg(long)]
        json: bool,
    },
    /// Stop everything the sandbox started and remove its data
    Down,
    /// Show each component and whether it is up; exit 1 if any is down
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Run one region's API, workers and fault proxies (started by `up`)
    #[command(hide = true)]
    ServeRegion {
        #[arg(long)]
        config: PathBuf,
    },
}

pub fn run(args: Args, _color: ColorChoice) -> anyhow::Result<ExitCode> {
    match args.command {
        Cmd::ServeRegion { config } => {
            let text = std::fs::read_to_string(&config)?;
            let config: region::RegionConfig = serde_json::from_str(&text)?;
            tokio::runtime::Runtime::new()?.block_on(region::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Up { json } => {
            let dir = world::dir_for_policy(&args.policy)?;
            eprintln!("starting the sandbox in {}", dir.display());
            let w = tokio::runtime::Runtime::new()?.block_on(world::up(&dir, &args.policy))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&w)?);
            } else {
                println!("sandbox up in {}", w.dir.display());
                println!("  AWS APIs (moto)  {}", w.moto_url());
                for (region, pg) in &w.pg {
                    let api = w.api_url(region).unwrap_or_default();
                    println!("  {region:<10} PostgreSQL 127.0.0.1:{}  API {api}", pg.port);
                }
                if let Some(ha) = &w.ha {
                    println!("  etcd             {}", ha.endpoints().join(" "));
                    for n in &ha.nodes {
                        println!(
                            "  {:<16} {} in {}, API http://127.0.0.1:{}, log {}",
                            n.name,
                            match n.role {
                                crate::sandbox::ha::Role::Controller => "controller",
                                crate::sandbox::ha::Role::Observer => "observer",
                            },
                            n.region,
                            n.port,
                            n.log.display()
                        );
                    }
                }
                let policy = args.policy.display();
                println!("\nnext:");
                println!(
                    "  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing   # what moto accepts"
                );
                if w.ha.is_some() {
                    println!(
                        "  lifeboat status --policy {policy}    # who leads, at which epoch, and the votes"
                    );
                }
                println!("  lifeboat plan failover --policy {policy}");
                println!("  lifeboat sandbox down --policy {policy}    # when you are done");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Down => {
            let dir = world::dir_for_policy(&args.policy)?;
            if !dir.exists() {
                println!("no sandbox in {}; nothing to stop", dir.display());
                return Ok(ExitCode::SUCCESS);
            }
            world::down(&dir)?;
            println!("sandbox stopped and removed ({})", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status { json } => {
            let dir = world::dir_for_policy(&args.policy)?;
            let components = world::status(&dir)?;
            let all_up = components.iter().all(|c| c.up);
            if json {
                println!("{}", serde_json::to_string_pretty(&components)?);
            } else {
                for c in &components {
                    println!(
                        "{:<4} {:<12} {:<10} {}",
                        if c.up { "up" } else { "DOWN" },
                        c.component,
                        c.region,
                        c.detail
                    );
                }
                if !all_up {
                    println!(
                        "\nsome parts are down: `lifeboat sandbox down` then `lifeboat sandbox up` starts it afresh"
                    );
                }
            }
            Ok(if all_up {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
