//! Who may call the API. Named tokens: the journal records the token's name beside the
//! name a caller claims, and a bare token is still accepted (as `default`). Beyond
//! loopback the views need a read or control token, and a read token never controls. A
//! request without a token must name the daemon by address, localhost or a configured
//! name, so a web page cannot read a loopback API by rebinding its own DNS name.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use axum::body::Body;
use axum::http::{Request, header};
use lifeboat::fuzzing::{CONTROL_TOKEN, READ_TOKEN, api_fixture};
use support::daemon::Daemon;
use tower::ServiceExt;

const ALICE: &str = "alice-token-0123456789abcdef0123";
const BOB: &str = "bob-token-0123456789abcdef012345";

fn write_policy(dir: &Path) -> PathBuf {
    let path = dir.join("svc.toml");
    let text = r#"
[service]
name = "auth-test"

[regions]
primary = "us-east-1"
secondaries = ["us-west-2"]

[detection]
interval = "500ms"
timeout = "200ms"
mode = "manual"

[journal]
path = "svc.db"

[[probes]]
name = "alive"
component = "api"
kind = "command"
run = ["true"]
regions = ["us-east-1", "us-west-2"]

[[failover.steps]]
name = "confirm"
kind = "manual_approval"
prompt = "go?"

[[failback.steps]]
name = "healthy"
kind = "wait_healthy"
"#;
    std::fs::write(&path, text).expect("write policy");
    path
}

fn start(dir: &Path, args: &[&str], env_token: Option<&str>) -> Daemon {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    c.current_dir(dir)
        .args(["run", "-p", "svc.toml"])
        .args(args)
        .env("LIFEBOAT_API_TOKEN", env_token.unwrap_or(""));
    Daemon::start(c, &dir.join("svc.db"), &dir.join("daemon.log"))
}

async fn post(url: &str, path: &str, token: &str, body: serde_json::Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("post");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

fn paused_by(dir: &Path) -> String {
    lifeboat::journal::Journal::open(&dir.join("svc.db"))
        .expect("journal")
        .latest_record("auth-test", &["paused"])
        .expect("audit")
        .expect("a pause is recorded")
        .actor
}

#[tokio::test(flavor = "multi_thread")]
async fn the_journal_records_which_named_token_made_a_call_beside_the_claimed_name() {
    let dir = support::tempdir();
    write_policy(dir.path());
    std::fs::write(
        dir.path().join("tokens"),
        format!("# one per person\nalice: {ALICE}\nbob: {BOB}\n"),
    )
    .expect("tokens");
    let d = start(dir.path(), &["--token-file", "tokens"], None);

    // Bob claims to be alice: the journal says so, and says it was bob's token.
    let (status, text) = post(
        &d.url,
        "/v1/pause",
        BOB,
        serde_json::json!({"by": "alice", "reason": "maintenance"}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(paused_by(dir.path()), "alice [token bob]");
    let decisions = reqwest::get(format!("{}/v1/decisions", d.url))
        .await
        .expect("decisions")
        .text()
        .await
        .expect("text");
    assert!(decisions.contains("alice [token bob]"), "{decisions}");
    // A claim cannot dress itself up as a token's name.
    let (status, text) = post(
        &d.url,
        "/v1/resume",
        BOB,
        serde_json::json!({"by": "mallory [token alice]"}),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("brackets"), "{text}");
    let (status, _) = post(
        &d.url,
        "/v1/resume",
        ALICE,
        serde_json::json!({"by": "alice"}),
    )
    .await;
    assert_eq!(status, 200);
    drop(d);

    // One bare token (here from the environment) is still accepted, as `default`.
    let d = start(dir.path(), &[], Some(ALICE));
    let (status, text) = post(
        &d.url,
        "/v1/pause",
        ALICE,
        serde_json::json!({"by": "carol", "reason": "again"}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(paused_by(dir.path()), "carol [token default]");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_naming_another_host_is_refused_unless_it_brings_a_token() {
    let dir = support::tempdir();
    write_policy(dir.path());
    let d = start(
        dir.path(),
        &["--allow-host", "lifeboat.internal"],
        Some(ALICE),
    );
    let port = d.url.rsplit(':').next().expect("port");
    let http = reqwest::Client::new();
    let get = |path: &str, host: &str, token: Option<&str>| {
        let mut r = http
            .get(format!("{}{path}", d.url))
            .header(header::HOST, host.replace("PORT", port));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    for (path, host, token, want) in [
        // A page on evil.example whose name now resolves to 127.0.0.1.
        ("/v1/status", "evil.example:PORT", None, 421),
        ("/v1/runs", "evil.example:PORT", None, 421),
        ("/metrics", "evil.example:PORT", None, 421),
        // The daemon's own names.
        ("/v1/status", "127.0.0.1:PORT", None, 200),
        ("/v1/status", "localhost:PORT", None, 200),
        ("/v1/status", "lifeboat.internal:PORT", None, 200),
        // A token holder may use any name; a wrong token is refused whatever the name.
        ("/v1/status", "evil.example:PORT", Some(ALICE), 200),
        ("/v1/status", "evil.example:PORT", Some(BOB), 401),
        // Liveness stays answerable by a load balancer under any name.
        ("/healthz", "evil.example:PORT", None, 200),
    ] {
        let r = get(path, host, token).await.expect("get");
        assert_eq!(r.status().as_u16(), want, "{path} as {host} with {token:?}");
    }
}

async fn call(
    router: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "10.0.3.5:7300");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let r = router
        .clone()
        .oneshot(req.body(Body::from("{}")).expect("request"))
        .await
        .expect("answer");
    let status = r.status().as_u16();
    let body = axum::body::to_bytes(r.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn beyond_loopback_the_views_need_a_token_and_a_read_token_never_controls() {
    // The API as `lifeboat run --listen 10.0.3.5:7300` serves it (views not open).
    let f = api_fixture(false);
    for path in ["/v1/status", "/v1/runs", "/v1/decisions", "/metrics"] {
        let (status, text) = call(&f.router, "GET", path, None).await;
        assert_eq!(status, 401, "{path}: {text}");
        assert!(text.contains("read token"), "{text}");
        assert_eq!(call(&f.router, "GET", path, Some(READ_TOKEN)).await.0, 200);
        assert_eq!(
            call(&f.router, "GET", path, Some(CONTROL_TOKEN)).await.0,
            200
        );
    }
    assert_eq!(call(&f.router, "GET", "/healthz", None).await.0, 200);
    let (status, text) = call(&f.router, "POST", "/v1/pause", Some(READ_TOKEN)).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("`viewer` may only read"), "{text}");
    assert_eq!(f.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
    // The control token reaches the control loop (here a stand-in that refuses).
    assert_eq!(
        call(&f.router, "POST", "/v1/pause", Some(CONTROL_TOKEN))
            .await
            .0,
        409
    );
    assert_eq!(f.requests.load(std::sync::atomic::Ordering::SeqCst), 1);

    // On loopback the views are open.
    let open = api_fixture(true);
    assert_eq!(call(&open.router, "GET", "/v1/status", None).await.0, 200);
}
