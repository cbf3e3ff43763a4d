//! moto's server: the AWS APIs (Route 53, RDS, S3, Auto Scaling, ECS, SNS, CloudFront)
//! emulated on a loopback port, so nothing needs a cloud account.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::process::{Server, find_program};

/// Credentials moto accepts; they are not secrets.
pub const ACCESS_KEY_ID: &str = "testing";
pub const SECRET_ACCESS_KEY: &str = "testing";
/// moto's default account id, which appears in the ARNs it returns.
pub const ACCOUNT_ID: &str = "123456789012";

/// Starts `moto_server` on 127.0.0.1:`port` and waits until it answers.
pub fn start(dir: &Path, port: u16) -> anyhow::Result<Server> {
    std::fs::create_dir_all(dir)?;
    let program = find_program("LIFEBOAT_MOTO_SERVER", &[], "moto_server");
    let mut cmd = Command::new(program);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    // Python's first start compiles bytecode; allow for a slow first run.
    Server::spawn(
        "moto",
        cmd,
        port,
        dir.join("moto.log"),
        Duration::from_secs(60),
    )
}

/// The endpoint URL for `start(_, port)`.
pub fn endpoint(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}
