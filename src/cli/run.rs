//! `lifeboat run`: start the controller for one service and keep it running.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use super::FactoryFn;
use super::control::aws_for;
use crate::clients::secret::{self, Secret};
use crate::core::model::SecretRef;
use crate::daemon::{self, Options};
use crate::journal;
use crate::policy;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat run --policy policies/orders.toml
  lifeboat run --policy policies/orders.toml --listen 127.0.0.1:7300 --log-format json

The daemon probes every region, decides, and runs the runbooks the policy allows it to.
It serves GET /healthz, /metrics, /v1/status, /v1/runs and the control calls on
127.0.0.1 (a free port by default; the CLI finds it through a file beside the journal).
Control calls need a bearer token: --token-file or LIFEBOAT_API_TOKEN, or one the daemon
generates into a file beside the journal readable only by its user. It refuses to listen
on a non-loopback address without a token. SIGTERM or Ctrl-C stop it cleanly: no new
step starts and the running one reaches a journaled point; the next start resumes.")]
pub struct Args {
    /// The service's policy file
    #[arg(long, short = 'p')]
    pub policy: PathBuf,

    /// Where the HTTP API listens
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// A file holding the API's bearer token
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Log lines as text (default) or JSON
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

pub fn run(
    args: Args,
    state_dir: &std::path::Path,
    factory: &FactoryFn,
) -> anyhow::Result<ExitCode> {
    init_logs(&args.log_format);
    let (policy, report) = policy::load_valid(&args.policy)?;
    for w in report.warnings() {
        tracing::warn!("policy warning: {}", w.message);
    }
    let policy = Arc::new(policy);
    let token = match (&args.token_file, std::env::var("LIFEBOAT_API_TOKEN")) {
        (Some(f), _) => {
            Some(secret::resolve(&SecretRef::File(f.clone())).context("read the API token")?)
        }
        (None, Ok(t)) if !t.trim().is_empty() => Some(Secret::new(t.trim())),
        _ => None,
    };
    let journal_path = journal::location(&policy, state_dir);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let aws = aws_for(&policy).await;
        daemon::run(Options {
            factory: factory(policy.clone(), aws.clone()),
            policy,
            journal_path,
            listen: args.listen,
            token,
            aws,
        })
        .await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIFEBOAT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
