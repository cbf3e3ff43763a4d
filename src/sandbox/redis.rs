//! A real Redis server on a loopback port, without persistence.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::process::{Server, find_program};

/// Starts `redis-server` on 127.0.0.1:`port`, its log in `dir`.
pub fn start(dir: &Path, name: &str, port: u16) -> anyhow::Result<Server> {
    std::fs::create_dir_all(dir)?;
    let program = find_program(
        "LIFEBOAT_REDIS_SERVER",
        &["/usr/bin/redis-server".into()],
        "redis-server",
    );
    let mut cmd = Command::new(program);
    cmd.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
    ])
    .args(["--protected-mode", "no", "--daemonize", "no", "--dir"])
    .arg(dir);
    Server::spawn(
        name,
        cmd,
        port,
        dir.join(format!("{name}.log")),
        Duration::from_secs(10),
    )
}
