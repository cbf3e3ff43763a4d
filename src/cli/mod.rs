//! The command line: one subcommand per operator task. Output meant for people goes to
//! stdout (or stderr for progress); `--json` prints one JSON document for scripts.

mod plan;
mod probe;
mod validate;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use plan::render_plan;

const ABOUT: &str =
    "Disaster recovery and regional failover for services running in two AWS regions";

const LONG_ABOUT: &str = "\
lifeboat watches a service's primary region (database, API, workers, storage), counts
consecutive failures, and when the primary is really down runs a journaled failover to
a secondary region: promote the database, move DNS, scale workers, invalidate caches,
notify. Later it runs a verified failback.

Each protected service is described by one policy file (TOML) under policies/.";

const EXAMPLES: &str = "\
Examples:
  Check every policy before committing it:
    lifeboat validate policies/

  See what a failover would do, touching nothing:
    lifeboat plan failover --policy policies/sandbox.toml

  The same plan for a script:
    lifeboat plan failover --policy policies/sandbox.toml --json | jq '.stages'

  Probe every region once, or keep watching:
    lifeboat probe --policy policies/sandbox.toml [--watch]";

#[derive(Parser, Debug)]
#[command(name = "lifeboat", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    /// When to use colours: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check policy files and report every error with file:line:column and a fix
    Validate(validate::Args),
    /// Show what a failover or failback would do, step by step, without touching anything
    Plan(plan::Args),
    /// Run the policy's probes once (or continuously with --watch) and show each region's health
    Probe(probe::Args),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour what goes to stdout.
    pub fn stdout(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
            }
        }
    }
}

/// Runs the command line and returns the process exit code: 0 success, 1 failure
/// (invalid policy, refused action), 2 wrong usage (from clap).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => validate::run(args, cli.color),
        Command::Plan(args) => plan::run(args, cli.color),
        Command::Probe(args) => probe::run(args, cli.color),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
