//! `lifeboat journal backup` and `lifeboat journal restore`: a verified copy of the
//! journal to the reports bucket (or a file), and a verified copy put back in place of
//! a journal no process holds.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};

use super::journal_args::JournalArgs;
use super::standalone::aws_for;
use crate::archive::backup;
use crate::clock::WallClock;
use crate::core::model::S3Location;
use crate::daemon::discovery;
use crate::journal::Journal;
use crate::policy;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Copy the journal (SQLite's online backup, safe while the daemon runs), verify
    /// the copy where it landed, and note it beside the journal
    #[command(after_help = "\
Examples:
  lifeboat journal backup --policy policies/orders.toml                 # to [reports] s3
  lifeboat journal backup --policy policies/orders.toml --to s3://bucket/lifeboat/
  lifeboat journal backup --journal /var/lib/lifeboat/orders.db --to /backups/orders.db

The daemon also backs the journal up after every run and every [reports] backup_every
when the policy names a reports bucket.")]
    Backup(BackupArgs),
    /// Put a backup in place of the journal (refused while a lifeboat process holds it);
    /// the replaced journal is kept beside it
    #[command(after_help = "\
Examples:
  lifeboat journal restore --policy policies/orders.toml --from s3://bucket/lifeboat/orders/journal/20261123-153012-scheduled.db
  lifeboat journal restore --journal /var/lib/lifeboat/orders.db --from /backups/orders.db

The backup must open as a lifeboat journal and pass SQLite's integrity check before
anything is replaced. Stop the daemon first: the journal's lock says who holds it.")]
    Restore(RestoreArgs),
}

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    pub journal: JournalArgs,
    /// Where to: an s3:// bucket URL (a prefix), or a file that does not exist yet.
    /// Default: the policy's [reports] s3
    #[arg(long, value_name = "s3://BUCKET/PREFIX | FILE")]
    pub to: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub journal: JournalArgs,
    /// The backup: s3://bucket/key or a file
    #[arg(long, value_name = "s3://BUCKET/KEY | FILE")]
    pub from: String,
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    match args.command {
        Sub::Backup(a) => backup_cmd(a, state_dir),
        Sub::Restore(a) => restore_cmd(a, state_dir),
    }
}

fn policy_of(j: &JournalArgs) -> anyhow::Result<Option<crate::core::model::Policy>> {
    j.policy_path()
        .map(|p| policy::load_valid(&p).map(|(p, _)| p))
        .transpose()
}

fn backup_cmd(a: BackupArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let path = a.journal.path(state_dir)?;
    let policy = policy_of(&a.journal)?;
    let service = a.journal.service()?;
    let journal =
        Arc::new(Journal::open(&path).with_context(|| format!("open journal {}", path.display()))?);
    let target = match (&a.to, policy.as_ref().and_then(|p| p.reports.s3.clone())) {
        (Some(t), _) if t.starts_with("s3://") => {
            Target::S3(S3Location::parse(t).map_err(anyhow::Error::msg)?)
        }
        (Some(t), _) => Target::File(PathBuf::from(t)),
        (None, Some(loc)) => Target::S3(loc),
        (None, None) => bail!(
            "where to? the policy names no reports bucket: add [reports] s3 = \"s3://…\" to it, or give --to s3://… or --to FILE"
        ),
    };
    let rt = tokio::runtime::Runtime::new().context("start the async runtime")?;
    let now = WallClock::system().now();
    let note = rt.block_on(async {
        match target {
            Target::File(f) => backup::to_file(journal, &f, now).await,
            Target::S3(loc) => {
                let settings = policy.as_ref().map(|p| p.aws.clone()).unwrap_or_default();
                let aws = aws_for_settings(&settings).await;
                let client = match &policy {
                    Some(p) => crate::archive::reports_client(p, &aws),
                    None => aws.s3(&aws.global_region()),
                };
                backup::to_s3(journal, &client, &loc, &service, now, "manual").await
            }
        }
    })?;
    println!(
        "backed up {} to {} ({} bytes), verified as stored",
        path.display(),
        note.location,
        note.bytes
    );
    Ok(ExitCode::SUCCESS)
}

enum Target {
    S3(S3Location),
    File(PathBuf),
}

async fn aws_for_settings(
    settings: &crate::core::model::AwsSettings,
) -> crate::clients::aws::AwsClients {
    crate::clients::aws::AwsClients::from_settings(settings, std::time::Duration::from_secs(30))
        .await
}

fn restore_cmd(a: RestoreArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let path = a.journal.path(state_dir)?;
    // The lock first: a journal a daemon (or another command) holds is live, and must
    // not be replaced under it.
    let _lock = discovery::lock(&path, "lifeboat journal restore").map_err(|e| {
        anyhow::anyhow!(
            "refusing to restore over a live journal: {e:#}. Stop the daemon (or wait for the command) that holds {}, then restore",
            discovery::lock_path(&path).display()
        )
    })?;
    let policy = policy_of(&a.journal)?;
    let rt = tokio::runtime::Runtime::new().context("start the async runtime")?;
    let bytes = rt.block_on(async {
        let client = match &policy {
            Some(p) => aws_for(p)
                .await
                .map(|aws| crate::archive::reports_client(p, &aws)),
            None if a.from.starts_with("s3://") => {
                let aws = aws_for_settings(&Default::default()).await;
                Some(aws.s3(&aws.global_region()))
            }
            None => None,
        };
        backup::fetch(&a.from, client.as_ref()).await
    })?;
    let aside = backup::restore(&path, &bytes, WallClock::system().now())?;
    println!(
        "restored {} from {} ({} bytes, integrity checked)",
        path.display(),
        a.from,
        bytes.len()
    );
    if let Some(old) = aside {
        println!("the journal it replaced is kept at {}", old.display());
    }
    Ok(ExitCode::SUCCESS)
}
