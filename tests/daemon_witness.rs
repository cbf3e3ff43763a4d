//! Two real `lifeboat run` processes: a controller with `quorum = 2` and a witness
//! (`run --witness`) that reaches the service by its own paths (its own vars file). The
//! controller alone seeing an outage holds, says why, and alerts only once the hold
//! outlasts its grace; when the witness sees it too, the failover starts.

mod support;

use support::Proc;
use support::daemon::{status_json as status, until_json as until};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lifeboat::sandbox::endpoint::{self, Faults, Mode};

/// The policy both processes read; the ports come from `[vars]`, so each can be given
/// its own view of the primary's API.
fn policy(dir: &Path, east: u16, west: u16, witness: u16) -> PathBuf {
    let text = format!(
        r#"
[vars]
east_port = {east}
west_port = {west}
witness_port = {witness}

[service]
name = "quorum-test"

[regions]
primary = "us-east-1"
secondaries = ["us-west-2"]

[detection]
interval = "500ms"
timeout = "200ms"
failure_threshold = 3
mode = "auto"

[guardrails]
quorum = 2
witnesses = ["http://127.0.0.1:${{witness_port}}"]
witness_key = {{ env = "WITNESS_KEY" }}

[journal]
path = "journal.db"

[channels.oncall]
kind = "webhook"
url = {{ env = "ONCALL_HOOK" }}
alerts = true

[targets.api]
kind = "http"
regions.us-east-1.url = "http://127.0.0.1:${{east_port}}/health"
regions.us-west-2.url = "http://127.0.0.1:${{west_port}}/health"

[[probes]]
name = "api"
component = "api"
kind = "http"
target = "api"

[[failover.steps]]
name = "confirm"
kind = "manual_approval"
prompt = "go?"

[[failback.steps]]
name = "healthy"
kind = "wait_healthy"
"#
    );
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).expect("write policy");
    path
}

fn run(policy: &Path, extra: &[&str], hook: &str, log: &Path) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .args(["run", "--policy"])
            .arg(policy)
            .args(extra)
            .env("LIFEBOAT_API_TOKEN", "")
            .env("ONCALL_HOOK", hook)
            .env("WITNESS_KEY", "a-shared-witness-key-for-this-test-0123")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log"))
            .spawn()
            .expect("start lifeboat run"),
    )
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// A webhook receiver that keeps every body it is sent, with when (wall clock, ms).
async fn receiver() -> (String, Arc<Mutex<Vec<(u64, String)>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let keep = keep.clone();
            async move {
                keep.lock().expect("lock").push((wall_ms(), body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, got)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_holds_until_the_witness_also_sees_the_outage() {
    let dir = support::tempdir();
    let faults = |r| Faults::new(r);
    let (east_f, west_f, east_w) = (
        faults("us-east-1"),
        faults("us-west-2"),
        faults("us-east-1"),
    );
    let (east, _t1) = endpoint::spawn(east_f.clone(), 0).await.expect("east");
    let (west, _t2) = endpoint::spawn(west_f, 0).await.expect("west");
    // The witness reaches the primary's API through a path of its own.
    let (east_for_witness, _t3) = endpoint::spawn(east_w.clone(), 0)
        .await
        .expect("east (witness)");
    let witness_port = lifeboat::sandbox::process::free_port().expect("port");
    let policy = policy(dir.path(), east, west, witness_port);
    let vars = dir.path().join("witness.toml");
    std::fs::write(
        &vars,
        format!(
            "east_port = {east_for_witness}\nwest_port = {west}\nwitness_port = {witness_port}\n"
        ),
    )
    .expect("witness vars");
    let (hook, alerts) = receiver().await;

    let listen = format!("127.0.0.1:{witness_port}");
    let witness_journal = dir.path().join("witness.db");
    let _witness = run(
        &policy,
        &[
            "--witness",
            "--vars",
            vars.to_str().expect("utf-8"),
            "--journal",
            witness_journal.to_str().expect("utf-8"),
            "--listen",
            &listen,
        ],
        &hook,
        &dir.path().join("witness.log"),
    );
    let _controller = run(&policy, &[], &hook, &dir.path().join("controller.log"));
    let journal = dir.path().join("journal.db");
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = loop {
        if let Some(published) = lifeboat::daemon::discovery::find(&journal) {
            break published.url;
        }
        assert!(
            Instant::now() < deadline,
            "the controller did not publish its API"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let witness_url = format!("http://{listen}");
    until(
        &witness_url,
        "the witness answers as a shadow",
        Duration::from_secs(20),
        |v| v["mode"] == "shadow",
    )
    .await;
    until(
        &url,
        "both regions healthy, the witness heard",
        Duration::from_secs(20),
        |v| {
            v["state"] == "primary"
                && v["witnesses"][0]["fresh"] == true
                && v["regions"]
                    .as_array()
                    .is_some_and(|r| r.iter().all(|x| x["verdict"]["verdict"] == "healthy"))
        },
    )
    .await;

    // Only the controller's path to the primary fails: it holds, and says why.
    east_f.set_mode(Mode::Error);
    until(
        &url,
        "blocked for want of a quorum",
        Duration::from_secs(10),
        |v| v["state"] == "blocked" && v["why"].as_str().is_some_and(|w| w.contains("quorum is 2")),
    )
    .await;
    let v = status(&url).await;
    assert_eq!(
        v["witnesses"][0]["sees_down"],
        serde_json::json!([]),
        "{v:#}"
    );
    assert!(
        v["next_step"]
            .as_str()
            .is_some_and(|n| n.contains("lifeboat failover")),
        "{v:#}"
    );
    // The hold outlasts its grace (two intervals): then, and not before, it is paged.
    let blocked_since = v["phase"]["since"].as_u64().expect("blocked since");
    let paged = Instant::now() + Duration::from_secs(5);
    let at = loop {
        let found = alerts
            .lock()
            .expect("lock")
            .iter()
            .find(|(_, a)| a.contains("quorum"))
            .map(|(at, _)| *at);
        if let Some(at) = found {
            break at;
        }
        assert!(Instant::now() < paged, "the lasting hold was never alerted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        at >= blocked_since + 900,
        "the no-quorum alert came {} ms after the hold began, before its grace",
        at.saturating_sub(blocked_since)
    );
    let runs: serde_json::Value = reqwest::get(format!("{url}/v1/runs"))
        .await
        .expect("runs")
        .json()
        .await
        .expect("json");
    assert_eq!(
        runs,
        serde_json::json!([]),
        "no run while the quorum is short"
    );

    // The witness sees the primary fail too: two votes, the failover starts (and waits
    // at its manual approval step).
    east_w.set_mode(Mode::Error);
    until(&url, "the failover starts", Duration::from_secs(10), |v| {
        v["state"] == "failing_over"
    })
    .await;
}
