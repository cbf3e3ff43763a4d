//! The daemon end to end against the sandbox's real services (PostgreSQL primary and
//! streaming standby, Redis, moto, the regions' APIs and workers, the witness): the
//! primary database stops and the primary API fails → `lifeboat run` fails over by
//! itself; the primary is repaired and rejoined → `lifeboat failback` brings the writer
//! and DNS home; a client numbering its inserts throughout finds every acknowledged one.
//!
//! Prints `lifeboat status` in each state (run with `--nocapture` to read them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lifeboat::daemon::status::StatusView;
use lifeboat::drill::observe;
use lifeboat::sandbox::postgres::StopMode;
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

/// The daemon and the sandbox, stopped whatever happens to the test.
struct Fixture {
    daemon: Child,
    policy: String,
    dir: PathBuf,
    log: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        lifeboat::sandbox::process::stop_pid(self.daemon.id(), Duration::from_secs(10));
        let _ = self.daemon.wait();
        let _ = world::down(&self.dir);
    }
}

impl Fixture {
    async fn status(&self) -> StatusView {
        let out = lifeboat(&["status", "--policy", &self.policy, "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json: {e}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// `lifeboat status` as an operator reads it, printed under a heading; and, at the
    /// same moment, `status --json` checked against its published schema.
    fn show_status(&self, heading: &str) -> String {
        let json = lifeboat(&["status", "--policy", &self.policy, "--json"]);
        support::contract::assert_output_valid("status", &json.stdout);
        let out = lifeboat(&["status", "--policy", &self.policy]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("\n===== lifeboat status — {heading}\n{text}");
        text
    }

    async fn until(&self, what: &str, within: Duration, ok: impl Fn(&StatusView) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let v = self.status().await;
            if ok(&v) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: not within {within:?}; state {} ({:?}); daemon log:\n{}",
                    v.state,
                    v.why,
                    lifeboat::sandbox::process::tail(&self.log, 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_daemon_fails_over_by_itself_and_fails_back_on_command_losing_no_acknowledged_write() {
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
    let log = root.path().join("daemon.log");
    let daemon = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["run", "--policy", &policy])
        .env("AWS_ACCESS_KEY_ID", lifeboat::sandbox::moto::ACCESS_KEY_ID)
        .env(
            "AWS_SECRET_ACCESS_KEY",
            lifeboat::sandbox::moto::SECRET_ACCESS_KEY,
        )
        .env("LIFEBOAT_API_TOKEN", "")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start the daemon");
    let fx = Fixture {
        daemon,
        policy: policy.clone(),
        dir: dir.clone(),
        log,
    };
    let (loaded, _) = lifeboat::policy::load_valid(Path::new(&policy)).expect("policy");
    let d = &loaded.detection;

    // Everything healthy, serving from the primary.
    fx.until("every probe passes", Duration::from_secs(30), |v| {
        v.state == "primary" && !v.probes.is_empty() && v.probes.iter().all(|p| p.ok)
    })
    .await;
    fx.show_status("healthy, serving from the primary");

    let t0 = Instant::now();
    let (active, dns) = observe::follow_dns(&world, t0);
    let (writes, load) = observe::write_load(&world, 20, active, t0);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The primary region fails: its API answers 500 and its database stops.
    let api = world.api_url(PRIMARY).expect("api");
    let r = reqwest::Client::new()
        .post(format!("{api}/fault"))
        .json(&serde_json::json!({"mode": "error"}))
        .send()
        .await
        .expect("API fault switch");
    assert!(r.status().is_success());
    let fault = lifeboat::clock::WallClock::system().now();
    let old = world.pg(PRIMARY).expect("pg");
    tokio::task::spawn_blocking(move || old.stop(StopMode::Fast))
        .await
        .expect("join")
        .expect("stop the primary database");

    fx.until("the daemon fails over", Duration::from_secs(60), |v| {
        v.state == "on_secondary"
            && v.last_run.as_ref().is_some_and(|r| {
                r.direction == lifeboat::core::model::Direction::Failover
                    && r.status == lifeboat::core::step::RunStatus::Completed
            })
    })
    .await;
    let v = fx.status().await;
    let run = v.last_run.clone().expect("the failover run");
    let decided = run.created_at.since(fault).as_secs_f64();
    let finished = run
        .finished_at
        .expect("finished")
        .since(fault)
        .as_secs_f64();
    let runbook = finished - decided;
    println!(
        "failover: decided {decided:.2}s after the fault, completed {finished:.2}s after it (runbook {runbook:.2}s); worst-case detection {:.2}s",
        d.worst_case_detection().as_secs_f64()
    );
    // interval × threshold + timeout, plus one interval for where in its round the fault
    // landed, plus scheduling slack on a loaded two-core machine.
    let bound = d.worst_case_detection() + d.interval + Duration::from_secs(2);
    assert!(
        decided <= bound.as_secs_f64(),
        "decided {decided:.2}s after the fault; the bound is {bound:?}"
    );
    assert!(
        run.automatic,
        "started by the controller itself: {}",
        run.started_by
    );
    let text = fx.show_status("after the automatic failover");
    assert!(text.contains("serving from us-west-2"), "{text}");
    assert!(
        !world
            .pg(SECONDARY)
            .expect("pg")
            .in_recovery()
            .expect("role")
    );

    // Repair the primary region: API healthy, database rejoined as a standby of the new
    // primary (pg_rewind), which is the resync a failback waits for.
    reqwest::Client::new()
        .post(format!("{api}/fault"))
        .json(&serde_json::json!({"mode": "healthy"}))
        .send()
        .await
        .expect("heal the API");
    let (old, new) = (
        world.pg(PRIMARY).expect("pg"),
        world.pg(SECONDARY).expect("pg"),
    );
    tokio::task::spawn_blocking(move || old.rewind_from(&new))
        .await
        .expect("join")
        .expect("rejoin the old primary as a standby");
    fx.until(
        "the primary is healthy and in sync",
        Duration::from_secs(60),
        |v| {
            v.regions.iter().any(|r| {
                r.region.as_str() == PRIMARY && r.in_sync == Some(true) && r.verdict.is_healthy()
            })
        },
    )
    .await;
    fx.show_status("primary repaired, serving from the secondary");

    // The failback is refused until the primary has been healthy long enough; an
    // operator would retry, and so does the test.
    let deadline = Instant::now() + Duration::from_secs(60);
    let out = loop {
        let out = lifeboat(&["failback", "--policy", &policy, "--yes", "--by", "e2e-test"]);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        out.status.success(),
        "failback: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.stop().await;
    let dns_changes = dns.stop().await;

    // Writer and DNS are home.
    let primary = world.pg(PRIMARY).expect("pg");
    assert!(
        !primary.in_recovery().expect("role"),
        "the primary takes writes again"
    );
    // The secondary was fenced on the way back: it refuses writes.
    let refused = world.pg(SECONDARY).expect("pg").sql_in(
        "orders",
        "INSERT INTO orders (n, region) VALUES (-1, 'e2e')",
    );
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| format!("{e:#}").contains("read-only")),
        "the secondary must refuse writes after the failback: {refused:?}"
    );
    let clients = lifeboat::clients::aws::AwsClients::for_emulator(&world.moto_url());
    let answers = lifeboat::sandbox::aws::active_region(
        &clients,
        &world.aws.zone_id,
        &world.record,
        &world.aws.health_check_id,
    )
    .await
    .expect("read DNS");
    assert_eq!(answers, PRIMARY, "DNS answers with the primary again");
    let regions: Vec<&str> = dns_changes.iter().map(|(_, r)| r.as_str()).collect();
    assert!(
        regions.contains(&SECONDARY),
        "DNS moved during the outage: {regions:?}"
    );

    // Every acknowledged insert, before, during and after both moves, is on the primary.
    let rows =
        tokio::task::spawn_blocking(move || primary.sql_in("orders", "SELECT n FROM orders"))
            .await
            .expect("join")
            .expect("read the rows");
    let present: std::collections::BTreeSet<i64> =
        rows.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let writes = writes.lock().expect("writes").clone();
    let acked: Vec<i64> = writes.iter().filter(|w| w.acked).map(|w| w.n).collect();
    let lost: Vec<i64> = acked
        .iter()
        .copied()
        .filter(|n| !present.contains(n))
        .collect();
    println!(
        "writes: {} acknowledged, {} failed, {} lost",
        acked.len(),
        writes.len() - acked.len(),
        lost.len()
    );
    assert!(
        acked.len() > 100,
        "the load ran: {} acknowledged",
        acked.len()
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    let text = fx.show_status("after the failback");
    assert!(text.contains("serving from us-east-1"), "{text}");
}
