//! The command line: one subcommand per operator task. Output meant for people goes to
//! stdout (or stderr for progress); `--json` prints one JSON document for scripts.

mod approve;
mod control;
mod control_args;
mod docs;
mod drill;
mod fleet;
mod history;
mod journal;
mod journal_args;
mod outputs;
mod plan;
mod probe;
mod progress;
mod readiness;
mod reply;
mod run;
mod sandbox;
mod schema;
mod show;
mod standalone;
pub(crate) mod status_text;
mod validate;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use history::render_history;
pub use plan::render_plan;

/// Builds the step adapters a run executes, for a policy.
pub type FactoryFn = dyn Fn(
        std::sync::Arc<crate::core::model::Policy>,
        Option<crate::clients::aws::AwsClients>,
    ) -> std::sync::Arc<dyn crate::runbook::StepFactory>
    + Send
    + Sync;

fn step_factory(
    policy: std::sync::Arc<crate::core::model::Policy>,
    aws: Option<crate::clients::aws::AwsClients>,
) -> std::sync::Arc<dyn crate::runbook::StepFactory> {
    let probes = crate::probe::Context {
        http: crate::probe::shared_client("runbook"),
        ..crate::probe::Context::new(
            aws.clone(),
            policy.detection.timeout,
            policy.detection.interval,
        )
    };
    std::sync::Arc::new(crate::action::Factory::new(aws, probes))
}
pub use show::render_run;

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

  What runs happened, and what one of them did, step by step:
    lifeboat history --policy policies/sandbox.toml
    lifeboat show fo-20261123-153012-7f3a --policy policies/sandbox.toml

  Let a paused run go on, or end it:
    lifeboat approve fo-20261123-153012-7f3a --policy policies/sandbox.toml
    lifeboat abort fo-20261123-153012-7f3a --reason \"drill over\" --policy policies/sandbox.toml

  Probe every region once, or keep watching:
    lifeboat probe --policy policies/sandbox.toml [--watch]";

#[derive(Parser, Debug)]
#[command(name = "lifeboat", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    /// When to use colours: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Where journals live when a policy names none: <state-dir>/<service>.db
    #[arg(
        long,
        global = true,
        env = "LIFEBOAT_STATE_DIR",
        default_value = "/var/lib/lifeboat",
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check policy files and report every error with file:line:column and a fix
    Validate(validate::Args),
    /// Show what a failover or failback would do, step by step, without touching anything
    Plan(plan::Args),
    /// Start, inspect or stop the local two-region sandbox (for demos and drills)
    Sandbox(sandbox::Args),
    /// List a service's runs, newest first
    History(history::Args),
    /// Print one run's timeline: steps, attempts, durations, errors, approvals, audit
    Show(show::Args),
    /// Let a run paused for approval go on, recording who approved
    Approve(approve::ApproveArgs),
    /// End an unfinished run and record why (nothing is undone)
    Abort(approve::AbortArgs),
    /// Run the policy's probes once (or continuously with --watch) and show each region's health
    Probe(probe::Args),
    /// Run the controller: probe, decide and act, with an HTTP API on loopback
    Run(run::Args),
    /// The controller's state and why, each region's and probe's health, the runs
    Status(control::StatusArgs),
    /// Move the service to a secondary region now (asks for confirmation)
    Failover(control::FailoverArgs),
    /// Return the service to its primary region, verified and without data loss
    Failback(control::FailbackArgs),
    /// Stop automatic decisions (probing and reporting go on)
    Pause(control::PauseArgs),
    /// Let the controller decide again after a pause or a failed run
    Resume(control::ResumeArgs),
    /// Make the daemon started with --policies read its policy directory again
    Reload(control::ReloadArgs),
    /// Rehearse a failure on the local sandbox and measure what lifeboat does
    Drill(drill::Args),
    /// Would the failover and the failback work now? Every step checked, read-only
    Readiness(readiness::Args),
    /// Back up the journal (SQLite's online backup) or restore it from a backup
    Journal(journal::Args),
    /// Print the JSON Schema of policy files (or of drills, the --json outputs, the API)
    Schema(schema::Args),
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions(docs::CompletionsArgs),
    /// Print the man page, or write one per command into a directory
    Man(docs::ManArgs),
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
    let mut cli = Cli::parse();
    let result = pin_service(&mut cli.command, &cli.state_dir).and_then(|()| dispatch(cli));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `-s NAME` on the commands that read a journal: the policy of that service of the
/// daemon started with `--policies`.
fn pin_service(command: &mut Command, state_dir: &std::path::Path) -> anyhow::Result<()> {
    let args = match command {
        Command::History(a) => &mut a.journal,
        Command::Show(a) => &mut a.journal,
        Command::Approve(a) => &mut a.journal,
        Command::Abort(a) => &mut a.journal,
        Command::Journal(a) => match &mut a.command {
            journal::Sub::Backup(b) => &mut b.journal,
            journal::Sub::Restore(r) => &mut r.journal,
        },
        _ => return Ok(()),
    };
    args.pin(state_dir)
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::run(args, cli.color),
        Command::Plan(args) => plan::run(args, cli.color),
        Command::Sandbox(args) => sandbox::run(args, cli.color),
        Command::History(args) => history::run(args, &cli.state_dir),
        Command::Show(args) => show::run(args, &cli.state_dir),
        Command::Approve(args) => approve::approve(args, &cli.state_dir, &step_factory),
        Command::Abort(args) => approve::abort(args, &cli.state_dir, &step_factory),
        Command::Probe(args) => probe::run(args, cli.color),
        Command::Run(args) => run::run(args, &cli.state_dir, &step_factory),
        Command::Status(args) => control::status(args, &cli.state_dir, cli.color),
        Command::Failover(args) => control::failover(args, &cli.state_dir, &step_factory),
        Command::Failback(args) => control::failback(args, &cli.state_dir, &step_factory),
        Command::Pause(args) => control::pause(args, &cli.state_dir, &step_factory),
        Command::Resume(args) => control::resume(args, &cli.state_dir, &step_factory),
        Command::Reload(args) => control::reload(args, &cli.state_dir),
        Command::Drill(args) => drill::run(args),
        Command::Readiness(args) => readiness::run(args, &cli.state_dir, &step_factory),
        Command::Journal(args) => journal::run(args, &cli.state_dir),
        Command::Schema(args) => schema::run(args),
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
    }
}
