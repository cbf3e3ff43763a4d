//! `lifeboat run`: start the controller for one service, or for every service of a
//! directory of policies, and keep it running.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use super::FactoryFn;
use super::standalone::aws_for;
use crate::clients::aws::AwsClients;
use crate::core::model::Policy;
use crate::daemon::auth::{self, Access};
use crate::daemon::fleet::{Loaded, Loader};
use crate::daemon::role::Role;
use crate::daemon::service::ServiceSpec;
use crate::daemon::{self, Options};
use crate::journal;
use crate::policy;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat run --policy policies/orders.toml
  lifeboat run --policies /etc/lifeboat/policies      # every *.toml there, one process
  lifeboat run --policy policies/orders.toml --listen 127.0.0.1:7300 --log-format json
  lifeboat run --policy policies/orders.toml --witness --vars witness-vars.toml \
      --journal /var/lib/lifeboat/orders-witness.db --listen 10.0.3.5:7300 --token-file t

A witness (--witness) runs in a third place, probes the same service and acts on nothing;
the controller asks it for a vote before an automatic failover when the policy sets
[guardrails] quorum = 2 and lists it under witnesses. Both sign and check the votes with
[guardrails] witness_key. --vars gives the witness its own view of the targets (for
example addresses that do not cross the controller's network).

On a policy with [coordination] backend = \"etcd\", start one controller per region with
--node NAME (a name the policy lists under observers). They elect one leader through etcd;
only the leader acts, every write it makes is fenced by its epoch, and when it dies or is
cut off another is elected and finishes the run it left, step by step. Every controller,
and an observer in a third region (--observer), publishes its verdict to etcd under its
own lease; the leader fails over by itself only when a majority of the observers listed
in the policy see the serving region down.
  lifeboat run --policy policies/orders.toml --node ctl-usw2 --listen 10.0.3.5:7300 --token-file t
  lifeboat run --policy policies/orders.toml --node obs-use2 --observer

With --policies DIR one process runs every policy in DIR (*.toml, not drills/): each
service has its own journal, probes and control loop; the API, the probes' HTTP client and
the metrics (labelled by service) are shared. Each service's API is under
/v1/services/NAME/… (GET /v1/services lists them; the single-service routes answer while
exactly one runs), and `lifeboat status` without --policy lists them all; -s NAME picks
one for the other commands. `lifeboat reload`, SIGHUP, `systemctl reload` or POST
/v1/reload read the directory again: a new file starts its service, a changed one
restarts it, a file that no longer validates is refused (its service keeps its last good
policy, and lifeboat_policy_refused says so), a removed one stops its service. A service
in the middle of a run is neither stopped nor restarted: reload again once the run ends.
With --node (and --observer) every policy in DIR must be on etcd: the daemon campaigns
per service, so one process may lead some services and follow others.
  lifeboat run --policies /etc/lifeboat/policies --node ctl-usw2 --listen 10.0.3.5:7300 --token-file t

--shadow and --witness never act: no automatic run, no operator run. They serve no
control call (failover, failback, pause, resume, approve, abort answer 405), and every
step they could build is refused. A run left unfinished in their journal is not resumed.

The daemon probes every region, decides, and runs the runbooks the policy allows it to.
It serves GET /healthz, /metrics, /v1/status, /v1/runs, /v1/decisions, /v1/openapi.json
(the API described) and the control calls on 127.0.0.1 (a free port by default; the CLI finds it through a file beside the
journal). Control calls need a bearer token: --token-file or LIFEBOAT_API_TOKEN, or one
the daemon generates into a file beside the journal readable only by its user. A token
file holds one token, or `name: token` lines; the journal records the token's name beside
the name a caller gives. It refuses to listen on a non-loopback address without a token,
and there the views need a token too (a --read-token-file token or a control token)
unless --open-reads. A request without a token must name the daemon by address,
localhost or an --allow-host name. SIGTERM or Ctrl-C stop it cleanly: no new step starts
and the running one reaches a journaled point; the next start resumes.")]
pub struct Args {
    /// The service's policy file
    #[arg(long, short = 'p', required_unless_present = "policies")]
    pub policy: Option<PathBuf>,

    /// Run every policy in this directory (*.toml, drills/ skipped) in one process
    #[arg(long, value_name = "DIR", conflicts_with_all = ["policy", "journal"])]
    pub policies: Option<PathBuf>,

    /// Where the HTTP API listens (0: a free port, published beside the journal)
    #[arg(long, env = "LIFEBOAT_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// A file holding the API's bearer token, or `name: token` lines
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// A file of tokens (one, or `name: token` lines) that may read the views but not
    /// control
    #[arg(long, value_name = "FILE")]
    pub read_token_file: Option<PathBuf>,

    /// Serve the views without a token on a non-loopback address (on loopback they always
    /// are)
    #[arg(long)]
    pub open_reads: bool,

    /// A host name requests without a token may use (besides addresses and localhost);
    /// repeat for several
    #[arg(long, value_name = "NAME")]
    pub allow_host: Vec<String>,

    /// Read [vars] values from this file instead of the one the policy names
    #[arg(long, value_name = "FILE")]
    pub vars: Option<PathBuf>,

    /// Keep the journal here instead of where the policy says
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,

    /// Decide and log, never act, whatever the policy's mode: no automatic or operator
    /// run, no control call
    #[arg(long)]
    pub shadow: bool,

    /// Run as a witness for a controller elsewhere: probe and serve /v1/status, never act,
    /// send no alerts, ask no witnesses itself
    #[arg(long, conflicts_with = "shadow")]
    pub witness: bool,

    /// On an etcd policy: this controller's name, one of [coordination] observers (its
    /// region comes from there). It campaigns for the service's leadership and acts only
    /// while elected
    #[arg(long, value_name = "NAME", conflicts_with = "witness")]
    pub node: Option<String>,

    /// With --node on an etcd policy: an observer in a third place, which probes and
    /// publishes its vote but never campaigns or acts
    #[arg(long, requires = "node", conflicts_with_all = ["witness", "shadow"])]
    pub observer: bool,

    /// Log lines as text (default) or JSON
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

pub fn run(
    args: Args,
    state_dir: &std::path::Path,
    factory: &'static FactoryFn,
) -> anyhow::Result<ExitCode> {
    init_logs(&args.log_format);
    let vars = match &args.vars {
        Some(v) => Some(std::path::absolute(v).with_context(|| format!("find {}", v.display()))?),
        None => None,
    };
    let source = match (&args.policies, &args.policy) {
        (Some(dir), _) => {
            if !dir.is_dir() {
                anyhow::bail!(
                    "--policies {}: not a directory; give the directory that holds the policy files (or one file with --policy)",
                    dir.display()
                );
            }
            Source::Dir(dir.clone())
        }
        (None, Some(file)) => {
            // One policy: refuse it at once, with every diagnostic, as before the daemon
            // starts anything.
            let (_, report) = policy::load_valid_with_vars(file, vars.as_deref())?;
            for w in report.warnings() {
                tracing::warn!("policy warning: {}", w.message);
            }
            Source::File(file.clone())
        }
        (None, None) => anyhow::bail!("give --policy FILE or --policies DIR"),
    };
    let tokens = match (&args.token_file, std::env::var("LIFEBOAT_API_TOKEN")) {
        (Some(f), _) => auth::read(f, Access::Control).context("read the API tokens")?,
        (None, Ok(t)) if !t.trim().is_empty() => {
            auth::parse(&t, "$LIFEBOAT_API_TOKEN", Access::Control)?
        }
        _ => Vec::new(),
    };
    let read_tokens = match &args.read_token_file {
        Some(f) => auth::read(f, Access::Read).context("read the read tokens")?,
        None => Vec::new(),
    };
    let role = if args.witness {
        Role::Witness
    } else if args.shadow || args.observer {
        // An observer probes, votes and acts never: a shadow that votes through etcd.
        Role::Shadow
    } else {
        Role::Controller
    };
    if args.witness {
        tracing::info!("running as a witness: probing and answering /v1/status, acting on nothing");
    }
    let fleet_dir = matches!(source, Source::Dir(_)).then(|| state_dir.to_path_buf());
    let loader = Arc::new(Files {
        source,
        vars,
        journal: args.journal.clone(),
        state_dir: state_dir.to_path_buf(),
        shadow: args.shadow,
        witness: args.witness,
        node: args.node.clone(),
        factory,
        aws: Default::default(),
    });
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(daemon::run(Options {
        loader,
        fleet_dir,
        listen: args.listen,
        tokens,
        read_tokens,
        open_reads: args.open_reads,
        hosts: args.allow_host,
        role,
        limits: daemon::serve::Limits::default(),
        // Neither a witness nor an observer ever acts: what a run would meet is no
        // concern of theirs.
        readiness: !args.witness && !args.observer,
    }))?;
    Ok(ExitCode::SUCCESS)
}

enum Source {
    File(PathBuf),
    Dir(PathBuf),
}

/// Reads the daemon's policies, at start and on every reload.
struct Files {
    source: Source,
    vars: Option<PathBuf>,
    journal: Option<PathBuf>,
    state_dir: PathBuf,
    shadow: bool,
    witness: bool,
    node: Option<String>,
    factory: &'static FactoryFn,
    /// AWS clients by settings: services with the same `[aws]` share one set (one
    /// connection pool and TLS configuration), however many the directory holds.
    aws: tokio::sync::Mutex<std::collections::BTreeMap<String, Option<AwsClients>>>,
}

impl Files {
    /// One file, validated and shaped by the daemon's role: the policy, or `validate`'s
    /// diagnostics.
    fn policy(&self, file: &std::path::Path) -> Result<Policy, String> {
        let (mut policy, _) = policy::load_valid_with_vars(file, self.vars.as_deref())
            .map_err(|e| format!("{e:#}"))?;
        if self.shadow || self.witness {
            policy.detection.mode = crate::core::model::Mode::Shadow;
        }
        if self.witness {
            policy.guardrails.witnesses.clear();
            policy.guardrails.quorum = 1;
            for c in policy.channels.iter_mut() {
                c.alerts = false;
            }
        }
        Ok(policy)
    }
}

#[async_trait::async_trait]
impl Loader for Files {
    async fn load(&self) -> Result<Vec<Loaded>, String> {
        let files = match &self.source {
            Source::File(f) => vec![f.clone()],
            Source::Dir(d) if !d.is_dir() => {
                return Err(format!(
                    "the policy directory {} is gone or not a directory; nothing was changed",
                    d.display()
                ));
            }
            Source::Dir(d) => policy::expand(std::slice::from_ref(d)).map_err(|e| {
                format!(
                    "cannot read the policy directory {}: {e}; nothing was changed",
                    d.display()
                )
            })?,
        };
        let mut out = Vec::with_capacity(files.len());
        for file in files {
            let spec = match self.policy(&file) {
                Ok(policy) => {
                    let journal_path = match &self.journal {
                        Some(j) => j.clone(),
                        None => journal::location(&policy, &self.state_dir),
                    };
                    let policy = Arc::new(policy);
                    let key = format!("{:?} {:?}", policy.aws, policy.detection.timeout);
                    let mut cache = self.aws.lock().await;
                    let aws = match cache.get(&key) {
                        Some(a) => a.clone(),
                        None => {
                            let a = aws_for(&policy).await;
                            cache.insert(key, a.clone());
                            a
                        }
                    };
                    drop(cache);
                    Ok(ServiceSpec {
                        factory: (self.factory)(policy.clone(), aws.clone()),
                        policy,
                        file: Some(file.clone()),
                        journal_path,
                        aws,
                        node: self.node.clone(),
                    })
                }
                Err(e) => Err(e),
            };
            out.push(Loaded { file, spec });
        }
        Ok(out)
    }
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIFEBOAT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
