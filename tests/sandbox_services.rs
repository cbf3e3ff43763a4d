//! The local services the sandbox and the tests stand on actually behave like the real
//! thing: streaming replication, promotion, pg_rewind back into a standby, Redis, moto,
//! and the fault switches of the API and worker endpoints.

mod support;

use std::time::Duration;

use lifeboat::sandbox::endpoint::{self, Faults, Mode};
use lifeboat::sandbox::postgres::StopMode;

#[test]
fn a_pg_pair_replicates_promotes_and_rewinds_back_into_a_standby() {
    let dir = support::tempdir();
    let pair = support::pg_pair(dir.path());
    let (primary, standby) = (&pair.primary, &pair.standby);
    assert!(!primary.in_recovery().expect("query primary"));
    assert!(
        standby.in_recovery().expect("query standby"),
        "the standby replays WAL"
    );

    primary
        .sql_in("orders", "CREATE TABLE t (n int); INSERT INTO t VALUES (1)")
        .expect("write");
    standby
        .wait_caught_up(primary, Duration::from_secs(10))
        .expect("replication");
    assert_eq!(
        standby
            .sql_in("orders", "SELECT count(*) FROM t")
            .expect("read"),
        "1"
    );
    assert!(
        standby
            .sql_in("orders", "INSERT INTO t VALUES (2)")
            .is_err(),
        "a standby refuses writes"
    );

    // The primary dies; the standby takes over and diverges.
    primary.stop(StopMode::Immediate).expect("stop primary");
    standby.promote().expect("promote");
    assert!(!standby.in_recovery().expect("query"));
    standby
        .sql_in("orders", "INSERT INTO t VALUES (3)")
        .expect("write to the new primary");

    // The old primary comes back as a standby of the new one.
    primary.rewind_from(standby).expect("pg_rewind");
    assert!(primary.in_recovery().expect("query"));
    primary
        .wait_caught_up(standby, Duration::from_secs(10))
        .expect("replication back");
    assert_eq!(
        primary
            .sql_in("orders", "SELECT count(*) FROM t")
            .expect("read"),
        "2"
    );
}

#[test]
fn redis_and_moto_start_on_loopback() {
    let dir = support::tempdir();
    let redis = support::redis(dir.path());
    let mut conn =
        std::net::TcpStream::connect(("127.0.0.1", redis.port)).expect("connect to Redis");
    use std::io::{Read, Write};
    conn.write_all(b"PING\r\n").expect("send");
    let mut buf = [0u8; 7];
    conn.read_exact(&mut buf).expect("reply");
    assert_eq!(&buf, b"+PONG\r\n");

    let moto = support::moto();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let status = rt
        .block_on(async {
            reqwest::get(format!("{}/moto-api/", moto.url()))
                .await
                .map(|r| r.status())
        })
        .expect("moto answers");
    assert!(status.is_success());
}

#[tokio::test]
async fn endpoint_fault_switches_change_what_probes_see() {
    let faults = Faults::new("us-east-1");
    let (port, task) = endpoint::spawn(faults.clone(), 0).await.expect("serve");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");

    let r = client
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("healthy answer");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.expect("json")["status"],
        "ok"
    );

    faults.set_mode(Mode::Error);
    assert_eq!(
        client
            .get(format!("{base}/health"))
            .send()
            .await
            .expect("answer")
            .status(),
        500
    );

    faults.set_mode(Mode::Hang);
    assert!(
        client.get(format!("{base}/health")).send().await.is_err(),
        "a hung endpoint times out"
    );

    // Switches can be flipped over HTTP too, as drills do.
    let set = client
        .post(format!("{base}/fault"))
        .json(&serde_json::json!({"mode": "garbage", "heartbeats": false}))
        .send()
        .await
        .expect("set switches");
    assert_eq!(set.status(), 200);
    let body = client
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("text");
    assert!(
        serde_json::from_str::<serde_json::Value>(&body).is_err(),
        "garbage is not JSON"
    );

    let first: serde_json::Value = client
        .get(format!("{base}/heartbeat"))
        .send()
        .await
        .expect("beat")
        .json()
        .await
        .expect("json");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second: serde_json::Value = client
        .get(format!("{base}/heartbeat"))
        .send()
        .await
        .expect("beat")
        .json()
        .await
        .expect("json");
    assert_eq!(
        first["last_heartbeat"], second["last_heartbeat"],
        "stopped heartbeats do not advance"
    );
    task.abort();
}

#[tokio::test]
async fn a_flapping_api_fails_two_of_every_three_requests_of_each_caller_never_three_in_a_row() {
    use lifeboat::sandbox::proxy::{Peers, Proxy};
    let peers = Peers::default();
    let faults = Faults::with_peers("us-east-1", peers.clone());
    let (port, task) = endpoint::spawn(faults.clone(), 0).await.expect("serve");
    let proxy = Proxy::start_with("api", 0, port, peers)
        .await
        .expect("proxy");
    faults.set_mode(Mode::Flap);
    // The controller reaches the API through the proxy, the witness directly; their
    // requests interleave, and each must see fail, fail, ok by its own count. The
    // controller's readiness checks (a `(runbook)` user agent) come in between its probe
    // rounds without taking a turn of theirs.
    let client = lifeboat::probe::http_client();
    let runbook = lifeboat::probe::http_client_for("runbook");
    let status = |port: u16| {
        let client = client.clone();
        async move {
            client
                .get(format!("http://127.0.0.1:{port}/health"))
                .send()
                .await
                .expect("answer")
                .status()
                .as_u16()
        }
    };
    let (mut via_proxy, mut direct) = (Vec::new(), Vec::new());
    for i in 0..12 {
        via_proxy.push(status(proxy.listen_port).await);
        if i % 3 == 1 {
            let looked = runbook
                .get(format!("http://127.0.0.1:{}/health", proxy.listen_port))
                .send()
                .await
                .expect("answer");
            assert!([200, 500].contains(&looked.status().as_u16()));
        }
        if i % 2 == 0 {
            direct.push(status(port).await);
        }
    }
    let pattern = |n: usize| -> Vec<u16> { [500, 500, 200].into_iter().cycle().take(n).collect() };
    assert_eq!(via_proxy, pattern(12), "the controller's view");
    assert_eq!(direct, pattern(6), "the witness's view");
    task.abort();
}
