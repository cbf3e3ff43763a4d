//! The audit's finding, replayed on the sandbox's real services: the sandbox's witness
//! (`lifeboat run --witness`, which `sandbox up` starts) is sent every control call with
//! its own API token, and nothing changes: each call is answered 404/405, the standby
//! PostgreSQL stays in recovery and the primary writable, the Route 53 record in moto
//! still points at the primary region, and the witness journals no run.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use lifeboat::drill::observe;
use lifeboat::sandbox::world::{self, PRIMARY, SECONDARY, World};

mod support;

fn lifeboat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("AWS_ACCESS_KEY_ID", lifeboat::sandbox::moto::ACCESS_KEY_ID)
        .env(
            "AWS_SECRET_ACCESS_KEY",
            lifeboat::sandbox::moto::SECRET_ACCESS_KEY,
        )
        .output()
        .expect("run lifeboat")
}

/// Takes the sandbox down whatever happens to the test.
struct Down(std::path::PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = world::down(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sandbox_witness_promotes_nothing_whatever_its_token_asks_on_the_sandbox() {
    let root = support::tempdir();
    let policy = support::scratch_sandbox_policy(root.path());
    let up = lifeboat(&["sandbox", "up", "--policy", &policy]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let dir = root.path().join(".lifeboat/sandbox");
    let _down = Down(dir.clone());
    let world = World::load(&dir).expect("sandbox record");
    let witness = world
        .witness
        .as_ref()
        .expect("the sandbox starts a witness");
    let url = format!("http://127.0.0.1:{}", witness.port);
    // The token the witness generated for itself, beside its journal: the audit posted
    // with it.
    let journal = dir.join("witness.db");
    let token = std::fs::read_to_string(lifeboat::daemon::discovery::token_path(&journal))
        .expect("the witness's generated token");
    let token = token.trim();

    let t0 = Instant::now();
    let (_, dns) = observe::follow_dns(&world, t0);
    let http = reqwest::Client::new();
    let mut answered = Vec::new();
    for (path, body) in support::control_calls() {
        let r = http
            .post(format!("{url}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("post");
        let status = r.status().as_u16();
        if status != 404 && status != 405 {
            let text = r.text().await.unwrap_or_default();
            answered.push(format!("POST {path}: {status} {text}"));
        }
    }
    // What matters most is checked first: the databases and DNS. Long enough for a failover the calls had started to promote the standby (the
    // sandbox's promote step takes about a second).
    tokio::time::sleep(Duration::from_secs(5)).await;

    let standby = world.pg(SECONDARY).expect("standby");
    assert!(
        standby.in_recovery().expect("ask the standby"),
        "the standby was promoted; the witness answered:\n{}",
        answered.join("\n")
    );
    let primary = world.pg(PRIMARY).expect("primary");
    assert!(
        !primary.in_recovery().expect("ask the primary"),
        "the primary was demoted"
    );
    let changes = dns.stop().await;
    assert!(
        !changes.is_empty() && changes.iter().all(|(_, region)| region == PRIMARY),
        "the DNS record moved: {changes:?}"
    );
    let runs = lifeboat::journal::Journal::open(&journal)
        .expect("the witness's journal")
        .runs(10)
        .expect("runs");
    assert!(runs.is_empty(), "the witness journaled runs: {runs:?}");
    assert!(
        answered.is_empty(),
        "the witness answered control calls other than 404/405:\n{}",
        answered.join("\n")
    );
}
