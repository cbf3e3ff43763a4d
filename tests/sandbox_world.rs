//! `lifeboat sandbox up|status|down` end to end, with the real binary: everything starts,
//! writes commit, the controller-facing proxies fail on command while clients still get
//! through, and `down` leaves nothing running or on disk.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use lifeboat::sandbox::world::World;

mod support;

fn lifeboat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .output()
        .expect("run lifeboat")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_starts_serves_breaks_on_command_and_stops_cleanly() {
    let root = support::tempdir();
    let policy = support::scratch_sandbox_policy(root.path());
    let up = lifeboat(&["sandbox", "up", "--policy", &policy]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let dir = root.path().join(".lifeboat/sandbox");
    let world = World::load(&dir).expect("sandbox record");

    let status = lifeboat(&["sandbox", "status", "--policy", &policy, "--json"]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let parts: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert!(parts.as_array().expect("array").len() >= 8);

    // The policy now reads the ports the sandbox chose.
    let loaded = lifeboat::policy::load(Path::new(&policy));
    let p = loaded
        .policy
        .expect("the sandbox policy stays valid with its vars file");
    assert_eq!(
        p.aws.endpoint_url.as_deref(),
        Some(world.moto_url().as_str())
    );

    // The witness answers its status API, as a shadow observer with its own view.
    let witness = world
        .witness
        .as_ref()
        .expect("the sandbox starts a witness");
    let view: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{}/v1/status", witness.port))
            .await
            .expect("witness status")
            .json()
            .await
            .expect("witness status is JSON");
    assert_eq!(view["mode"], "shadow", "{view}");
    assert_eq!(view["service"], "sandbox-orders");

    // A write through us-east-1's API commits on the primary and replicates.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let api = world.api_url("us-east-1").expect("api");
    let r = http
        .post(format!("{api}/orders"))
        .json(&serde_json::json!({"n": 7}))
        .send()
        .await
        .expect("write");
    assert_eq!(r.status(), 201);
    let (primary, standby) = (
        world.pg("us-east-1").expect("pg"),
        world.pg("us-west-2").expect("pg"),
    );
    standby
        .wait_caught_up(&primary, Duration::from_secs(5))
        .expect("replication");
    assert_eq!(
        standby
            .sql_in("orders", "SELECT region FROM orders WHERE n = 7")
            .expect("read"),
        "us-east-1"
    );

    // Cut the controller's path to the API: the proxied port stops answering, the direct one does not.
    let proxied = world.regions["us-east-1"].1.proxies["api"].listen;
    let set = http
        .post(format!("{api}/proxies/api"))
        .json(&serde_json::json!({"mode": "blackhole"}))
        .send()
        .await
        .expect("set");
    assert_eq!(set.status(), 200);
    assert!(
        http.get(format!("http://127.0.0.1:{proxied}/health"))
            .timeout(Duration::from_millis(300))
            .send()
            .await
            .is_err()
    );
    assert_eq!(
        http.get(format!("{api}/health"))
            .send()
            .await
            .expect("direct")
            .status(),
        200
    );

    let down = lifeboat(&["sandbox", "down", "--policy", &policy]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(!dir.exists(), "down removes the sandbox's data");
    for pid in [
        world.moto.pid,
        world.regions["us-east-1"].0.pid,
        world.redis["us-west-2"].pid,
    ] {
        assert!(
            !lifeboat::sandbox::process::alive(pid),
            "pid {pid} still runs"
        );
    }
    assert!(!primary.is_running() && !standby.is_running());
}
