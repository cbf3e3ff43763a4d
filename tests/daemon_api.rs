//! `lifeboat run` as a process: its API serves health, Prometheus metrics and status to
//! anyone on loopback, refuses control calls without the token, refuses to listen beyond
//! loopback without one, lets only one runner act on a journal, refuses a damaged
//! journal, stops cleanly on SIGTERM, and checks readiness at once on SIGHUP.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat::core::model::Direction;
use lifeboat::core::readiness::{ReadinessReport, ReadyState};
use lifeboat::sandbox::endpoint::{self, Faults, Mode};
use support::daemon::Daemon;

/// A policy with one HTTP probe per region, against two fault-switch endpoints.
fn policy(dir: &Path, east: u16, west: u16) -> PathBuf {
    let text = format!(
        r#"
[service]
name = "api-test"

[regions]
primary = "us-east-1"
secondaries = ["us-west-2"]

[detection]
interval = "500ms"
timeout = "200ms"
mode = "manual"

[journal]
path = "journal.db"

# One scheduled round (2 to 17 s after start) in a test's lifetime; any other is SIGHUP's.
[readiness]
every = "1d"

[targets.api]
kind = "http"
regions.us-east-1.url = "http://127.0.0.1:{east}/health"
regions.us-west-2.url = "http://127.0.0.1:{west}/health"

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

fn spawn(policy: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["run", "--policy"])
        .arg(policy)
        .args(extra)
        .env("LIFEBOAT_API_TOKEN", "")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lifeboat run")
}

async fn status_of(http: &reqwest::Client, d: &Daemon) -> serde_json::Value {
    http.get(format!("{}/v1/status", d.url))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json")
}

fn start(policy: &Path) -> Daemon {
    let dir = policy.parent().expect("dir");
    let mut c = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    c.args(["run", "--policy"])
        .arg(policy)
        .env("LIFEBOAT_API_TOKEN", "");
    Daemon::start(c, &dir.join("journal.db"), &dir.join("daemon.log"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_serves_views_openly_and_control_only_with_the_token() {
    let dir = support::tempdir();
    let (east, _t1) = endpoint::spawn(Faults::new("us-east-1"), 0)
        .await
        .expect("east");
    let (west, _t2) = endpoint::spawn(Faults::new("us-west-2"), 0)
        .await
        .expect("west");
    let policy = policy(dir.path(), east, west);
    let d = start(&policy);
    let http = reqwest::Client::new();

    assert_eq!(
        http.get(format!("{}/healthz", d.url))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // /metrics is valid Prometheus text with the controller's and the probes' series.
    let text = http
        .get(format!("{}/metrics", d.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("parses as Prometheus text");
    let names: Vec<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for want in [
        "lifeboat_controller_state",
        "lifeboat_probe_up",
        "lifeboat_region_verdict",
        "lifeboat_probe_latency_seconds",
    ] {
        assert!(names.contains(&want), "{want} missing from:\n{text}");
    }
    let primary_state = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "lifeboat_controller_state" && s.labels.get("state") == Some("primary")
        })
        .expect("state series");
    assert!(
        matches!(primary_state.value, prometheus_parse::Value::Gauge(v) if v == 1.0),
        "{text}"
    );

    let status = status_of(&http, &d).await;
    assert_eq!(status["state"], "primary");
    assert_eq!(status["active"], "us-east-1");

    // Control calls: none without the token, none with a wrong one.
    let pause = || {
        http.post(format!("{}/v1/pause", d.url))
            .json(&serde_json::json!({"reason": "test", "by": "t"}))
    };
    assert_eq!(pause().send().await.expect("no token").status(), 401);
    assert_eq!(
        pause()
            .bearer_auth("not-the-token")
            .send()
            .await
            .expect("wrong token")
            .status(),
        401
    );
    // The token is checked before the body is read: no body, garbage, another content
    // type, on every control route, all get 401 without a token.
    for path in [
        "/v1/failover",
        "/v1/failback",
        "/v1/pause",
        "/v1/resume",
        "/v1/approve",
        "/v1/runs/x/approve",
        "/v1/runs/x/abort",
    ] {
        let url = format!("{}{path}", d.url);
        for req in [
            http.post(&url),
            http.post(&url).body("{not json"),
            http.post(&url)
                .header("content-type", "text/plain")
                .body("failover now"),
        ] {
            let r = req.send().await.expect("unauthenticated post");
            assert_eq!(r.status(), 401, "{path}");
        }
    }
    // With the token, a malformed body is a 400 that says why.
    let bad = http
        .post(format!("{}/v1/pause", d.url))
        .bearer_auth(&d.token)
        .body("{not json")
        .send()
        .await
        .expect("bad body");
    assert_eq!(bad.status(), 400);
    assert!(
        bad.text()
            .await
            .expect("text")
            .contains("not a valid request")
    );
    // A body over the cap is refused whole (413) and changes nothing.
    let huge = serde_json::json!({
        "by": "t",
        "reason": "x".repeat(lifeboat::daemon::api::MAX_BODY),
    });
    let r = http
        .post(format!("{}/v1/pause", d.url))
        .bearer_auth(&d.token)
        .json(&huge)
        .send()
        .await
        .expect("oversized body");
    assert_eq!(r.status(), 413);
    assert!(r.text().await.expect("text").contains("over the 64 KiB"));
    let status = status_of(&http, &d).await;
    assert_eq!(
        status["state"], "primary",
        "the oversized pause did nothing"
    );
    // A dry run names the target the controller would choose, and starts nothing.
    let preview: lifeboat::contract::Reply = http
        .post(format!("{}/v1/failover", d.url))
        .bearer_auth(&d.token)
        .json(&serde_json::json!({"dry_run": true, "by": "t"}))
        .send()
        .await
        .expect("preview")
        .json()
        .await
        .expect("reply");
    match preview {
        lifeboat::contract::Reply::Preview { plan } => {
            assert_eq!(plan.to.as_str(), "us-west-2");
        }
        other => panic!("{other:?}"),
    }
    let ok = pause().bearer_auth(&d.token).send().await.expect("token");
    assert_eq!(ok.status(), 200, "{:?}", ok.text().await);
    let decisions: Vec<lifeboat::core::controller::Decision> = http
        .get(format!("{}/v1/decisions", d.url))
        .send()
        .await
        .expect("decisions")
        .json()
        .await
        .expect("json");
    assert_eq!(
        decisions.first().map(|d| d.reason.label()),
        Some("paused"),
        "the newest decision first: {decisions:?}"
    );
    let status = status_of(&http, &d).await;
    assert_eq!(status["state"], "paused");

    // The CLI finds the daemon and goes through it.
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["resume", "--by", "tester", "--policy"])
        .arg(&policy)
        .output()
        .expect("lifeboat resume");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = status_of(&http, &d).await;
    assert_eq!(status["state"], "primary");

    // `lifeboat reload -p FILE` finds the daemon running that file: nothing changed.
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["reload", "--policy"])
        .arg(&policy)
        .output()
        .expect("lifeboat reload");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("unchanged: 1 service(s)"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The body of a real control call to `path`: one that acts (or previews) rather than
/// fails to parse.
fn real_body(path: &str) -> serde_json::Value {
    let by = "contract test";
    match path.rsplit('/').next() {
        Some("failover" | "failback") => serde_json::json!({"dry_run": true, "by": by}),
        Some("pause" | "abort") => serde_json::json!({"by": by, "reason": "checking the API"}),
        _ => serde_json::json!({"by": by}),
    }
}

/// `/` is `~1` in a JSON pointer.
fn pointer_part(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// The daemon serves the document `deploy/openapi.json` keeps, and every documented
/// operation answers with a status the document lists for it and a body its schema
/// describes: with and without the token, with a body it cannot read, and with a real one.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_serves_its_openapi_document_and_answers_as_it_describes() {
    let dir = support::tempdir();
    let (east, _t1) = endpoint::spawn(Faults::new("us-east-1"), 0)
        .await
        .expect("east");
    let (west, _t2) = endpoint::spawn(Faults::new("us-west-2"), 0)
        .await
        .expect("west");
    let policy = policy(dir.path(), east, west);
    let d = start(&policy);
    let http = reqwest::Client::new();
    let kept: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("deploy/openapi.json").expect("deploy/openapi.json"),
    )
    .expect("json");
    let served: serde_json::Value = http
        .get(format!("{}/v1/openapi.json", d.url))
        .send()
        .await
        .expect("openapi.json")
        .json()
        .await
        .expect("json");
    assert!(
        served == kept,
        "the daemon serves another document than deploy/openapi.json: run `make schemas`"
    );
    // One probe round, so the status has regions and a dry run has a plan.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let mut seen = Vec::new();
    for (path, item) in kept["paths"].as_object().expect("paths") {
        let url = format!("{}{}", d.url, path.replace("{id}", "no-such-run"));
        for (method, op) in item.as_object().expect("path item") {
            let calls = if method == "get" {
                vec![("no token", http.get(&url))]
            } else {
                let bad = serde_json::json!({"no_such_field": 1});
                vec![
                    ("no token", http.post(&url).json(&real_body(path))),
                    (
                        "unreadable body",
                        http.post(&url).bearer_auth(&d.token).json(&bad),
                    ),
                    (
                        "real call",
                        http.post(&url).bearer_auth(&d.token).json(&real_body(path)),
                    ),
                ]
            };
            for (what, req) in calls {
                let r = req.send().await.expect("call");
                let code = r.status().as_u16().to_string();
                let content_type = r
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let body = r.bytes().await.expect("body");
                let call = format!("{method} {path} ({what})");
                let Some(response) = op["responses"].get(&code) else {
                    panic!(
                        "{call} answered {code}, which the document does not list: {}",
                        String::from_utf8_lossy(&body)
                    );
                };
                let (documented, _) = response["content"]
                    .as_object()
                    .and_then(|c| c.iter().next())
                    .unwrap_or_else(|| panic!("{call}: {code} documents no content"));
                let essence = |t: &str| t.split(';').next().unwrap_or("").trim().to_string();
                assert_eq!(essence(&content_type), essence(documented), "{call}");
                if documented == "application/json" {
                    let pointer = format!(
                        "/paths/{}/{method}/responses/{code}/content/application~1json/schema",
                        pointer_part(path)
                    );
                    support::contract::assert_valid_at(&pointer, &body);
                }
                seen.push(format!("{method} {path} {code}"));
            }
        }
    }
    // The answers the walk must have met, so it cannot pass by meeting none of them.
    for want in [
        "get /v1/status 200",
        "get /v1/runs/{id} 404",
        "get /v1/openapi.json 200",
        "post /v1/failover 200",
        "post /v1/failback 409",
        "post /v1/pause 401",
        "post /v1/pause 400",
        "post /v1/pause 200",
        "post /v1/runs/{id}/abort 409",
    ] {
        assert!(seen.iter().any(|s| s == want), "no {want} in {seen:#?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_one_runner_acts_on_a_journal_and_sigterm_stops_cleanly() {
    let dir = support::tempdir();
    let (east, _t1) = endpoint::spawn(Faults::new("us-east-1"), 0)
        .await
        .expect("east");
    let (west, _t2) = endpoint::spawn(Faults::new("us-west-2"), 0)
        .await
        .expect("west");
    let policy = policy(dir.path(), east, west);
    let mut d = start(&policy);

    let second = spawn(&policy, &[])
        .wait_with_output()
        .expect("second daemon");
    assert_eq!(second.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&second.stderr)
            .contains("another lifeboat process is acting on this service")
    );

    assert!(
        Command::new("kill")
            .arg("-TERM")
            .arg(d.child.id().to_string())
            .status()
            .expect("kill")
            .success()
    );
    let status = d.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
    assert!(
        !dir.path().join("journal.db.api").exists(),
        "the discovery file is removed"
    );
}

#[test]
fn it_refuses_to_listen_beyond_loopback_without_a_token() {
    let dir = support::tempdir();
    let policy = policy(dir.path(), 1, 2);
    let out = spawn(&policy, &["--listen", "0.0.0.0:0"])
        .wait_with_output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without an API token"),
        "{stderr}"
    );
}

#[test]
fn a_damaged_journal_stops_the_daemon_before_it_acts() {
    let dir = support::tempdir();
    let policy = policy(dir.path(), 1, 2);
    std::fs::write(dir.path().join("journal.db"), b"this is not a journal").expect("write");
    let out = spawn(&policy, &[]).wait_with_output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lifeboat acts on nothing it cannot read"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("journal.db.api").exists(),
        "nothing was started"
    );
}

/// The daemon's latest readiness round, once `newer_than` (or any, with `None`) is there.
async fn readiness_after(d: &Daemon, newer_than: Option<&ReadinessReport>) -> ReadinessReport {
    // The first scheduled round starts up to 17 s after start (2 s + jitter).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: serde_json::Value = reqwest::get(format!("{}/v1/status", d.url))
            .await
            .expect("status")
            .json()
            .await
            .expect("status json");
        if let Some(r) = status.get("readiness").filter(|r| !r.is_null()) {
            let r: ReadinessReport = serde_json::from_value(r.clone()).expect("a readiness report");
            if newer_than.is_none_or(|old| old.at != r.at) {
                return r;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no new readiness round within 30 s (after {newer_than:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn failback_wait(r: &ReadinessReport) -> ReadyState {
    r.runbooks
        .iter()
        .find(|rb| rb.direction == Direction::Failback)
        .and_then(|rb| rb.steps.iter().find(|s| s.step == "healthy"))
        .map(|s| s.readiness.state())
        .expect("the failback's healthy step")
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_checks_readiness_at_once_and_status_shows_the_new_round() {
    let dir = support::tempdir();
    let east_faults = Faults::new("us-east-1");
    let (east, _t1) = endpoint::spawn(east_faults.clone(), 0).await.expect("east");
    let (west, _t2) = endpoint::spawn(Faults::new("us-west-2"), 0)
        .await
        .expect("west");
    let policy = policy(dir.path(), east, west);
    let mut d = start(&policy);

    let first = readiness_after(&d, None).await;
    assert_eq!(failback_wait(&first), ReadyState::Ready, "{first:#?}");

    // The primary's API fails: a failback would wait for it. With `every = "1d"` only
    // SIGHUP can start the round that sees it. The failback is not the runbook that runs
    // next, so its wait cannot tell (a failing primary is the failover's business, and
    // is not paged twice).
    east_faults.set_mode(Mode::Error);
    assert!(
        Command::new("kill")
            .arg("-HUP")
            .arg(d.child.id().to_string())
            .status()
            .expect("kill")
            .success()
    );
    let second = readiness_after(&d, Some(&first)).await;
    assert_eq!(
        failback_wait(&second),
        ReadyState::CannotTell,
        "{second:#?}"
    );
    assert!(
        d.child.try_wait().expect("try_wait").is_none(),
        "SIGHUP does not stop the daemon"
    );
}
