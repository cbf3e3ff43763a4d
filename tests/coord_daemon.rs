//! Two `lifeboat run` daemons on one etcd policy, against a real 3-member etcd cluster:
//! one is elected and acts, the other watches and refuses; when the leader is killed
//! (SIGKILL) in the middle of a failover, the other is elected and finishes the run from
//! the shared record, each step's effect once, and the serving region it leaves is what
//! both the shared record and its status say.

#[path = "support/etcd.rs"]
mod etcd_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use etcd_support::{cluster, connect, settings, tempdir};
use lifeboat::coord::records::{SharedState, StepDone};
use lifeboat::coord::unfinished;
use lifeboat::core::controller::Leadership;
use lifeboat::core::health::Verdict;
use lifeboat::daemon::status::StatusView;
use support::daemon::{Daemon, THREE_STEPS, etcd_policy, run_node};
use tokio::time::Instant;

const SERVICE: &str = "ha-orders";

/// Manual mode, one command probe, and three command steps (`support::daemon::THREE_STEPS`).
fn policy(dir: &Path, endpoints: &[String]) -> PathBuf {
    etcd_policy(dir, SERVICE, endpoints, "", THREE_STEPS)
}

/// `lifeboat run --node NODE` with its own journal, as on its own host.
fn start(policy: &Path, node: &str, dir: &Path) -> Daemon {
    run_node(policy, node, dir, &[])
}

fn effects(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("effects"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A follower of ctl-a asked for a failover at `url`: refused (409), naming the leader.
async fn refused_by_follower(url: &str, token: &str) {
    let refused = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&serde_json::json!({"by": "tests/coord_daemon.rs"}))
        .send()
        .await
        .expect("failover on the follower");
    assert_eq!(refused.status(), 409);
    let text = refused.text().await.expect("text");
    assert!(
        text.contains("controller ctl-a leads this service"),
        "{text}"
    );
}

/// Asks the leader `a` for a failover, waits until the first step left its effect, and
/// kills `a` (SIGKILL) half a second into the second step (`sleep 3`); returns the run.
async fn failover_then_kill_in_second_step(
    mut a: Daemon,
    dir: &Path,
) -> lifeboat::core::ids::RunId {
    // The guardrails refuse a failover to a region not yet seen healthy: an election can
    // come before the target's first probe round ends on a busy machine.
    a.until("us-west-2 seen healthy", Duration::from_secs(20), |s| {
        s.regions
            .iter()
            .any(|r| r.region.as_str() == "us-west-2" && r.verdict == Verdict::Healthy)
    })
    .await;
    let started: lifeboat::contract::Reply = reqwest::Client::new()
        .post(format!("{}/v1/failover", a.url))
        .bearer_auth(&a.token)
        .json(&serde_json::json!({"by": "tests/coord_daemon.rs"}))
        .send()
        .await
        .expect("failover on the leader")
        .json()
        .await
        .expect("reply");
    let lifeboat::contract::Reply::Accepted {
        run_id: Some(run_id),
        ..
    } = started
    else {
        panic!("the leader did not start a run: {started:?}");
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while effects(dir).is_empty() {
        assert!(Instant::now() < deadline, "the first step never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.child.kill().expect("SIGKILL ctl-a");
    a.child.wait().expect("reap ctl-a");
    run_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_mid_failover_is_replaced_and_the_run_finishes_with_each_effect_once() {
    let dir = tempdir();
    let etcd_cluster = cluster(dir.path()).await;
    let policy = policy(dir.path(), &etcd_cluster.endpoints());

    // A starts alone and is elected; B starts and follows A.
    let a = start(&policy, "ctl-a", dir.path());
    let leading = |s: &StatusView| matches!(s.leadership, Leadership::Leading { .. });
    let sa = a
        .until("ctl-a elected", Duration::from_secs(20), leading)
        .await;
    let Leadership::Leading { epoch: epoch_a } = sa.leadership else {
        unreachable!()
    };
    let b = start(&policy, "ctl-b", dir.path());
    b.until("ctl-b follows ctl-a", Duration::from_secs(20), |s| {
        s.leadership
            == Leadership::Following {
                leader: Some("ctl-a".into()),
            }
    })
    .await;

    // The follower refuses a failover and names the leader; nothing runs.
    refused_by_follower(&format!("{}/v1/failover", b.url), &b.token).await;
    assert!(effects(dir.path()).is_empty());

    // The leader starts the failover; it is killed while the second step runs.
    let run_id = failover_then_kill_in_second_step(a, dir.path()).await;
    let killed = Instant::now();

    // B is elected at a newer epoch once A's lease lapses, takes the run over and
    // finishes it: the step A finished is not repeated, the one it was in is run again.
    let sb = b
        .until("ctl-b elected", Duration::from_secs(20), leading)
        .await;
    let handover = killed.elapsed();
    let Leadership::Leading { epoch: epoch_b } = sb.leadership else {
        unreachable!()
    };
    assert!(epoch_b > epoch_a, "{epoch_b} > {epoch_a}");
    let sb = b
        .until("ctl-b finishes the run", Duration::from_secs(30), |s| {
            s.active.as_str() == "us-west-2" && s.current_run.is_none()
        })
        .await;
    eprintln!("handover after SIGKILL: {handover:?}");
    assert_eq!(
        effects(dir.path()),
        vec!["first", "third"],
        "each effect once"
    );
    let last = sb.last_run.expect("B's last run");
    assert_eq!(last.run_id, run_id);
    assert_eq!(last.status.as_str(), "completed");

    // The shared record: no run current, the serving region moved, and each step's
    // outcome recorded once, by the epoch that did it.
    let etcd = connect(settings(etcd_cluster.endpoints())).await;
    let svc = etcd.keys().service(SERVICE).expect("service");
    assert!(unfinished(&etcd, &svc).await.expect("read").is_none());
    let state: SharedState = etcd
        .get(&svc.state())
        .await
        .expect("read state")
        .expect("the state is recorded")
        .json()
        .expect("state");
    assert_eq!(state.active.as_str(), "us-west-2");
    assert_eq!(state.epoch, epoch_b);
    let prefix = svc.run_prefix(&run_id.0).expect("run prefix");
    let mut done: Vec<(String, u64)> = Vec::new();
    for s in etcd.list(&format!("{prefix}step/")).await.expect("list") {
        if s.key.ends_with("/done") {
            let d: StepDone = s.json().expect("done record");
            done.push((d.step, d.epoch.0));
        }
    }
    done.sort();
    assert_eq!(
        done,
        vec![
            ("first".to_string(), epoch_a.0),
            ("third".to_string(), epoch_b.0),
            ("wait".to_string(), epoch_b.0),
        ]
    );

    // `lifeboat show` on B's journal: the run A started, finished by B.
    let show = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["show", &run_id.0, "--journal"])
        .arg(&b.journal)
        .env("NO_COLOR", "1")
        .output()
        .expect("lifeboat show");
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&show.stderr)
    );
    eprintln!("{text}");
    assert!(text.contains("completed"), "{text}");
    assert!(
        text.contains("run_taken_over") && text.contains("taken over from ctl-a (etcd epoch"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_restarted_mid_failover_takes_its_own_run_back_and_finishes_it_once() {
    let dir = tempdir();
    let etcd_cluster = cluster(dir.path()).await;
    let policy = policy(dir.path(), &etcd_cluster.endpoints());
    let leading = |s: &StatusView| matches!(s.leadership, Leadership::Leading { .. });

    let a = start(&policy, "ctl-a", dir.path());
    a.until("ctl-a elected", Duration::from_secs(20), leading)
        .await;
    let run_id = failover_then_kill_in_second_step(a, dir.path()).await;

    // The same node on the same journal, as systemd would restart it: once its old
    // lease lapses it is elected again, finds its own run current in etcd (and in its
    // journal) and finishes it, without starting another or repeating the first step.
    let journal = dir.path().join("ctl-a.db");
    let mut c = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    c.args(["run", "--policy"])
        .arg(&policy)
        .args(["--node", "ctl-a", "--journal"])
        .arg(&journal)
        .env("LIFEBOAT_API_TOKEN", "");
    let again = Daemon::start(c, &journal, &dir.path().join("ctl-a-again.log"));
    let s = again
        .until(
            "ctl-a, restarted, finishes its run",
            Duration::from_secs(40),
            |s| leading(s) && s.active.as_str() == "us-west-2" && s.current_run.is_none(),
        )
        .await;
    assert_eq!(
        effects(dir.path()),
        vec!["first", "third"],
        "each effect once"
    );
    let last = s.last_run.expect("the last run");
    assert_eq!(last.run_id, run_id, "the same run, not a new one");
    assert_eq!(last.status.as_str(), "completed");
    let etcd = connect(settings(etcd_cluster.endpoints())).await;
    let svc = etcd.keys().service(SERVICE).expect("service");
    assert!(unfinished(&etcd, &svc).await.expect("read").is_none());
}

/// Automatic mode; the API probe reads `${east}` and `${west}` from each process's own
/// vars file, so each vantage point can be shown a different world.
fn auto_policy(dir: &Path, endpoints: &[String]) -> PathBuf {
    etcd_policy(
        dir,
        SERVICE,
        endpoints,
        "",
        r#"
[vars]
east = 1
west = 1

[detection]
interval = "500ms"
timeout = "200ms"
failure_threshold = 2
mode = "auto"

[guardrails]
cooldown = "1s"

[readiness]
every = "1d"

[targets.api]
kind = "http"
regions.us-east-1.url = "http://127.0.0.1:${east}/health"
regions.us-west-2.url = "http://127.0.0.1:${west}/health"

[[probes]]
name = "api"
component = "api"
kind = "http"
target = "api"

[[failover.steps]]
name = "switch"
kind = "command"
run = ["sh", "-c", "echo switch >> {effects}"]

[[failback.steps]]
name = "healthy"
kind = "wait_healthy"
region = "@to"
successes = 1
"#,
    )
}

/// `lifeboat run --node NODE` seeing the regions' APIs at `east` and `west`.
fn start_seeing(
    policy: &Path,
    node: &str,
    dir: &Path,
    east: u16,
    west: u16,
    extra: &[&str],
) -> Daemon {
    let vars = dir.join(format!("{node}-vars.toml"));
    std::fs::write(&vars, format!("east = {east}\nwest = {west}\n")).expect("vars");
    let mut args = vec![std::ffi::OsStr::new("--vars"), vars.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    run_node(policy, node, dir, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_vantage_point_alone_never_fails_over_and_a_majority_of_votes_does() {
    use lifeboat::core::controller::Phase;
    use lifeboat::core::reason::Hold;
    use lifeboat::sandbox::endpoint::{self, Faults, Mode};

    let dir = tempdir();
    let etcd_cluster = cluster(dir.path()).await;
    let policy = auto_policy(dir.path(), &etcd_cluster.endpoints());
    // The east API everyone sees, one only ctl-a sees (its path there is broken), and
    // the west API.
    let east_faults = Faults::new("us-east-1");
    let (east, _t1) = endpoint::spawn(east_faults.clone(), 0).await.expect("east");
    let ctl_a_east_faults = Faults::new("us-east-1");
    let (ctl_a_east, _t2) = endpoint::spawn(ctl_a_east_faults.clone(), 0)
        .await
        .expect("ctl-a's east");
    let (west, _t3) = endpoint::spawn(Faults::new("us-west-2"), 0)
        .await
        .expect("west");

    let a = start_seeing(&policy, "ctl-a", dir.path(), ctl_a_east, west, &[]);
    let leading = |s: &StatusView| matches!(s.leadership, Leadership::Leading { .. });
    a.until("ctl-a elected", Duration::from_secs(20), leading)
        .await;
    let b = start_seeing(&policy, "ctl-b", dir.path(), east, west, &[]);
    let c = start_seeing(&policy, "obs-c", dir.path(), east, west, &["--observer"]);
    let sa = a
        .until("three votes counted", Duration::from_secs(20), |s| {
            s.quorum == 2 && s.observers.len() == 3
        })
        .await;
    assert_eq!(sa.state, "primary", "{sa:#?}");
    // The observer never campaigns, and says who leads.
    c.until("obs-c names the leader", Duration::from_secs(20), |s| {
        s.leadership
            == Leadership::Following {
                leader: Some("ctl-a".into()),
            }
    })
    .await;

    // ctl-a's own path to the east API breaks: it alone sees the region down. It leads,
    // and still holds: one vote of the two a majority of three needs.
    ctl_a_east_faults.set_mode(Mode::Error);
    let sa = a
        .until(
            "ctl-a holds for want of votes",
            Duration::from_secs(20),
            |s| {
                matches!(
                    s.phase,
                    Phase::Blocked {
                        hold: Hold::NoQuorum {
                            votes: 1,
                            quorum: 2
                        },
                        ..
                    }
                )
            },
        )
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let sa2 = a.status().await;
    assert_eq!(sa2.active.as_str(), "us-east-1", "{sa:#?}");
    // What an operator sees, for whoever reads the test's output.
    eprintln!(
        "ctl-a's status: state {}, why {:?}, leadership {:?}, quorum {}, votes {:?}",
        sa2.state, sa2.why, sa2.leadership, sa2.quorum, sa2.observers
    );
    assert!(
        effects(dir.path()).is_empty(),
        "nothing ran on one vantage point's word"
    );

    // The east API really fails: every observer sees it; the leader fails over by itself.
    east_faults.set_mode(Mode::Error);
    let sa = a
        .until("the majority fails over", Duration::from_secs(30), |s| {
            s.active.as_str() == "us-west-2" && s.current_run.is_none()
        })
        .await;
    assert_eq!(effects(dir.path()), vec!["switch"], "{sa:#?}");
    let last = sa.last_run.expect("the run");
    assert_eq!(last.status.as_str(), "completed");
    // Every controller follows the shared serving region.
    b.until("ctl-b follows the move", Duration::from_secs(10), |s| {
        s.active.as_str() == "us-west-2"
    })
    .await;
    // What the leader decided, for whoever reads the test's output.
    for line in a.log_tail().lines().filter(|l| {
        l.contains("starting failover") || l.contains("did not start") || l.contains("completed")
    }) {
        eprintln!("ctl-a: {line}");
    }
    drop(c);
}

/// `lifeboat run --policies DIR --node NODE` with its state in `state`, as on its own
/// host; found through the first service's discovery file.
fn start_fleet(policies: &Path, node: &str, state: &Path, first: &str) -> Daemon {
    std::fs::create_dir_all(state).expect("the state directory");
    let mut c = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    c.args(["run", "--policies"])
        .arg(policies)
        .args(["--node", node, "--state-dir"])
        .arg(state)
        .env("LIFEBOAT_API_TOKEN", "");
    Daemon::start(
        c,
        &state.join(format!("{first}.db")),
        &state.join(format!("{node}.log")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleets_on_etcd_are_elected_per_service_and_a_survivor_takes_over_the_services_it_follows()
{
    let within = Duration::from_secs(20);
    let dir = tempdir();
    let etcd_cluster = cluster(dir.path()).await;
    // Three services; ctl-a runs orders and payments, ctl-b payments and search.
    let (a_dir, b_dir) = (dir.path().join("a-policies"), dir.path().join("b-policies"));
    for (name, dirs) in [
        ("fleet-orders", vec![&a_dir]),
        ("fleet-payments", vec![&a_dir, &b_dir]),
        ("fleet-search", vec![&b_dir]),
    ] {
        let own = dir.path().join(name);
        std::fs::create_dir_all(&own).expect("dir");
        let p = etcd_policy(&own, name, &etcd_cluster.endpoints(), "", THREE_STEPS);
        for d in dirs {
            std::fs::create_dir_all(d).expect("dir");
            std::fs::copy(&p, d.join(format!("{name}.toml"))).expect("copy the policy");
        }
    }
    let leading = |s: &StatusView| matches!(s.leadership, Leadership::Leading { .. });
    let following_a = |s: &StatusView| {
        s.leadership
            == Leadership::Following {
                leader: Some("ctl-a".into()),
            }
    };

    let a = start_fleet(&a_dir, "ctl-a", &dir.path().join("a"), "fleet-orders");
    for s in ["fleet-orders", "fleet-payments"] {
        a.until_service(s, "ctl-a elected", within, leading).await;
    }
    // ctl-b leads the service only it runs and follows ctl-a on the one they share.
    let b = start_fleet(&b_dir, "ctl-b", &dir.path().join("b"), "fleet-search");
    b.until_service("fleet-search", "ctl-b elected", within, leading)
        .await;
    let Leadership::Leading { epoch: before } = a
        .until_service("fleet-payments", "ctl-a leads payments", within, leading)
        .await
        .leadership
    else {
        unreachable!()
    };
    b.until_service("fleet-payments", "ctl-b follows", within, following_a)
        .await;
    refused_by_follower(
        &format!("{}/v1/services/fleet-payments/failover", b.url),
        &b.token,
    )
    .await;

    // ctl-a dies: ctl-b is elected for payments at a newer epoch and keeps search.
    drop(a);
    let s = b
        .until_service("fleet-payments", "ctl-b takes payments", within, leading)
        .await;
    let Leadership::Leading { epoch: after } = s.leadership else {
        unreachable!()
    };
    assert!(after > before, "{after} > {before}");
    b.until_service("fleet-search", "ctl-b still leads search", within, leading)
        .await;
}
