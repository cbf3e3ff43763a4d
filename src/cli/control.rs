//! The operator's commands: `status`, `failover`, `failback`, `pause`, `resume`. Each
//! talks to the daemon when one runs on the service's journal, and otherwise acts itself
//! through the same driver, holding the journal's lock so two runners never act at once.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

pub use super::control_args::*;
use super::journal_args::operator;
use super::progress::Renderer;
use super::reply::{answer, confirm, finish};
use super::standalone::{Standalone, aws_for, observe_once};
use super::{ColorChoice, FactoryFn, render_plan, status_text};
use crate::clock::WallClock;
use crate::contract::{FailbackBody, FailoverBody, PauseBody, Reply, ResumeBody};
use crate::core::controller::{Input, OperatorCommand, State};
use crate::core::model::{Policy, RegionName};
use crate::core::step::RunStatus;
use crate::core::summary::{own_vote, summarize};
use crate::daemon::client::Client;
use crate::daemon::status;
use crate::driver::{Request, restored_state};
use crate::journal::{self, Journal};
use crate::policy;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("start the async runtime")
}

fn load(service: &Service, state_dir: &Path) -> anyhow::Result<(Arc<Policy>, PathBuf)> {
    let file = super::fleet::policy_file(service, state_dir)?;
    let (policy, _) = policy::load_valid(&file)?;
    let path = journal::location(&policy, state_dir);
    Ok((Arc::new(policy), path))
}

pub fn status(args: StatusArgs, state_dir: &Path, color: ColorChoice) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    if args.service.policy.is_none()
        && args.service.name.is_none()
        && let Some((client, fleet)) = Client::find_fleet(state_dir)
        && fleet.services.len() != 1
    {
        let lines = rt.block_on(client.services())?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&lines)?);
        } else {
            print!("{}", super::fleet::render(&lines));
        }
        let healthy = lines.iter().all(|l| l.healthy && l.policy_error.is_none());
        return Ok(if healthy {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let (policy, jpath) = load(&args.service, state_dir)?;
    let view = match Client::find(&jpath) {
        Some(c) => rt.block_on(c.status())?,
        None => rt.block_on(standalone_status(&policy, &jpath))?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", status_text::render(&view, color.stdout()));
    }
    Ok(if view.healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `lifeboat reload`: the daemon reads its policies again (a `--policies` daemon its whole
/// directory, a `--policy` daemon its file); prints what changed. Exit 1 when a file was
/// refused or a change put off.
pub fn reload(args: ReloadArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let fleet = match args.policy {
        None => Client::find_fleet(state_dir).map(|(c, _)| c),
        Some(_) => None,
    };
    let client = match fleet {
        Some(c) => c,
        None => {
            let service = Service {
                policy: args.policy.clone(),
                name: None,
            };
            let (policy, jpath) = load(&service, state_dir)?;
            Client::find(&jpath).with_context(|| {
                format!(
                    "no daemon runs `{}` here (none published {}), and none started with --policies ({} not found); start one with lifeboat run",
                    policy.service,
                    crate::daemon::discovery::api_path(&jpath).display(),
                    crate::daemon::discovery::fleet_path(state_dir).display()
                )
            })?
        }
    };
    let report = runtime()?.block_on(client.reload())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", super::fleet::render_reload(&report));
    }
    Ok(if report.refused.is_empty() && report.deferred.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What `status` shows without a daemon: the journal's state and one probe round.
async fn standalone_status(policy: &Policy, jpath: &Path) -> anyhow::Result<status::StatusView> {
    let journal = if jpath.exists() {
        Some(Journal::open(jpath).with_context(|| format!("open journal {}", jpath.display()))?)
    } else {
        None
    };
    let t = WallClock::system().now();
    let state = match &journal {
        Some(j) => restored_state(policy, j, t)?,
        None => State::new(policy, policy.regions.primary.clone(), t),
    };
    let (tracker, links) = observe_once(policy, aws_for(policy).await).await?;
    let votes = vec![own_vote(&tracker, &state.active)];
    let summary = summarize(&tracker, &links, &state.active, votes, t);
    let state = crate::core::controller::step(policy, &state, Input::Health(summary), t).0;
    let last_run = journal.as_ref().and_then(|j| j.runs(1).ok()?.pop());
    let source = "one probe round just now (no daemon is running on this service)";
    Ok(status::build(
        policy,
        &state,
        &tracker,
        &links,
        last_run,
        t,
        source.into(),
    ))
}

/// The name for the audit trail; a dry run changes nothing and needs none.
fn who(by: Option<String>, dry_run: bool) -> anyhow::Result<String> {
    match operator(by) {
        Ok(b) => Ok(b),
        Err(_) if dry_run => Ok("dry run".to_string()),
        Err(e) => Err(e),
    }
}

pub fn failover(
    args: FailoverArgs,
    state_dir: &Path,
    factory: &FactoryFn,
) -> anyhow::Result<ExitCode> {
    let c = &args.common;
    let cmd = OperatorCommand::Failover {
        to: args.to.clone().map(RegionName),
        allow_data_loss: args.allow_data_loss,
        by: who(c.by.clone(), c.dry_run)?,
        note: c.note.clone(),
    };
    act(&args.service, state_dir, cmd, c, factory)
}

pub fn failback(
    args: FailbackArgs,
    state_dir: &Path,
    factory: &FactoryFn,
) -> anyhow::Result<ExitCode> {
    let c = &args.common;
    let cmd = OperatorCommand::Failback {
        by: who(c.by.clone(), c.dry_run)?,
        note: c.note.clone(),
    };
    act(&args.service, state_dir, cmd, c, factory)
}

fn act(
    service: &Service,
    state_dir: &Path,
    cmd: OperatorCommand,
    c: &RunArgs,
    factory: &FactoryFn,
) -> anyhow::Result<ExitCode> {
    let (policy, jpath) = load(service, state_dir)?;
    let rt = runtime()?;
    if let Some(client) = Client::find(&jpath) {
        return rt.block_on(through_daemon(&client, cmd, c));
    }
    rt.block_on(async {
        let mut here = Standalone::open(policy, &jpath, factory).await?;
        if let Some(run) = &here.unfinished {
            bail!(
                "run {} is unfinished ({}); finish it first: lifeboat approve {} or lifeboat abort {} --reason …, or start the daemon, which resumes it",
                run.run_id,
                run.status,
                run.run_id,
                run.run_id
            );
        }
        eprintln!("probing every region once to check the guardrails…");
        here.observe().await?;
        let plan = match here.driver.preview(&cmd) {
            Ok(p) => p,
            Err(reply) => return Ok(answer(reply)),
        };
        if !c.json {
            print!("{}", render_plan(&plan, true));
        }
        if c.dry_run {
            println!("\ndry run: the guardrails allow this {}; nothing was changed", plan.direction);
            return Ok(ExitCode::SUCCESS);
        }
        confirm(&plan, c.yes)?;
        let req = Request::Operator {
            cmd,
            dry_run: false,
            expect_to: Some(plan.to.clone()),
        };
        let run_id = match here.driver.request(req) {
            Reply::Accepted {
                run_id: Some(id), ..
            } => id,
            other => return Ok(answer(other)),
        };
        let outcome = here.follow().await?;
        let detail = here.driver.journal().detail(&run_id)?;
        if c.json {
            println!("{}", serde_json::to_string_pretty(&detail)?);
        }
        Ok(finish(&detail.run, outcome))
    })
}

/// The daemon decides: a dry run first (the plan it would run), then, confirmed, the
/// request pinned to the previewed target; the reply names the run, which is followed.
async fn through_daemon(
    client: &Client,
    cmd: OperatorCommand,
    c: &RunArgs,
) -> anyhow::Result<ExitCode> {
    let send = |dry_run: bool, expect_to: Option<RegionName>| {
        let cmd = cmd.clone();
        async move {
            match cmd {
                OperatorCommand::Failover {
                    to,
                    allow_data_loss,
                    by,
                    note,
                } => {
                    let body = FailoverBody {
                        to,
                        allow_data_loss,
                        by,
                        note,
                        dry_run,
                        expect_to,
                    };
                    client.failover(&body).await
                }
                OperatorCommand::Failback { by, note } => {
                    client.failback(&FailbackBody { by, note, dry_run }).await
                }
                _ => bail!("not a run command"),
            }
        }
    };
    let plan = match send(true, None).await? {
        Reply::Preview { plan } => plan,
        other => return Ok(answer(other)),
    };
    if !c.json {
        print!("{}", render_plan(&plan, true));
        eprintln!("(the daemon, pid {}, runs it)", client.pid);
    }
    if c.dry_run {
        println!("\ndry run: nothing was sent to the daemon");
        return Ok(ExitCode::SUCCESS);
    }
    confirm(&plan, c.yes)?;
    let run_id = match send(false, Some(plan.to.clone())).await? {
        Reply::Accepted {
            run_id: Some(id),
            message,
        } => {
            eprintln!("{message}");
            id
        }
        other => return Ok(answer(other)),
    };
    let mut renderer = Renderer::new();
    loop {
        let detail = client.run(&run_id).await?;
        renderer.poll(&detail);
        if detail.run.status == RunStatus::Running {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        if c.json {
            println!("{}", serde_json::to_string_pretty(&detail)?);
        }
        let status = detail.run.status;
        let outcome = detail
            .run
            .outcome
            .map(|o| format!(": {o}"))
            .unwrap_or_default();
        eprintln!("\nrun {run_id}: {status}{outcome}");
        if status == RunStatus::AwaitingApproval {
            eprintln!("  next: lifeboat approve {run_id} (or lifeboat abort {run_id} --reason …)");
        }
        return Ok(if status == RunStatus::Completed {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
}

pub fn pause(args: PauseArgs, state_dir: &Path, factory: &FactoryFn) -> anyhow::Result<ExitCode> {
    let by = operator(args.by)?;
    let cmd = OperatorCommand::Pause {
        by,
        reason: args.reason,
    };
    switch(&args.service, state_dir, cmd, factory)
}

pub fn resume(args: ResumeArgs, state_dir: &Path, factory: &FactoryFn) -> anyhow::Result<ExitCode> {
    let by = operator(args.by)?;
    switch(
        &args.service,
        state_dir,
        OperatorCommand::Resume { by },
        factory,
    )
}

/// Pause or resume: through the daemon, or recorded in the journal by the driver here
/// (the daemon reads it when it starts).
fn switch(
    service: &Service,
    state_dir: &Path,
    cmd: OperatorCommand,
    factory: &FactoryFn,
) -> anyhow::Result<ExitCode> {
    let (policy, jpath) = load(service, state_dir)?;
    let rt = runtime()?;
    if let Some(client) = Client::find(&jpath) {
        let reply = rt.block_on(async {
            match cmd {
                OperatorCommand::Pause { by, reason } => {
                    client.pause(&PauseBody { by, reason }).await
                }
                OperatorCommand::Resume { by } => client.resume(&ResumeBody { by }).await,
                _ => bail!("not a pause or resume"),
            }
        })?;
        return Ok(answer(reply));
    }
    rt.block_on(async {
        let mut here = Standalone::open(policy, &jpath, factory).await?;
        let req = Request::Operator {
            cmd,
            dry_run: false,
            expect_to: None,
        };
        let code = answer(here.driver.request(req));
        eprintln!(
            "(no daemon is running on this service; the journal keeps it for the next start)"
        );
        Ok(code)
    })
}
