//! A witness's vote counts only when it is signed with the policy's witness_key, about
//! this service, answers this very request (its nonce), and rests on an observation that
//! is recent by the witness's own clock. A fake witness (a local HTTP server) answers
//! unsigned, forged, stale, about another service, replayed, oversized and redirected
//! "down"s: none is a vote; a correctly signed fresh one is. End to end, a controller
//! with `quorum = 2` whose only witness forges "down" never fails over, and fails over
//! once the witness answers honestly with the key.

mod support;

use support::Proc;
use support::daemon::{status_json as status, until_json as until};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lifeboat::clients::secret::Secret;
use lifeboat::core::model::RegionName;
use lifeboat::core::time::Ts;
use lifeboat::daemon::vote::{self, RegionVote, Vote, VoteKey};
use lifeboat::daemon::witness::{self, Poll, Witnesses};
use lifeboat::sandbox::endpoint::{self, Faults, Mode as EndpointMode};

const KEY: &str = "the-witness-key-0123456789abcdef0123456789";
const SERVICE: &str = "votes-test";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Honest,
    Unsigned,
    WrongKey,
    Stale,
    OtherService,
    Replay,
    Huge,
    Redirect,
}

#[derive(Default)]
struct FakeState {
    mode: Option<Mode>,
    /// The last honest answer, body and signature, for the replay.
    last: Option<(Vec<u8>, String)>,
}

type Shared = Arc<Mutex<FakeState>>;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

async fn fake_vote(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut st = s.lock().expect("lock");
    let mode = st.mode.unwrap_or(Mode::Honest);
    if mode == Mode::Redirect {
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, "http://169.254.169.254/latest/meta-data/")],
        )
            .into_response();
    }
    if mode == Mode::Replay
        && let Some((body, sig)) = st.last.clone()
    {
        return ([(vote::SIGNATURE_HEADER, sig)], body).into_response();
    }
    let now = now_ms();
    let v = Vote {
        service: if mode == Mode::OtherService {
            "other".into()
        } else {
            h(vote::SERVICE_HEADER)
        },
        nonce: h(vote::NONCE_HEADER),
        signed_at: Ts(now),
        loop_age_ms: 5,
        regions: vec![
            RegionVote {
                region: RegionName::new("us-east-1"),
                down: true,
                observed_at: Some(Ts(if mode == Mode::Stale {
                    now - 3_600_000
                } else {
                    now
                })),
            },
            RegionVote {
                region: RegionName::new("us-west-2"),
                down: false,
                observed_at: Some(Ts(now)),
            },
        ],
    };
    let mut body = serde_json::to_vec(&v).expect("json");
    if mode == Mode::Huge {
        // Valid JSON, signed, and far beyond any vote.
        body = format!("{{\"pad\":\"{}\"}}", "x".repeat(vote::MAX_BODY + 1024)).into_bytes();
    }
    let key = if mode == Mode::WrongKey {
        "another-key-0123456789abcdef0123456789ab"
    } else {
        KEY
    };
    let sig = VoteKey::new(Secret::new(key))
        .expect("key")
        .sign_answer(&body);
    if mode == Mode::Honest {
        st.last = Some((body.clone(), sig.clone()));
    }
    if mode == Mode::Unsigned {
        return body.into_response();
    }
    ([(vote::SIGNATURE_HEADER, sig)], body).into_response()
}

/// What an older controller would have asked: the status, which says us-east-1 is down.
async fn fake_status() -> Response {
    axum::Json(serde_json::json!({
        "regions": [
            {"region": "us-east-1", "verdict": {"verdict": "down", "since": 1}},
            {"region": "us-west-2", "verdict": {"verdict": "healthy"}}
        ]
    }))
    .into_response()
}

struct Fake {
    url: String,
    state: Shared,
}

impl Fake {
    async fn start() -> Fake {
        let state: Shared = Arc::default();
        let app = axum::Router::new()
            .route(vote::PATH, get(fake_vote))
            .route("/v1/status", get(fake_status))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake { url, state }
    }

    fn set(&self, mode: Mode) {
        self.state.lock().expect("lock").mode = Some(mode);
    }
}

fn east() -> RegionName {
    RegionName::new("us-east-1")
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_signed_fresh_answer_about_this_service_to_this_request_is_a_vote() {
    let fake = Fake::start().await;
    let client = lifeboat::clients::http::builder("witness")
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let key = VoteKey::new(Secret::new(KEY)).expect("key");
    let poll = |mode: Mode| {
        let (client, key, url) = (client.clone(), key.clone(), fake.url.clone());
        fake.set(mode);
        async move {
            let result = witness::ask(&client, &url, SERVICE, &key).await;
            let mut w = Witnesses::new(std::slice::from_ref(&url), Duration::from_secs(3));
            let now = tokio::time::Instant::now();
            w.record(
                Poll {
                    url: url.clone(),
                    result: result.clone(),
                },
                now,
            );
            (result, w.agreeing(&east(), now))
        }
    };
    for (mode, why) in [
        (Mode::Unsigned, "not signed"),
        (Mode::WrongKey, "signature is wrong"),
        (Mode::OtherService, "watches `other`, not `votes-test`"),
        (Mode::Huge, "larger than"),
        (Mode::Redirect, "HTTP 307"),
    ] {
        let (result, votes) = poll(mode).await;
        let e = result.expect_err(&format!("{mode:?} is refused"));
        assert!(e.contains(why), "{mode:?}: {e}");
        assert_eq!(votes, 0, "{mode:?}");
    }
    // Signed, about this service, for this request, but about an observation an hour
    // old by the witness's own clock: an answer, not a vote.
    let (result, votes) = poll(Mode::Stale).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(votes, 0, "a stale observation voted");

    let (result, votes) = poll(Mode::Honest).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(votes, 1, "the honest answer is a vote");
    // The same signed answer again, for a later request: refused.
    let (result, votes) = poll(Mode::Replay).await;
    let e = result.expect_err("a replay is refused");
    assert!(e.contains("replayed"), "{e}");
    assert_eq!(votes, 0);
}

fn policy(dir: &Path, east: u16, west: u16, witness: &str) -> PathBuf {
    let text = format!(
        r#"
[service]
name = "{SERVICE}"

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
witnesses = ["{witness}"]
witness_key = {{ env = "WITNESS_KEY" }}

[journal]
path = "journal.db"

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

#[tokio::test(flavor = "multi_thread")]
async fn a_witness_forging_down_never_gets_the_controller_to_fail_over() {
    let dir = support::tempdir();
    let east_f = Faults::new("us-east-1");
    let (east, _t1) = endpoint::spawn(east_f.clone(), 0).await.expect("east");
    let (west, _t2) = endpoint::spawn(Faults::new("us-west-2"), 0)
        .await
        .expect("west");
    let fake = Fake::start().await;
    // Signed, but not with the policy's key: what an attacker on the path can do.
    fake.set(Mode::WrongKey);
    let policy = policy(dir.path(), east, west, &fake.url);
    let _controller = Proc(
        Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .args(["run", "--policy"])
            .arg(&policy)
            .env("LIFEBOAT_API_TOKEN", "")
            .env("WITNESS_KEY", KEY)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("controller.log")).expect("log"))
            .spawn()
            .expect("start lifeboat run"),
    );
    let journal = dir.path().join("journal.db");
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = loop {
        if let Some(p) = lifeboat::daemon::discovery::find(&journal) {
            break p.url;
        }
        assert!(
            Instant::now() < deadline,
            "the controller did not publish its API: {}",
            std::fs::read_to_string(dir.path().join("controller.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    until(&url, "healthy", Duration::from_secs(20), |v| {
        v["state"] == "primary"
            && v["regions"]
                .as_array()
                .is_some_and(|r| r.iter().all(|x| x["verdict"]["verdict"] == "healthy"))
    })
    .await;

    // The primary fails for the controller; the "witness" forges its agreement.
    east_f.set_mode(EndpointMode::Error);
    until(
        &url,
        "blocked for want of a quorum",
        Duration::from_secs(10),
        |v| v["state"] == "blocked" && v["why"].as_str().is_some_and(|w| w.contains("quorum")),
    )
    .await;
    // Several polls later it still holds, and says why the witness does not count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let v = status(&url).await;
    assert_eq!(v["state"], "blocked", "{v:#}");
    assert!(
        v["witnesses"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("signature is wrong")),
        "{v:#}"
    );
    let runs = lifeboat::journal::Journal::open(&journal)
        .expect("journal")
        .runs(10)
        .expect("runs");
    assert!(runs.is_empty(), "{runs:?}");

    // The witness answers with the key: its vote counts, and the failover starts.
    fake.set(Mode::Honest);
    until(&url, "the failover starts", Duration::from_secs(10), |v| {
        v["state"] == "failing_over"
    })
    .await;
}
