//! A witness (`run --witness`) and a shadow daemon (`run --shadow`) never act, whoever
//! asks: every control call, with a valid token, is answered 404/405; no run is journaled;
//! the failover runbook's command step never writes its file; the CLI says why; and the
//! step factory such a daemon runs with refuses every step, so not even a run that
//! reached the executor could act.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use lifeboat::core::ids::{Epoch, RunId};
use lifeboat::core::model::Direction;
use lifeboat::core::plan::{self, PlanRequest};
use lifeboat::daemon::role::{self, Role};
use lifeboat::runbook::{Executor, RunOutcome};
use support::daemon::Daemon;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const KEY: &str = "k3y-k3y-k3y-k3y-k3y-k3y-k3y-k3y-k3y-k3y";

/// Both regions probed by `true`; the failover's only step writes `acted` beside the
/// policy. Automatic, so a controller would act on its own too.
fn write_policy(dir: &Path) -> PathBuf {
    let path = dir.join("svc.toml");
    let acted = dir.join("acted");
    let text = format!(
        r#"
[service]
name = "never-acts"

[regions]
primary = "us-east-1"
secondaries = ["us-west-2"]

[detection]
interval = "500ms"
timeout = "200ms"
failure_threshold = 2
recovery_threshold = 1
mode = "auto"

[guardrails]
witness_key = {{ env = "WITNESS_KEY" }}

[journal]
path = "svc.db"

[[probes]]
name = "alive"
component = "api"
kind = "command"
run = ["true"]
regions = ["us-east-1", "us-west-2"]

[[failover.steps]]
name = "act"
kind = "command"
run = ["sh", "-c", "echo acted >> {acted}"]

[[failback.steps]]
name = "act-back"
kind = "command"
run = ["sh", "-c", "echo acted >> {acted}"]
"#,
        acted = acted.display()
    );
    std::fs::write(&path, text).expect("write policy");
    std::fs::write(dir.join("tokens"), format!("ops: {TOKEN}\n")).expect("tokens");
    path
}

fn lifeboat(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    c.current_dir(dir)
        .env("WITNESS_KEY", KEY)
        .env("LIFEBOAT_STATE_DIR", dir)
        .env("USER", "tester")
        .env_remove("LIFEBOAT_API_TOKEN");
    c
}

fn start(dir: &Path, flag: &str) -> Daemon {
    let mut c = lifeboat(dir);
    c.args(["run", "-p", "svc.toml", flag, "--token-file", "tokens"]);
    Daemon::start(c, &dir.join("svc.db"), &dir.join("daemon.log"))
}

async fn nothing_acts(flag: &str) {
    let dir = support::tempdir();
    write_policy(dir.path());
    let d = start(dir.path(), flag);
    // Long enough to see both regions healthy: a controller could now fail over.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let http = reqwest::Client::new();
    for (path, full) in support::control_calls() {
        for body in [serde_json::json!({}), full] {
            let r = http
                .post(format!("{}{path}", d.url))
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .expect("post");
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            assert!(
                status == 404 || status == 405,
                "{flag}: POST {path} answered {status}: {text}"
            );
        }
    }
    // The operator's CLI, which finds the daemon beside the journal, is told why.
    let out = lifeboat(dir.path())
        .args(["failover", "-p", "svc.toml", "--yes"])
        .env("LIFEBOAT_API_TOKEN", TOKEN)
        .output()
        .expect("lifeboat failover");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{shown}");
    assert!(shown.contains("never acts"), "{shown}");

    tokio::time::sleep(Duration::from_millis(1000)).await;
    let runs = lifeboat::journal::Journal::open(&dir.path().join("svc.db"))
        .expect("journal")
        .runs(10)
        .expect("runs");
    assert!(runs.is_empty(), "{flag}: runs were journaled: {runs:?}");
    assert!(
        !dir.path().join("acted").exists(),
        "{flag}: the failover's command step ran"
    );
    // The views still answer.
    let status: serde_json::Value = http
        .get(format!("{}/v1/status", d.url))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["mode"], "shadow");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_witness_answers_no_control_call_and_runs_nothing() {
    nothing_acts("--witness").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shadow_daemon_answers_no_control_call_and_runs_nothing() {
    nothing_acts("--shadow").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_step_factory_of_a_daemon_that_never_acts_refuses_every_step() {
    let dir = support::tempdir();
    let path = write_policy(dir.path());
    let (policy, _) = lifeboat::policy::load_valid(&path).expect("policy");
    let probes =
        lifeboat::probe::Context::new(None, policy.detection.timeout, policy.detection.interval);
    let real: Arc<dyn lifeboat::runbook::StepFactory> =
        Arc::new(lifeboat::action::Factory::new(None, probes));
    let journal = Arc::new(
        lifeboat::journal::Journal::open_or_create(&dir.path().join("svc.db")).expect("journal"),
    );
    for r in [Role::Witness, Role::Shadow] {
        let exec = Executor::new(journal.clone(), role::factory_for(r, real.clone()));
        let run = format!("fo-{r:?}");
        let planned = plan::build(
            &policy,
            PlanRequest {
                direction: Direction::Failover,
                from: policy.regions.primary.clone(),
                to: policy.regions.secondaries[0].clone(),
                run_id: RunId(run.clone()),
                epoch: Epoch(0),
                trigger: lifeboat::core::reason::Trigger::Operator {
                    by: "test".into(),
                    note: String::new(),
                },
                allow_data_loss: false,
            },
        )
        .expect("plan");
        let out = exec.start(planned, "test").await.expect("run");
        match out {
            RunOutcome::Failed(steps) => {
                assert!(
                    steps.iter().any(|(_, m)| m.contains("never acts")),
                    "{steps:?}"
                );
            }
            other => panic!("{r:?}: {other:?}"),
        }
    }
    assert!(!dir.path().join("acted").exists(), "a step ran");
    // A controller's factory is the real one: the same plan acts (which is what makes the
    // refusals above mean something).
    let exec = Executor::new(journal, role::factory_for(Role::Controller, real));
    let planned = plan::build(
        &policy,
        PlanRequest {
            direction: Direction::Failover,
            from: policy.regions.primary.clone(),
            to: policy.regions.secondaries[0].clone(),
            run_id: RunId("fo-controller".into()),
            epoch: Epoch(0),
            trigger: lifeboat::core::reason::Trigger::Operator {
                by: "test".into(),
                note: String::new(),
            },
            allow_data_loss: false,
        },
    )
    .expect("plan");
    let out = exec.start(planned, "test").await.expect("run");
    assert_eq!(out, RunOutcome::Completed);
    assert!(dir.path().join("acted").exists());
}
