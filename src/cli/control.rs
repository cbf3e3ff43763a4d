//! The operator's commands: `status`, `failover`, `failback`, `pause`, `resume`. Each
//! talks to the daemon when one runs on the service's journal, and otherwise acts itself
//! on the same journal, holding its lock so two runners never act at once.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use super::client::Client;
use super::journal_args::operator;
use super::progress::Renderer;
use super::{ColorChoice, render_plan, status_text};
use crate::clients::aws::AwsClients;
use crate::core::controller::{self, Command, Input, OperatorCommand, RunRequest, State};
use crate::core::health::HealthTracker;
use crate::core::ids::{Epoch, RunId};
use crate::core::model::{Direction, Policy, RegionName};
use crate::core::plan::{self, Plan, PlanRequest};
use crate::core::step::RunStatus;
use crate::core::summary::{LinkMemory, summarize};
use crate::daemon::engine::{Reply, now, restored_state};
use crate::daemon::{discovery, retry_settings, status};
use crate::journal::{self, Journal};
use crate::policy;
use crate::probe;
use crate::runbook::{Executor, ProgressSink, RunOutcome, StepFactory};

/// Which service: its policy file.
#[derive(clap::Args, Debug, Clone)]
pub struct Service {
    /// The service's policy file
    #[arg(long, short = 'p', default_value = "policies/sandbox.toml")]
    pub policy: PathBuf,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat status --policy policies/sandbox.toml
  lifeboat status --policy policies/sandbox.toml --json | jq .why

With a daemon running on the service, this is the daemon's live view. Without one,
lifeboat probes every region once and shows what it sees. Exit status 0 when the serving
region is healthy and nothing is blocked, 1 otherwise.")]
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
do not stop an operator.")]
pub struct FailoverArgs {
    #[command(flatten)]
    pub service: Service,
    /// The secondary to move to (default: the first healthy one, in priority order)
    #[arg(long)]
    pub to: Option<String>,
    /// Show the plan and the guardrails' verdict; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Accept losing writes the target has not replicated yet
    #[arg(long)]
    pub allow_data_loss: bool,
    /// Who is acting (default: $USER)
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
  lifeboat failback --dry-run
  lifeboat failback --yes --note \"primary repaired\"

Refused until the primary region has passed its probes for the policy's
failback_healthy_for window and its data is resynced (its database a streaming standby
of the serving one with nothing left to replay). The failback itself is a zero-data-loss
switchover: fence the serving writer, let the primary catch up, promote, move DNS.")]
pub struct FailbackArgs {
    #[command(flatten)]
    pub service: Service,
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[arg(long)]
    pub by: Option<String>,
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("start the async runtime")
}

fn load(service: &Service, state_dir: &Path) -> anyhow::Result<(Arc<Policy>, PathBuf)> {
    let (policy, _) = policy::load_valid(&service.policy)?;
    let path = journal::location(&policy, state_dir);
    Ok((Arc::new(policy), path))
}

/// AWS clients when the policy's probes or steps call AWS.
pub async fn aws_for(policy: &Policy) -> Option<AwsClients> {
    Some(
        AwsClients::from_settings(
            &policy.aws,
            policy.detection.timeout.max(Duration::from_secs(5)),
        )
        .await,
    )
}

/// One round of every probe, for commands that act without a daemon.
async fn observe_once(
    policy: &Policy,
    aws: Option<AwsClients>,
) -> anyhow::Result<(HealthTracker, LinkMemory)> {
    let ctx = probe::Context::new(aws, policy.detection.timeout, policy.detection.interval);
    let probes = probe::build_all(policy, &ctx, None).context("build the probes")?;
    let results = probe::round(&probes, &probe::Clock::system()).await;
    let mut tracker = HealthTracker::for_policy(policy);
    let mut links = LinkMemory::default();
    for obs in results {
        links.observe(&obs);
        tracker.observe(obs);
    }
    Ok((tracker, links))
}

pub fn status(args: StatusArgs, state_dir: &Path, color: ColorChoice) -> anyhow::Result<ExitCode> {
    let (policy, jpath) = load(&args.service, state_dir)?;
    let rt = runtime()?;
    let view = match Client::find(&jpath) {
        Some(c) => rt.block_on(c.status())?,
        None => {
            let journal = if jpath.exists() {
                Some(
                    Journal::open(&jpath)
                        .with_context(|| format!("open journal {}", jpath.display()))?,
                )
            } else {
                None
            };
            let t = now();
            let mut state = match &journal {
                Some(j) => restored_state(&policy, j, t)?,
                None => State::new(&policy, policy.regions.primary.clone(), t),
            };
            let aws = rt.block_on(aws_for(&policy));
            let (tracker, links) = rt.block_on(observe_once(&policy, aws))?;
            let summary = summarize(&tracker, &links, &state.active, 1, t);
            state = controller::step(&policy, &state, Input::Health(summary), t).0;
            let last_run = journal
                .as_ref()
                .and_then(|j| j.runs(1).ok())
                .and_then(|mut r| r.pop());
            status::build(
                &policy,
                &state,
                &tracker,
                &links,
                last_run,
                t,
                "one probe round just now (no daemon is running on this service)".into(),
            )
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", status_text::render(&view, color.stdout()));
    }
    let healthy = view
        .regions
        .iter()
        .any(|r| r.serving && r.verdict.is_healthy())
        && view.why.is_none();
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn failover(
    args: FailoverArgs,
    state_dir: &Path,
    factory: &dyn Fn(Arc<Policy>, Option<AwsClients>) -> Arc<dyn StepFactory>,
) -> anyhow::Result<ExitCode> {
    let by = operator(args.by.clone())?;
    let cmd = OperatorCommand::Failover {
        to: args.to.clone().map(RegionName),
        allow_data_loss: args.allow_data_loss,
        by,
        note: args.note.clone(),
    };
    act(
        &args.service,
        state_dir,
        cmd,
        args.dry_run,
        args.yes,
        args.json,
        factory,
    )
}

pub fn failback(
    args: FailbackArgs,
    state_dir: &Path,
    factory: &dyn Fn(Arc<Policy>, Option<AwsClients>) -> Arc<dyn StepFactory>,
) -> anyhow::Result<ExitCode> {
    let by = operator(args.by.clone())?;
    let cmd = OperatorCommand::Failback {
        by,
        note: args.note.clone(),
    };
    act(
        &args.service,
        state_dir,
        cmd,
        args.dry_run,
        args.yes,
        args.json,
        factory,
    )
}

fn act(
    service: &Service,
    state_dir: &Path,
    cmd: OperatorCommand,
    dry_run: bool,
    yes: bool,
    json: bool,
    factory: &dyn Fn(Arc<Policy>, Option<AwsClients>) -> Arc<dyn StepFactory>,
) -> anyhow::Result<ExitCode> {
    let (policy, jpath) = load(service, state_dir)?;
    let rt = runtime()?;
    if let Some(client) = Client::find(&jpath) {
        return rt.block_on(through_daemon(&client, &policy, cmd, dry_run, yes, json));
    }
    // No daemon: act here, holding the journal's lock for the whole run.
    let _lock = discovery::lock(&jpath, "lifeboat CLI")?;
    let journal = Arc::new(
        Journal::open_or_create(&jpath)
            .context("open the journal; lifeboat acts on nothing it cannot read")?,
    );
    let t = now();
    let mut state = restored_state(&policy, &journal, t)?;
    if let Some(run) = journal.unfinished(&policy.service)?.into_iter().next() {
        bail!(
            "run {} is unfinished ({}); finish it first: lifeboat approve {} or lifeboat abort {} --reason …, or start the daemon, which resumes it",
            run.run_id,
            run.status,
            run.run_id,
            run.run_id
        );
    }
    let aws = rt.block_on(aws_for(&policy));
    eprintln!("probing every region once to check the guardrails…");
    let (tracker, links) = rt.block_on(observe_once(&policy, aws.clone()))?;
    state = controller::step(
        &policy,
        &state,
        Input::Health(summarize(&tracker, &links, &state.active, 1, t)),
        t,
    )
    .0;
    let (_, commands) = controller::step(&policy, &state, Input::Operator(cmd), t);
    let request = match decided(commands) {
        Ok(r) => r,
        Err((message, next)) => return Ok(refused(&message, next.as_deref())),
    };
    let plan = plan_for(&policy, &request, t)?;
    if !json {
        print!("{}", render_plan(&plan, false));
    }
    if dry_run {
        println!(
            "\ndry run: the guardrails allow this {}; nothing was changed",
            plan.direction
        );
        return Ok(ExitCode::SUCCESS);
    }
    confirm(&plan, yes)?;
    let (sink, mut rx) = ProgressSink::channel();
    let executor = Executor::new(journal.clone(), factory(policy.clone(), aws))
        .actor(format!("lifeboat CLI (pid {})", std::process::id()))
        .retry(retry_settings(&policy))
        .progress(sink);
    let run_id = plan.run_id.clone();
    let by = match &request.reason {
        crate::core::reason::Reason::Operator { by, .. } => format!("{by} via lifeboat CLI"),
        _ => "lifeboat CLI".to_string(),
    };
    let outcome = rt.block_on(async move {
        let mut renderer = Renderer::new();
        let task = tokio::spawn(async move { executor.start(plan, &by).await });
        while let Some(p) = rx.recv().await {
            renderer.progress(&p);
        }
        anyhow::Ok(task.await.context("the run's task")??)
    })?;
    finish(&journal, &run_id, outcome, json)
}

/// What the controller decided on an operator command: a run to start, or why not.
fn decided(commands: Vec<Command>) -> Result<RunRequest, (String, Option<String>)> {
    let mut request = None;
    for c in commands {
        match c {
            Command::StartRun(r) => request = Some(r),
            Command::Refuse(reason) => {
                return Err((reason.to_string(), reason.next_step().map(str::to_string)));
            }
            _ => {}
        }
    }
    request.ok_or_else(|| ("the controller started nothing".to_string(), None))
}

fn plan_for(policy: &Policy, r: &RunRequest, t: crate::core::time::Ts) -> anyhow::Result<Plan> {
    Ok(plan::build(
        policy,
        PlanRequest {
            direction: r.direction,
            from: r.from.clone(),
            to: r.to.clone(),
            run_id: RunId::generate(r.direction, t, fastrand::u16(..)),
            epoch: Epoch(0),
            reason: r.reason.to_string(),
            allow_data_loss: r.allow_data_loss,
        },
    )?)
}

fn refused(message: &str, next: Option<&str>) -> ExitCode {
    eprintln!("refused: {message}");
    if let Some(n) = next {
        eprintln!("  next: {n}");
    }
    ExitCode::from(1)
}

/// Asks before touching production, unless `--yes`. Without a terminal to ask on, refuses.
fn confirm(plan: &Plan, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to {} without confirmation: run it on a terminal, or add --yes",
            plan.direction
        );
    }
    eprint!(
        "\nThis {} changes production. Type the target region ({}) to go on: ",
        plan.direction, plan.to
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != plan.to.as_str() {
        bail!("not confirmed; nothing was changed");
    }
    Ok(())
}

fn finish(
    journal: &Journal,
    run: &RunId,
    outcome: RunOutcome,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let detail = journal.detail(run)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
    }
    Ok(match outcome {
        RunOutcome::Completed => {
            eprintln!(
                "\n{} {} completed in {}: {} serves now",
                detail.run.direction,
                run,
                crate::core::time::fmt_duration(detail.run.duration()),
                detail.run.to
            );
            ExitCode::SUCCESS
        }
        RunOutcome::AwaitingApproval(steps) => {
            for (s, why) in steps {
                eprintln!("\nwaiting: step {s}: {why}");
            }
            eprintln!("  next: lifeboat approve {run} (or lifeboat abort {run} --reason …)");
            ExitCode::from(1)
        }
        RunOutcome::Failed(steps) => {
            for (s, why) in steps {
                eprintln!("\nfailed: step {s}: {why}");
            }
            eprintln!(
                "  next: lifeboat show {run} for the whole story; fix the cause, then run the command again"
            );
            ExitCode::from(1)
        }
        other => {
            eprintln!("\nthe run stopped: {other:?}; lifeboat show {run}");
            ExitCode::from(1)
        }
    })
}

async fn through_daemon(
    client: &Client,
    policy: &Policy,
    cmd: OperatorCommand,
    dry_run: bool,
    yes: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let view = client.status().await?;
    let direction = match &cmd {
        OperatorCommand::Failback { .. } => Direction::Failback,
        _ => Direction::Failover,
    };
    let (from, to) = super::plan::default_regions(
        policy,
        direction,
        Some(view.active.to_string()),
        match &cmd {
            OperatorCommand::Failover { to, .. } => to.as_ref().map(|r| r.to_string()),
            _ => None,
        },
    );
    let preview = plan::build(
        policy,
        PlanRequest {
            direction,
            from,
            to,
            run_id: RunId("preview".into()),
            epoch: Epoch(0),
            reason: "operator request".into(),
            allow_data_loss: false,
        },
    )?;
    if !json {
        print!("{}", render_plan(&preview, true));
        eprintln!(
            "(the daemon, pid {}, checks the guardrails and runs it)",
            client.pid
        );
    }
    if dry_run {
        println!("\ndry run: nothing was sent to the daemon");
        return Ok(ExitCode::SUCCESS);
    }
    confirm(&preview, yes)?;
    let before = client.runs().await?.first().map(|r| r.run_id.clone());
    let (path, body) = match &cmd {
        OperatorCommand::Failover {
            to,
            allow_data_loss,
            by,
            note,
        } => (
            "/v1/failover",
            serde_json::json!({"to": to, "allow_data_loss": allow_data_loss, "by": by, "note": note}),
        ),
        OperatorCommand::Failback { by, note } => {
            ("/v1/failback", serde_json::json!({"by": by, "note": note}))
        }
        _ => bail!("not a run command"),
    };
    match client.post(path, &body).await? {
        Reply::Refused { message, next_step } => {
            return Ok(refused(&message, next_step.as_deref()));
        }
        Reply::Accepted { message, .. } => eprintln!("{message}"),
    }
    // Find the run the daemon started, then follow it to the end.
    let mut run_id = None;
    for _ in 0..100 {
        if let Some(r) = client
            .runs()
            .await?
            .into_iter()
            .next()
            .filter(|r| Some(&r.run_id) != before.as_ref())
        {
            run_id = Some(r.run_id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(run_id) = run_id else {
        bail!("the daemon accepted the request but no run appeared; lifeboat status shows why")
    };
    let mut renderer = Renderer::new();
    loop {
        let detail = client.run(run_id.as_str()).await?;
        renderer.poll(&detail);
        match detail.run.status {
            RunStatus::Running => tokio::time::sleep(Duration::from_millis(250)).await,
            status => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&detail)?);
                }
                let code = if status == RunStatus::Completed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                };
                eprintln!(
                    "\nrun {run_id}: {status}{}",
                    detail
                        .run
                        .outcome
                        .map(|o| format!(": {o}"))
                        .unwrap_or_default()
                );
                if status == RunStatus::AwaitingApproval {
                    eprintln!(
                        "  next: lifeboat approve {run_id} (or lifeboat abort {run_id} --reason …)"
                    );
                }
                return Ok(code);
            }
        }
    }
}

pub fn pause(args: PauseArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let by = operator(args.by)?;
    switch(
        &args.service,
        state_dir,
        OperatorCommand::Pause {
            by,
            reason: args.reason,
        },
    )
}

pub fn resume(args: ResumeArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let by = operator(args.by)?;
    switch(&args.service, state_dir, OperatorCommand::Resume { by })
}

fn switch(service: &Service, state_dir: &Path, cmd: OperatorCommand) -> anyhow::Result<ExitCode> {
    let (policy, jpath) = load(service, state_dir)?;
    if let Some(client) = Client::find(&jpath) {
        let (path, body) = match &cmd {
            OperatorCommand::Pause { by, reason } => {
                ("/v1/pause", serde_json::json!({"by": by, "reason": reason}))
            }
            OperatorCommand::Resume { by } => ("/v1/resume", serde_json::json!({"by": by})),
            _ => bail!("not a pause or resume"),
        };
        return Ok(match runtime()?.block_on(client.post(path, &body))? {
            Reply::Accepted { message, .. } => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Reply::Refused { message, next_step } => refused(&message, next_step.as_deref()),
        });
    }
    // No daemon: the journal keeps it, and the daemon reads it when it starts.
    let journal = Journal::open_or_create(&jpath)?;
    let (by, action, detail) = match cmd {
        OperatorCommand::Pause { by, reason } => (by, "paused", reason),
        OperatorCommand::Resume { by } => (by, "resumed", String::new()),
        _ => bail!("not a pause or resume"),
    };
    journal.record(&policy.service, &by, action, &detail, now())?;
    println!(
        "{action} `{}` (no daemon is running; it will start {action})",
        policy.service
    );
    Ok(ExitCode::SUCCESS)
}

/// Carries an approved run on in this process (no daemon runs), holding the lock.
pub fn resume_run(
    policy_path: &Path,
    jpath: &Path,
    journal: Journal,
    run: &RunId,
    factory: &dyn Fn(Arc<Policy>, Option<AwsClients>) -> Arc<dyn StepFactory>,
) -> anyhow::Result<ExitCode> {
    let (policy, _) = policy::load_valid(policy_path)?;
    let policy = Arc::new(policy);
    let _lock = discovery::lock(jpath, "lifeboat CLI")?;
    let journal = Arc::new(journal);
    let rt = runtime()?;
    let aws = rt.block_on(aws_for(&policy));
    let (sink, mut rx) = ProgressSink::channel();
    let executor = Executor::new(journal.clone(), factory(policy.clone(), aws))
        .actor(format!("lifeboat CLI (pid {})", std::process::id()))
        .retry(retry_settings(&policy))
        .progress(sink);
    let id = run.clone();
    eprintln!("resuming run {run} here (no daemon is running)…");
    let outcome = rt.block_on(async move {
        let mut renderer = Renderer::new();
        let task = tokio::spawn(async move { executor.resume(&id).await });
        while let Some(p) = rx.recv().await {
            renderer.progress(&p);
        }
        anyhow::Ok(task.await.context("the run's task")??)
    })?;
    finish(&journal, run, outcome, false)
}
