//! Helpers shared by the action tests: a `StepCtx` for a step, a driver that runs one
//! step the way the executor does (check → apply → verify polled), and AWS clients
//! answered by aws-smithy-mocks rules instead of a server.
#![allow(dead_code)]

use std::time::Duration;

use lifeboat::core::ids::{Epoch, RunId};
use lifeboat::core::model::{Direction, PostgresEndpoint, RegionName, SecretRef, SslMode};
use lifeboat::runbook::{Cancel, Check, Step, StepCtx, StepError, Verify};

pub const PRIMARY: &str = "us-east-1";
pub const SECONDARY: &str = "us-west-2";

/// The context of step `step` of a failover from us-east-1 to us-west-2, acting in
/// `region`, with a 30-second deadline and an RPO budget of 5 s.
pub fn ctx(step: &str, region: &str) -> StepCtx {
    StepCtx {
        run_id: RunId("fo-test-1".into()),
        epoch: Epoch(3),
        service: "orders".into(),
        direction: Direction::Failover,
        from: RegionName::new(PRIMARY),
        to: RegionName::new(SECONDARY),
        step: step.into(),
        region: RegionName::new(region),
        allow_data_loss: false,
        rpo_budget: Duration::from_secs(5),
        approved_by: None,
        timeline: Vec::new(),
        deadline: tokio::time::Instant::now() + Duration::from_secs(30),
        cancel: Cancel::new(),
    }
}

/// How one drive of a step ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ran {
    /// `check` found the effect in place; nothing was applied.
    AlreadyDone(String),
    /// Applied, then `verify` observed it: (apply's detail, verify's detail).
    Applied(String, String),
}

impl Ran {
    pub fn detail(&self) -> &str {
        match self {
            Ran::AlreadyDone(d) | Ran::Applied(_, d) => d,
        }
    }
}

/// Runs a step as the executor would, without a journal: `check`, `apply` if needed,
/// then `verify` every 100 ms until it observes the effect or the context's deadline
/// passes (then the last observation is the error).
pub async fn drive(step: &dyn Step, ctx: &StepCtx) -> Result<Ran, StepError> {
    let applied = match step.check(ctx).await? {
        Check::Done(d) => {
            // The executor verifies an effect `check` found, too.
            match step.verify(ctx).await? {
                Verify::Done(_) => return Ok(Ran::AlreadyDone(d)),
                Verify::NotYet(n) => {
                    return Err(StepError::fatal(format!(
                        "check said done ({d}) but verify: {n}"
                    )));
                }
            }
        }
        Check::NotDone(_) => step.apply(ctx).await?.detail,
    };
    loop {
        match step.verify(ctx).await? {
            Verify::Done(d) => return Ok(Ran::Applied(applied, d)),
            Verify::NotYet(d) if tokio::time::Instant::now() >= ctx.deadline => {
                return Err(StepError::retryable(format!("deadline passed; last: {d}")));
            }
            Verify::NotYet(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The sandbox's application role on a local server; the password from a file.
pub fn pg_endpoint(port: u16, password_file: &std::path::Path) -> PostgresEndpoint {
    PostgresEndpoint {
        host: "127.0.0.1".into(),
        port,
        user: "lifeboat".into(),
        database: "orders".into(),
        password: Some(SecretRef::File(password_file.to_path_buf())),
        sslmode: SslMode::Disable,
        ca_file: None,
    }
}

/// A client of an AWS SDK crate whose calls are answered by aws-smithy-mocks rules.
/// (`aws_smithy_mocks::mock_client!` does the same but needs the SDK crates' `test-util`
/// feature, which would rebuild them; this sets the few things it sets by hand.)
#[macro_export]
macro_rules! mocked {
    ($krate:ident, $mode:expr, [$($rule:expr),* $(,)?]) => {{
        let mut interceptor = aws_smithy_mocks::MockResponseInterceptor::new().rule_mode($mode);
        $( interceptor = interceptor.with_rule($rule); )*
        let conf = $krate::config::Builder::new()
            .behavior_version($krate::config::BehaviorVersion::latest())
            .region($krate::config::Region::new("us-west-2"))
            .credentials_provider($krate::config::Credentials::new(
                "test", "test", None, None, "aws-smithy-mocks",
            ))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(interceptor)
            .build();
        $krate::Client::from_conf(conf)
    }};
}
