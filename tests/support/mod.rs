//! Real local services for integration tests: a PostgreSQL primary + streaming standby,
//! Redis, moto's server and fault-switchable HTTP endpoints, each torn down when the
//! value holding it is dropped.
//!
//! `make test` starts one moto server for the whole run and exports its URL as
//! `LIFEBOAT_TEST_MOTO_URL` (tests/setup/with-services.sh); without it, a test starts its
//! own. The other services are per test, so a test can stop or break them freely.
#![allow(dead_code)]

use std::path::Path;

use lifeboat::sandbox::postgres::PgPair;
use lifeboat::sandbox::process::{Server, free_port};
use lifeboat::sandbox::{moto, redis};

/// The application password of test PostgreSQL pairs.
pub const PG_PASSWORD: &str = "lifeboat-test-password";

/// A scratch directory, removed at the end of the test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lifeboat-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// A copy of the shipped sandbox policy in a scratch repository layout
/// (`ROOT/policies/sandbox.toml`), so the sandbox, journal and reports it leads to live
/// under `root` and not in the developer's checkout. Returns the policy's path.
pub fn scratch_sandbox_policy(root: &Path) -> String {
    std::fs::create_dir_all(root.join("policies")).expect("mkdir");
    let text = std::fs::read_to_string("policies/sandbox.toml").expect("read sandbox policy");
    let path = root.join("policies/sandbox.toml");
    std::fs::write(&path, text).expect("write policy");
    path.to_str().expect("utf-8").to_string()
}

/// What `lifeboat drill policies/drills/NAME.toml --policy POLICY --out OUT` did: whether
/// it passed, its stderr, and its report (checked against the published drill schema).
pub struct DrillRun {
    pub passed: bool,
    pub stderr: String,
    pub report: lifeboat::drill::report::Report,
    /// The report as written, JSON.
    pub text: String,
}

pub fn run_drill(name: &str, policy: &Path, out: &Path) -> DrillRun {
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .arg("drill")
        .arg(format!("policies/drills/{name}.toml"))
        .arg("--policy")
        .arg(policy)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run lifeboat drill");
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    let text = std::fs::read_to_string(out.join(format!("{name}-1.json")))
        .unwrap_or_else(|e| panic!("no report for {name} ({e}); stderr:\n{stderr}"));
    contract::assert_output_valid("drill", text.as_bytes());
    let report = serde_json::from_str(&text).expect("the report is JSON");
    DrillRun {
        passed: run.status.success(),
        stderr,
        report,
        text,
    }
}

/// A PostgreSQL primary on a free port with a streaming standby on another.
pub fn pg_pair(dir: &Path) -> PgPair {
    let (p, s) = (free_port().expect("port"), free_port().expect("port"));
    PgPair::create(&dir.join("pg"), p, s, PG_PASSWORD).unwrap_or_else(|e| {
        panic!("could not start a PostgreSQL pair ({e:#}); install PostgreSQL with tests/setup/install-deps.sh")
    })
}

/// A Redis server on a free port.
pub fn redis(dir: &Path) -> Server {
    let port = free_port().expect("port");
    redis::start(&dir.join("redis"), "redis", port).unwrap_or_else(|e| {
        panic!("could not start Redis ({e:#}); install it with tests/setup/install-deps.sh")
    })
}

/// moto's server: the shared one of this test run, or one of this test's own.
pub enum Moto {
    Shared(String),
    Owned(tempfile::TempDir, Server),
}

impl Moto {
    pub fn url(&self) -> String {
        match self {
            Moto::Shared(url) => url.clone(),
            Moto::Owned(_, s) => moto::endpoint(s.port),
        }
    }
}

pub fn moto() -> Moto {
    if let Ok(url) = std::env::var("LIFEBOAT_TEST_MOTO_URL") {
        return Moto::Shared(url);
    }
    let dir = tempdir();
    let port = free_port().expect("port");
    let server = moto::start(dir.path(), port).unwrap_or_else(|e| {
        panic!("could not start moto's server ({e:#}); install it with tests/setup/install-deps.sh (pip install 'moto[server]')")
    });
    Moto::Owned(dir, server)
}

/// A name no other test uses, for AWS resources on a shared moto server.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), fastrand::u32(..))
}

pub mod contract;
pub mod daemon;
mod runbook;
#[allow(unused_imports)]
pub use runbook::*;

/// Every control call of the API, each with a body a controller would accept, so a
/// refusal cannot come from a malformed body.
pub fn control_calls() -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    let why = "a test's try";
    vec![
        (
            "/v1/failover",
            json!({"by": "t", "note": why, "allow_data_loss": true}),
        ),
        ("/v1/failback", json!({"by": "t", "note": why})),
        ("/v1/pause", json!({"by": "t", "reason": why})),
        ("/v1/resume", json!({"by": "t"})),
        ("/v1/approve", json!({"by": "t", "allow_data_loss": true})),
        (
            "/v1/runs/x/approve",
            json!({"by": "t", "allow_data_loss": true}),
        ),
        ("/v1/runs/x/abort", json!({"by": "t", "reason": why})),
    ]
}

/// A child process killed and reaped when the test lets go of it, even on a panic.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CloudFront distribution in moto (one S3 origin, the default behaviour); its id.
pub async fn cloudfront_distribution(aws: &lifeboat::clients::aws::AwsClients) -> String {
    use aws_sdk_cloudfront::types::{
        DefaultCacheBehavior, DistributionConfig, Origin, Origins, S3OriginConfig,
        ViewerProtocolPolicy,
    };
    let config = DistributionConfig::builder()
        .caller_reference(unique("dist"))
        .comment("lifeboat test")
        .enabled(true)
        .origins(
            Origins::builder()
                .quantity(1)
                .items(
                    Origin::builder()
                        .id("assets")
                        .domain_name("assets.s3.amazonaws.com")
                        .s3_origin_config(
                            S3OriginConfig::builder().origin_access_identity("").build(),
                        )
                        .build()
                        .expect("origin"),
                )
                .build()
                .expect("origins"),
        )
        .default_cache_behavior(
            DefaultCacheBehavior::builder()
                .target_origin_id("assets")
                .viewer_protocol_policy(ViewerProtocolPolicy::AllowAll)
                .build()
                .expect("behaviour"),
        )
        .build()
        .expect("config");
    let out = aws
        .cloudfront()
        .create_distribution()
        .distribution_config(config)
        .send()
        .await
        .expect("create distribution");
    out.distribution().expect("distribution").id().to_string()
}
