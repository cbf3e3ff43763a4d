//! One owner for the run lifecycle, end to end with the real binary and no sandbox: the
//! standalone CLI and the daemon both send the "old primary not fenced" alert (the fence
//! step tries a PostgreSQL that is not there), the daemon's reply names the run the CLI
//! follows, and a run resumed after the policy file changed acts on what it planned.

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;

fn lifeboat(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    c.args(args)
        .current_dir(dir)
        .env("LIFEBOAT_STATE_DIR", dir)
        .env("USER", "tester")
        .env_remove("LIFEBOAT_API_TOKEN")
        .env_remove(lifeboat::runbook::failpoint::ENV);
    c
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A webhook receiver on loopback that keeps every body it is sent.
struct Hook {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

async fn hook() -> Hook {
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let keep = bodies.clone();
    let app = Router::new().route(
        "/hook",
        post(move |body: String| {
            let keep = keep.clone();
            async move {
                keep.lock().expect("lock").push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Hook {
        url: format!("http://{addr}/hook"),
        bodies,
    }
}

impl Hook {
    fn saw(&self, needle: &str) -> bool {
        self.bodies
            .lock()
            .expect("lock")
            .iter()
            .any(|b| b.contains(needle))
    }
}

/// A service whose regions are probed by `true`, whose old primary is a PostgreSQL on a
/// port nothing listens on, and whose alerts go to a webhook (URL from $ALERT_HOOK).
/// `marker` is written by the runbook's last failover step into `effects`.
fn write_policy(dir: &Path, marker: &str) -> PathBuf {
    let path = dir.join("svc.toml");
    let text = format!(
        r#"
[service]
name = "lifecycle"

[regions]
primary = "us-east-1"
secondaries = ["us-west-2"]

[detection]
interval = "1s"
timeout = "500ms"
failure_threshold = 3
recovery_threshold = 1
mode = "manual"

[journal]
path = "svc.db"

[channels.page]
kind = "webhook"
url = {{ env = "ALERT_HOOK" }}
alerts = true

[targets.db]
kind = "postgres"
user = "lifeboat"
database = "orders"
regions.us-east-1.host = "127.0.0.1"
regions.us-east-1.port = 9
regions.us-west-2.host = "127.0.0.1"
regions.us-west-2.port = 9

[[probes]]
name = "alive"
component = "api"
kind = "command"
run = ["true"]
regions = ["us-east-1", "us-west-2"]

[[failover.steps]]
name = "fence-old-primary"
kind = "postgres_fence"
target = "db"
region = "@from"

[[failover.steps]]
name = "first"
kind = "command"
run = ["sh", "-c", "echo first-{marker} >> effects"]

[[failover.steps]]
name = "second"
kind = "command"
run = ["sh", "-c", "echo second-{marker} >> effects"]

[[failback.steps]]
name = "primary-healthy"
kind = "wait_healthy"
region = "@to"
successes = 1
"#
    );
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write policy");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standalone_failover_alerts_on_an_unfenced_old_primary() {
    let dir = support::tempdir();
    write_policy(dir.path(), "a");
    let hook = hook().await;
    let out = lifeboat(dir.path(), &["failover", "-p", "svc.toml", "--yes"])
        .env("ALERT_HOOK", &hook.url)
        .output()
        .expect("run lifeboat");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        hook.saw("could not be fenced") && hook.saw("NOT FENCED"),
        "alerts: {:?}",
        hook.bodies.lock().expect("lock")
    );
    // The decision is journaled with the notice, as the daemon journals it.
    let out = lifeboat(dir.path(), &["history", "-p", "svc.toml", "--decisions"])
        .output()
        .expect("history");
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("old_primary_not_fenced"), "{shown}");
    assert!(shown.contains("operator"), "{shown}");
}

/// The daemon of `dir`'s policy, stopped when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn daemon(dir: &Path, hook: &str) -> Daemon {
    let child = lifeboat(dir, &["run", "-p", "svc.toml"])
        .env("ALERT_HOOK", hook)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).expect("log"))
        .spawn()
        .expect("start the daemon");
    let deadline = Instant::now() + Duration::from_secs(20);
    while lifeboat::daemon::discovery::find(&dir.join("svc.db")).is_none() {
        assert!(
            Instant::now() < deadline,
            "the daemon never published its address"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Daemon(child)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_alerts_on_an_unfenced_old_primary_and_names_the_run_it_started() {
    let dir = support::tempdir();
    write_policy(dir.path(), "a");
    let hook = hook().await;
    let _d = daemon(dir.path(), &hook.url);
    // Let the daemon see both regions once (a failover needs a healthy target).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = lifeboat(dir.path(), &["failover", "-p", "svc.toml", "--yes"])
        .output()
        .expect("failover");
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("the daemon, pid"),
        "went through the daemon: {shown}"
    );
    let runs = lifeboat::journal::Journal::open(&dir.path().join("svc.db"))
        .expect("journal")
        .runs(10)
        .expect("runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(
        shown.contains(&format!("run {}: completed", runs[0].run_id)),
        "the CLI followed the run the daemon named: {shown}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hook.saw("could not be fenced") {
        assert!(
            Instant::now() < deadline,
            "no alert: {:?}",
            hook.bodies.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "kills the CLI at a failpoint: run with --features failpoints"
)]
fn a_run_resumed_after_the_policy_changed_acts_on_what_it_planned() {
    let dir = support::tempdir();
    write_policy(dir.path(), "planned");
    let out = lifeboat(dir.path(), &["failover", "-p", "svc.toml", "--yes"])
        .env("ALERT_HOOK", "http://127.0.0.1:9/hook")
        .env(lifeboat::runbook::failpoint::ENV, "second:before_apply")
        .output()
        .expect("run lifeboat");
    assert!(
        !out.status.success(),
        "the failpoint kills it: {}",
        text(&out)
    );
    let effects = || std::fs::read_to_string(dir.path().join("effects")).unwrap_or_default();
    assert_eq!(effects(), "first-planned\n");

    // The operator edits the policy while the run is unfinished.
    write_policy(dir.path(), "edited");
    let _d = daemon(dir.path(), "http://127.0.0.1:9/hook");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !effects().contains("second-") {
        assert!(Instant::now() < deadline, "not resumed: {}", effects());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        effects(),
        "first-planned\nsecond-planned\n",
        "the resumed run ran the command it planned, not the edited one"
    );
}
