//! Fault scenarios for the etcd coordination layer against a real 3-member cluster: a
//! controller frozen past its TTL (a child process under SIGSTOP), the etcd member that
//! carries the leader's keep-alive stream killed, a controller partitioned from etcd, and
//! one etcd member cut off from the others and healed.

#[path = "support/etcd.rs"]
mod etcd_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use etcd_support::*;
use lifeboat::coord::error::CoordError;
use lifeboat::coord::etcd::{EtcdSettings, FencedWrite};
use lifeboat::sandbox::process::signal;
use tokio::time::Instant;

/// Set in the child process of the frozen-controller test: the endpoints, comma-separated.
const CHILD_ENV: &str = "LIFEBOAT_TEST_FROZEN_CONTROLLER";

/// Not a test on its own: the child process of
/// `a_controller_frozen_past_its_ttl_cannot_write_after_waking`, which re-runs this test
/// binary with only this test selected and `CHILD_ENV` set. It leads, then writes the
/// service state every 100 ms, deciding before a 100 ms pause and writing after it (the
/// pending write a pause catches), and prints each outcome.
#[test]
fn frozen_controller_child_process_leads_and_writes_until_killed() {
    let Ok(endpoints) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let etcd = connect(settings(endpoints.split(',').map(String::from).collect())).await;
        let svc = etcd.keys().service(SERVICE).expect("service");
        let l = lead(&etcd, &candidate("frozen", "us-east-1"), Duration::from_secs(10)).await;
        println!("coord-child leader {}", l.epoch());
        for i in 0.. {
            let acting_before = l.acting();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let w = FencedWrite::new().put(svc.state(), format!("frozen {i}").into_bytes());
            let result = match l.write(&w).await {
                Ok(rev) => format!("ok {rev}"),
                Err(CoordError::Deposed { .. }) => "deposed".to_string(),
                Err(e) => format!("error {e}"),
            };
            println!(
                "coord-child write {i} acting_before={acting_before} acting_after={} result={result}",
                l.acting()
            );
        }
    });
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = signal(self.0.id(), "CONT");
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_frozen_past_its_ttl_cannot_write_after_waking() {
    let dir = tempdir();
    let cluster = cluster(dir.path()).await;
    let ttl = settings(vec![]).lease_ttl;
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "frozen_controller_child_process_leads_and_writes_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, cluster.endpoints().join(","))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the child controller");
    let stdout = child.stdout.take().expect("piped");
    let child = Killed(child);
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest's "test … " announcement shares a line with the first output.
            if let Some((_, l)) = line.split_once("coord-child ") {
                let _ = tx.send(l.to_string());
            }
        }
    });
    let next = |within: Duration| rx.recv_timeout(within).ok();
    let first = next(Duration::from_secs(20)).expect("the child leads");
    let child_epoch: i64 = first
        .strip_prefix("leader ")
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    // Let it act a few times.
    let mut oks = 0;
    while oks < 3 {
        let line = next(Duration::from_secs(5)).expect("the child writes");
        assert!(line.contains("result=ok"), "a leading child writes: {line}");
        oks += 1;
    }

    let etcd = connect(settings(cluster.endpoints())).await;
    let mut contender = contend(etcd.clone(), candidate("ctl-b", "us-west-2")).await;
    let stopped = Instant::now();
    assert!(signal(child.0.id(), "STOP"), "SIGSTOP the child");
    let (won_at, b) = tokio::time::timeout(2 * ttl, &mut contender.won)
        .await
        .expect("another controller takes over within 2 × TTL")
        .expect("contender");
    eprintln!(
        "took over {} ms after the freeze",
        (won_at - stopped).as_millis()
    );
    assert!(b.epoch().0 as i64 > child_epoch);
    let svc = etcd.keys().service(SERVICE).expect("service");
    let b_rev = b
        .write(&FencedWrite::new().put(svc.state(), b"taken over".to_vec()))
        .await
        .expect("the new leader writes");

    tokio::time::sleep_until(stopped + 2 * ttl).await;
    // Whatever the child printed before it froze is read before it wakes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut before = Vec::new();
    while let Ok(l) = rx.try_recv() {
        before.push(l);
    }
    assert!(signal(child.0.id(), "CONT"), "SIGCONT the child");
    let mut after = Vec::new();
    let woke = Instant::now();
    while woke.elapsed() < Duration::from_secs(2) {
        if let Some(l) = next(Duration::from_millis(200)) {
            after.push(l);
        }
    }
    drop(child);
    eprintln!(
        "the child after waking: {:#?}",
        &after[..after.len().min(3)]
    );

    for l in before.iter().chain(&after) {
        if let Some(rev) = l.split("result=ok ").nth(1) {
            let rev: i64 = rev.trim().parse().expect("revision");
            assert!(
                rev < b.epoch().0 as i64,
                "the frozen controller wrote at {rev}, after the new epoch {}: {l}",
                b.epoch()
            );
        }
    }
    // After waking, no write goes through (the first may also fail on a connection that
    // died during the pause; its outcome is checked through the state below), at least
    // one is refused by the fence, and the controller never acts again.
    assert!(!after.is_empty(), "the child ran after waking");
    for l in &after {
        assert!(
            !l.contains("result=ok"),
            "a write went through after waking: {l}"
        );
        assert!(
            l.contains("acting_after=false"),
            "it does not act after waking: {l}"
        );
    }
    assert!(
        after.iter().any(|l| l.contains("result=deposed")),
        "the fence refused the frozen controller's writes: {after:?}"
    );
    let state = etcd.get(&svc.state()).await.expect("get").expect("state");
    assert_eq!(state.value, b"taken over");
    assert_eq!(state.mod_revision, b_rev);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_member_that_carries_the_keep_alive_stream_causes_no_handover() {
    let dir = tempdir();
    let mut cluster = cluster(dir.path()).await;
    // The hardest case: the stream sits on the raft leader, so its loss also costs an
    // election. The leader's endpoint goes first, so the stream opens there.
    let (raft_leader, _) = cluster.raft_leader().await.expect("raft leader");
    let mut endpoints = cluster.endpoints();
    endpoints.rotate_left(raft_leader);
    // A 5 s lease (acting for 4 s after a confirmation): the keeper has to notice the
    // broken stream and re-open it on a member that first waits for a new raft leader
    // (an election timeout of 1–2 s).
    let slower = |endpoints| EtcdSettings {
        lease_ttl: Duration::from_secs(5),
        safety_margin: Duration::from_secs(1),
        ..settings(endpoints)
    };
    let a = connect(slower(endpoints)).await;
    let l = lead(&a, &candidate("ctl-a", "us-west-2"), Duration::from_secs(5)).await;
    until(Duration::from_secs(2), || {
        l.session().status().endpoint.is_some()
    })
    .await
    .expect("the stream is open");
    let carrier = l.session().status().endpoint.expect("endpoint");
    assert_eq!(cluster.member_of(&carrier), Some(raft_leader));
    let b = connect(slower(cluster.endpoints())).await;
    let mut contender = contend(b, candidate("ctl-b", "us-east-1")).await;

    cluster.kill(raft_leader);
    let ttl = slower(vec![]).lease_ttl;
    // Without the re-opened stream, the lease would expire within the TTL (plus etcd's
    // 500 ms expiry sweep) and the contender take over right after.
    let kept = acting_throughout(&l, ttl + Duration::from_secs(2)).await;
    assert_eq!(
        kept,
        Ok(()),
        "the leader stopped acting after the member was killed"
    );
    assert!(contender.won.try_recv().is_err(), "nobody else took over");
    let status = l.session().status();
    assert!(
        status.reopened >= 1,
        "the keeper re-opened its stream: {status:?}"
    );
    assert_ne!(status.endpoint.as_deref(), Some(carrier.as_str()));
    let svc = a.keys().service(SERVICE).expect("service");
    l.write(&FencedWrite::new().put(svc.state(), b"still leading".to_vec()))
        .await
        .expect("the leader still writes");
    assert_eq!(
        a.leader(&svc).await.expect("leader").expect("led").epoch,
        l.epoch()
    );

    // The member comes back on its data and catches up; the leader is undisturbed.
    let back = cluster
        .restart(raft_leader)
        .await
        .expect("restart the member");
    eprintln!(
        "the killed member was back and healthy after {} ms",
        back.as_millis()
    );
    assert_eq!(acting_throughout(&l, Duration::from_secs(1)).await, Ok(()));
    assert!(contender.won.try_recv().is_err(), "nobody else took over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_partitioned_from_etcd_stops_acting_within_the_ttl_and_another_takes_over() {
    let dir = tempdir();
    let cluster = cluster(dir.path()).await;
    let link = cluster.link().await.expect("link");
    let a = connect(settings(link.endpoints())).await;
    let l = lead(&a, &candidate("ctl-a", "us-east-1"), Duration::from_secs(5)).await;
    let b = connect(settings(cluster.endpoints())).await;
    let mut contender = contend(b.clone(), candidate("ctl-b", "us-west-2")).await;
    let ttl = settings(vec![]).lease_ttl;

    link.partition();
    let cut = Instant::now();
    let stopped = until(2 * ttl, || !l.acting()).await.expect("stops acting");
    let (won_at, newer) = tokio::time::timeout(3 * ttl, &mut contender.won)
        .await
        .expect("another controller takes over")
        .expect("contender");
    eprintln!(
        "partitioned leader stopped acting after {} ms; the other acted after {} ms",
        stopped.as_millis(),
        (won_at - cut).as_millis()
    );
    assert!(
        stopped <= ttl,
        "stopped acting after {stopped:?}, TTL {ttl:?}"
    );
    assert!(newer.epoch() > l.epoch());
    assert!(newer.acting());
    // It stopped acting before the other could start: no overlap.
    assert!(cut + stopped <= won_at, "acting windows overlapped");

    // Healed, the old leader stays deposed: its writes are refused.
    link.heal();
    let svc = b.keys().service(SERVICE).expect("service");
    let err = l
        .write(&FencedWrite::new().put(svc.state(), b"late".to_vec()))
        .await
        .expect_err("refused");
    assert!(matches!(err, CoordError::Deposed { .. }), "{err}");
    assert!(!l.acting());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_member_cut_off_and_healed_forces_no_election_and_no_handover() {
    let dir = tempdir();
    let cluster = cluster(dir.path()).await;
    let (raft_leader, term) = cluster.raft_leader().await.expect("raft leader");
    let follower = (raft_leader + 1) % 3;
    let a = connect(settings(cluster.endpoints())).await;
    let l = lead(&a, &candidate("ctl-a", "us-west-2"), Duration::from_secs(5)).await;
    let only_follower = connect(settings(vec![cluster.endpoint(follower)])).await;
    let svc = a.keys().service(SERVICE).expect("service");

    cluster.isolate(follower);
    // Longer than the election timeout (500 ms) several times over.
    let kept = acting_throughout(&l, Duration::from_secs(3)).await;
    let cut_off = only_follower
        .put(&format!("{}scratch", a.keys().root()), b"x".to_vec(), 0)
        .await;
    assert!(
        matches!(cut_off, Err(CoordError::Unavailable { .. })),
        "the isolated member cannot serve a write: {cut_off:?}"
    );
    cluster.heal(follower);
    let healed = acting_throughout(&l, Duration::from_secs(2)).await;
    assert_eq!(
        kept,
        Ok(()),
        "the leader kept acting while a member was cut off"
    );
    assert_eq!(
        healed,
        Ok(()),
        "the leader kept acting after the member came back"
    );
    let (leader_after, term_after) = cluster.raft_leader().await.expect("raft leader");
    assert_eq!(
        (leader_after, term_after),
        (raft_leader, term),
        "with pre-vote, the healed member forced no election"
    );
    let scratch = format!("{}scratch", a.keys().root());
    let healed_at = Instant::now();
    while let Err(e) = only_follower.put(&scratch, b"x".to_vec(), 0).await {
        assert!(
            healed_at.elapsed() < Duration::from_secs(3),
            "the healed member serves writes again: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        a.leader(&svc).await.expect("leader").expect("led").epoch,
        l.epoch()
    );
}
