//! What lifeboat keeps after the fact: a report of every run when it ends, and backups
//! of the journal (after every run and on the policy's `[reports] backup_every`). The
//! work happens on tasks off the control loop (the journal reads and the snapshot on the
//! blocking pool); a failure is logged as an error for a person to look at and changes
//! nothing else.

pub mod backup;
pub mod s3;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::clients::aws::AwsClients;
use crate::clock::WallClock;
use crate::core::ids::RunId;
use crate::core::model::Policy;
use crate::journal::Journal;
use crate::report;

/// Writes run reports and journal backups for one service.
pub struct Archiver {
    policy: Arc<Policy>,
    journal: Arc<Journal>,
    aws: Option<AwsClients>,
    clock: WallClock,
    pending: Mutex<JoinSet<()>>,
}

impl Archiver {
    pub fn new(
        policy: Arc<Policy>,
        journal: Arc<Journal>,
        aws: Option<AwsClients>,
        clock: WallClock,
    ) -> Archiver {
        Archiver {
            policy,
            journal,
            aws,
            clock,
            pending: Mutex::new(JoinSet::new()),
        }
    }

    /// A run ended: write its report beside the journal, upload it and back the journal
    /// up when the policy names a bucket. Returns at once; the work runs on a task.
    pub fn run_ended(&self, run: &RunId) {
        let (policy, journal, aws, now) = (
            self.policy.clone(),
            self.journal.clone(),
            self.aws.clone(),
            self.clock.now(),
        );
        let run = run.clone();
        let task = async move {
            if let Err(e) = archive_run(&policy, journal.clone(), aws.as_ref(), &run, now).await {
                error!(run_id = %run, "the report of run {run} was not kept: {e:#}");
            }
            if let (Some(loc), Some(aws)) = (&policy.reports.s3, aws.as_ref()) {
                let client = reports_client(&policy, aws);
                match backup::to_s3(journal, &client, loc, &policy.service, now, &run.0).await {
                    Ok(n) => {
                        info!(run_id = %run, "journal backed up to {} ({} bytes)", n.location, n.bytes)
                    }
                    Err(e) => {
                        error!(run_id = %run, "the journal backup after run {run} failed: {e:#}")
                    }
                }
            }
        };
        if let Ok(mut p) = self.pending.lock() {
            while p.try_join_next().is_some() {}
            p.spawn(task);
        }
    }

    /// Waits up to `within` for reports and backups still being written (a command that
    /// exits soon after a run).
    pub async fn flush(&self, within: Duration) {
        let mut set = match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return,
        };
        let all = async { while set.join_next().await.is_some() {} };
        if tokio::time::timeout(within, all).await.is_err() {
            warn!(
                "a run report or journal backup was still being written when lifeboat stopped waiting"
            );
        }
    }

    /// Backs the journal up every `[reports] backup_every` while the task lives (only
    /// when the policy names a bucket). The first backup comes one period after start.
    pub fn spawn_scheduled_backups(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let loc = self.policy.reports.s3.clone()?;
        let Some(aws) = self.aws.clone() else {
            warn!(
                "[reports] s3 is set but lifeboat runs without AWS configuration: no journal backups"
            );
            return None;
        };
        let me = self.clone();
        let every = self.policy.reports.backup_every;
        let client = reports_client(&self.policy, &aws);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = me.clock.now();
                match backup::to_s3(
                    me.journal.clone(),
                    &client,
                    &loc,
                    &me.policy.service,
                    now,
                    "scheduled",
                )
                .await
                {
                    Ok(n) => info!("journal backed up to {} ({} bytes)", n.location, n.bytes),
                    Err(e) => error!("the scheduled journal backup failed: {e:#}"),
                }
            }
        }))
    }
}

/// An S3 client in the reports bucket's region (`[reports] region`, else `[aws] region`).
pub fn reports_client(policy: &Policy, aws: &AwsClients) -> aws_sdk_s3::Client {
    let region = policy
        .reports
        .region
        .clone()
        .unwrap_or_else(|| aws.global_region());
    aws.s3(&region)
}

impl crate::driver::Observer for Archiver {
    fn run_over(&self, run: &RunId) {
        self.run_ended(run);
    }
}

/// Builds a run's report from the journal, writes it beside the journal and, when the
/// policy names a bucket, uploads it (each file read back and compared).
pub async fn archive_run(
    policy: &Policy,
    journal: Arc<Journal>,
    aws: Option<&AwsClients>,
    run: &RunId,
    now: crate::core::time::Ts,
) -> anyhow::Result<Vec<String>> {
    let service = policy.service.clone();
    let id = run.clone();
    let (r, paths) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let r = report::build(&journal, &id, now)?;
        let dir = report::dir_beside(journal.path(), &service);
        let paths = report::write(&r, &dir)?;
        Ok((r, paths))
    })
    .await??;
    let mut kept: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    info!(run_id = %run, "run report written: {}", kept.join(", "));
    if let (Some(loc), Some(aws)) = (&policy.reports.s3, aws) {
        let client = reports_client(policy, aws);
        for (ext, content) in report::files(&r) {
            let key = loc.key(&format!("{}/runs/{}.{ext}", policy.service, r.run.run_id));
            let content_type = match ext {
                "json" => "application/json",
                "md" => "text/markdown; charset=utf-8",
                _ => "text/html; charset=utf-8",
            };
            s3::put_verified(
                &client,
                &loc.bucket,
                &key,
                content.into_bytes(),
                content_type,
            )
            .await
            .map_err(anyhow::Error::msg)?;
            kept.push(loc.url(&key));
        }
        info!(run_id = %run, "run report uploaded to {}", loc);
    }
    Ok(kept)
}
