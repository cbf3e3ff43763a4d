//! The arguments of the operator's commands (`status`, `failover`, `failback`, `run`,
//! `pause`, `resume`), with the help text that teaches them.

use std::path::PathBuf;

/// Which service: its policy file, or its name on a daemon that runs several.
#[derive(clap::Args, Debug, Clone)]
pub struct Service {
    /// The service's policy file (default: the one service of a daemon started with
    /// --policies, else policies/sandbox.toml)
    #[arg(long, short = 'p')]
    pub policy: Option<PathBuf>,

    /// On a daemon started with --policies: the service, by name
    #[arg(
        long = "service",
        short = 's',
        value_name = "NAME",
        conflicts_with = "policy"
    )]
    pub name: Option<String>,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat status --policy policies/sandbox.toml
  lifeboat status --policy policies/sandbox.toml --json | jq .why
  lifeboat status                    # a daemon started with --policies: every service
  lifeboat status -s payments        # one service of that daemon

With a daemon running on the service, this is the daemon's live view. Without one,
lifeboat probes every region once and shows what it sees, with the last decision the
journal holds. Exit status 0 when the serving region is healthy and nothing is blocked,
1 otherwise.")]
pub struct StatusArgs {
    #[command(flatten)]
    pub service: Service,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat failover --dry-run                     # the plan and whether the guardrails allow it
  lifeboat failover --to us-west-2                # asks for confirmation first
  lifeboat failover --yes --allow-data-loss       # accept losing writes not yet replicated

The RPO guardrail still applies: when the target's replica lag is over the budget the
failover is refused unless you add --allow-data-loss. Cooldown, window limit and mode
do not stop an operator. The preview names the region the controller itself chooses.")]
pub struct FailoverArgs {
    #[command(flatten)]
    pub service: Service,
    /// The secondary to move to (default: the first healthy one, in priority order)
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    pub common: RunArgs,
    /// Accept losing writes the target has not replicated yet
    #[arg(long)]
    pub allow_data_loss: bool,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat failback --dry-run
  lifeboat failback --yes --note \"primary repaired\"

Refused until the primary region has passed its probes for the policy's
failback_healthy_for window and its data is resynced (its database a streaming standby
of the serving one with nothing left to replay). The failback itself is a zero-data-loss
switchover: fence the serving writer, let the primary catch up, promote, move DNS.")]
pub struct FailbackArgs {
    #[command(flatten)]
    pub service: Service,
    #[command(flatten)]
    pub common: RunArgs,
}

/// What `failover` and `failback` share.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Show the plan and the guardrails' verdict; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Who is acting (default: $USER; not needed with --dry-run)
    #[arg(long)]
    pub by: Option<String>,
    /// Why, for the journal and the notifications
    #[arg(long, default_value = "")]
    pub note: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat pause --reason \"database maintenance until 04:00\"
  lifeboat resume

While paused the controller keeps probing and reporting but starts nothing by itself;
operators can still fail over by hand. The pause is kept in the journal, so it survives
restarts of the daemon.")]
pub struct PauseArgs {
    #[command(flatten)]
    pub service: Service,
    #[arg(long, default_value = "paused by an operator")]
    pub reason: String,
    #[arg(long)]
    pub by: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub service: Service,
    #[arg(long)]
    pub by: Option<String>,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat reload                  # after editing files in the daemon's --policies DIR
  lifeboat reload --json
  lifeboat reload -p /etc/lifeboat/policies/orders.toml   # a daemon of one policy

The same as SIGHUP, `systemctl reload` or POST /v1/reload: the daemon started with
--policies (found through <state-dir>/fleet.api) reads its directory again; with --policy,
the daemon running that file reads it again. A new file
starts its service, a changed one restarts it on the new policy, a removed one stops it. A
file that no longer validates is refused with validate's diagnostics, and its service keeps
running on its last good policy. Nothing is stopped or restarted under a run in flight:
reload again once the run ends. Exit status 0 when every change was applied, 1 when a file
was refused or a change put off.")]
pub struct ReloadArgs {
    /// The daemon running this policy file (default: the one started with --policies,
    /// else the one running policies/sandbox.toml)
    #[arg(long, short = 'p')]
    pub policy: Option<PathBuf>,

    /// The report as JSON, for scripts
    #[arg(long)]
    pub json: bool,
}
