//! The functions the fuzz targets (`fuzz/`) call, and that `tests/fuzz_replay.rs` feeds
//! the saved corpus and every crash the fuzzer found, so a crash is a failing test on
//! stable Rust: the policy loader, and the HTTP API as a client reaches it (routes, the
//! token and Host checks, the control calls' bodies). Each also checks an invariant that
//! must hold whatever the input.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use tokio::sync::mpsc;
use tower::ServiceExt;

use crate::contract::Reply;
use crate::core::controller::State;
use crate::core::health::HealthTracker;
use crate::core::model::Direction;
use crate::core::summary::LinkMemory;
use crate::daemon::api::{self, ApiState};
use crate::daemon::auth::{self, Access, Tokens};
use crate::daemon::engine::Event;
use crate::daemon::metrics::Metrics;
use crate::daemon::role::Role;
use crate::daemon::status;

/// Loads `data` as a policy file. Invariant: a policy that loads has no error in its
/// report, and plans in both directions; diagnostics render as text and JSON.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = crate::policy::load_str(Path::new("fuzz/policy.toml"), text.to_string());
    let _ = loaded.report.render(false);
    let _ = serde_json::to_string(&loaded.report.to_json());
    let Some(p) = loaded.policy else {
        return;
    };
    assert!(
        !loaded.report.has_errors(),
        "a policy loaded although its report has errors"
    );
    for to in &p.regions.secondaries {
        for (direction, from, to) in [
            (Direction::Failover, &p.regions.primary, to),
            (Direction::Failback, to, &p.regions.primary),
        ] {
            let _ = crate::core::plan::build(
                &p,
                crate::core::plan::PlanRequest {
                    direction,
                    from: from.clone(),
                    to: to.clone(),
                    run_id: crate::core::ids::RunId("fuzz".into()),
                    epoch: crate::core::ids::Epoch(1),
                    trigger: crate::core::reason::Trigger::Operator {
                        by: "fuzz".into(),
                        note: String::new(),
                    },
                    allow_data_loss: false,
                },
            );
        }
    }
}

pub const CONTROL_TOKEN: &str = "fuzz-control-token-0123456789abcdef";
pub const READ_TOKEN: &str = "fuzz-read-token-0123456789abcdef";

/// A daemon's API with no daemon behind it: a control call that gets through is
/// answered `Refused` and counted in `requests`.
pub struct ApiFixture {
    pub router: Router,
    pub requests: Arc<AtomicUsize>,
    _dir: tempfile_dir::Dir,
}

/// A fixture whose views are open (`open_reads`, as on loopback) or need a token (as
/// beyond loopback), with one control token (`ops`, `CONTROL_TOKEN`) and one read token
/// (`viewer`, `READ_TOKEN`). Call inside a tokio runtime: it spawns the stand-in loop.
pub fn api_fixture(open_reads: bool) -> ApiFixture {
    let dir = tempfile_dir::Dir::new();
    let text = format!(
        r#"
[service]
name = "fuzz"
[regions]
primary = "us-east-1"
secondaries = ["us-west-2"]
[detection]
interval = "1s"
timeout = "500ms"
mode = "manual"
[journal]
path = "{}/journal.db"
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
"#,
        dir.path().display()
    );
    let policy = crate::policy::load_str(&dir.path().join("p.toml"), text)
        .policy
        .unwrap_or_else(|| unreachable!("the fixture's policy is valid"));
    let journal = Arc::new(
        crate::journal::Journal::open_or_create(&dir.path().join("journal.db"))
            .unwrap_or_else(|e| panic!("the fixture's journal: {e}")),
    );
    let clock = crate::clock::WallClock::system();
    let state = State::new(&policy, policy.regions.primary.clone(), clock.now());
    let view = status::build(
        &policy,
        &state,
        &HealthTracker::for_policy(&policy),
        &LinkMemory::default(),
        None,
        clock.now(),
        "fuzz".into(),
    );
    let token = |name: &str, value: &str, access| auth::Token {
        name: name.into(),
        secret: crate::clients::secret::Secret::new(value),
        access,
    };
    let tokens = Tokens::new(
        vec![token("ops", CONTROL_TOKEN, Access::Control)],
        vec![token("viewer", READ_TOKEN, Access::Read)],
        open_reads,
        vec!["lifeboat.internal".into()],
    )
    .unwrap_or_else(|e| panic!("the fixture's tokens: {e}"));
    let (events, mut rx) = mpsc::channel::<Event>(16);
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            if let Event::Request(_, reply) = e {
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = reply.send(Reply::refused_because("fuzz", None));
            }
        }
    });
    let router = api::router(ApiState {
        status: Arc::new(RwLock::new(view)),
        metrics: Arc::new(Metrics::new()),
        journal,
        service: policy.service.clone(),
        events,
        role: Role::Controller,
        tokens: Arc::new(tokens),
        vote_key: None,
        clock,
        heartbeat: Arc::new(AtomicU64::new(0)),
        started: tokio::time::Instant::now(),
        stale_after: Duration::from_secs(3600),
        readers: api::journal_readers(),
    });
    ApiFixture {
        router,
        requests,
        _dir: dir,
    }
}

const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/v1/status"),
    ("GET", "/v1/runs"),
    ("GET", "/v1/runs/x"),
    ("GET", "/v1/decisions?limit=5"),
    ("GET", "/v1/vote"),
    ("POST", "/v1/failover"),
    ("POST", "/v1/failback"),
    ("POST", "/v1/pause"),
    ("POST", "/v1/resume"),
    ("POST", "/v1/approve"),
    ("POST", "/v1/runs/x/approve"),
    ("POST", "/v1/runs/x/abort"),
    ("POST", "/v1/status"),
    ("GET", "/nowhere"),
];

/// A runtime and two fixtures (views open, views behind a token) to send requests to.
pub struct ApiHarness {
    // Dropped after the fixtures, which hold tasks on it.
    fixtures: [ApiFixture; 2],
    rt: tokio::runtime::Runtime,
}

impl Default for ApiHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiHarness {
    pub fn new() -> ApiHarness {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a runtime: {e}"));
        let fixtures = {
            let _guard = rt.enter();
            [api_fixture(true), api_fixture(false)]
        };
        ApiHarness { fixtures, rt }
    }

    /// One HTTP request built from `data`: byte 0 picks the route, byte 1 the token
    /// (none, read, control, garbage), the Host (ours, another, a configured name, none),
    /// the content type and the fixture; the rest is the body. Invariant: only a control
    /// token gets a control call to the loop, and every answer is a well-formed status.
    pub fn request(&self, data: &[u8]) {
        let (Some(&route), Some(&flags)) = (data.first(), data.get(1)) else {
            return;
        };
        let body = data.get(2..).unwrap_or_default().to_vec();
        let (method, path) = ROUTES[route as usize % ROUTES.len()];
        let fixture = &self.fixtures[usize::from(flags & 0x40 != 0)];
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET))
            .uri(path);
        let token = flags & 0x03;
        match token {
            1 => req = req.header(header::AUTHORIZATION, format!("Bearer {READ_TOKEN}")),
            2 => req = req.header(header::AUTHORIZATION, format!("Bearer {CONTROL_TOKEN}")),
            3 => req = req.header(header::AUTHORIZATION, "Bearer nope"),
            _ => {}
        }
        match (flags >> 2) & 0x03 {
            0 => req = req.header(header::HOST, "127.0.0.1:7300"),
            1 => req = req.header(header::HOST, "evil.example:7300"),
            2 => req = req.header(header::HOST, "lifeboat.internal"),
            _ => {}
        }
        if flags & 0x10 != 0 {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let Ok(req) = req.body(Body::from(body)) else {
            return;
        };
        let before = fixture.requests.load(Ordering::SeqCst);
        let Ok(answer) = self.rt.block_on(fixture.router.clone().oneshot(req));
        let status = answer.status().as_u16();
        assert!((200..600).contains(&status), "status {status}");
        let reached = fixture.requests.load(Ordering::SeqCst) > before;
        assert!(
            !reached || (token == 2 && method == "POST"),
            "{method} {path} with token choice {token} reached the control loop"
        );
    }
}

/// `ApiHarness::request` on one harness kept for the process (the fuzz target's).
pub fn api_request(data: &[u8]) {
    static HARNESS: OnceLock<ApiHarness> = OnceLock::new();
    HARNESS.get_or_init(ApiHarness::new).request(data);
}

/// A directory removed when dropped, without the tempfile crate (a dev-dependency).
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            let mut b = [0u8; 8];
            let _ = getrandom::fill(&mut b);
            let name: String = b.iter().map(|x| format!("{x:02x}")).collect();
            let p = std::env::temp_dir().join(format!("lifeboat-fuzz-{name}"));
            std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
            Dir(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
