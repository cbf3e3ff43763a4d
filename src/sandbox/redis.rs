//! A real Redis server on a loopback port, without persistence.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::process::{Server, find_program};

/// Starts `redis-server` on 127.0.0.1:`port`, its log in `dir`.
pub fn start(dir: &Path, name: &str, port: u16) -> anyhow::Result<Server> {
    start_with(dir, name, port, port, &[])
}

/// Starts `redis-server` speaking only TLS on 127.0.0.1:`port` with this certificate and
/// key (PEM files); clients need no certificate of their own.
pub fn start_tls(
    dir: &Path,
    name: &str,
    port: u16,
    cert: &Path,
    key: &Path,
    ca: &Path,
) -> anyhow::Result<Server> {
    let path = |p: &Path| p.to_string_lossy().into_owned();
    // `--port 0`: no plain-text listener at all.
    start_with(
        dir,
        name,
        0,
        port,
        &[
            "--tls-port".to_string(),
            port.to_string(),
            "--tls-cert-file".to_string(),
            path(cert),
            "--tls-key-file".to_string(),
            path(key),
            // Redis wants a CA even when it does not ask clients for certificates.
            "--tls-ca-cert-file".to_string(),
            path(ca),
            "--tls-auth-clients".to_string(),
            "no".to_string(),
        ],
    )
}

/// Starts it with `--port plain` and `extra`, and waits until `port` accepts connections.
fn start_with(
    dir: &Path,
    name: &str,
    plain: u16,
    port: u16,
    extra: &[String],
) -> anyhow::Result<Server> {
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
        &plain.to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
    ])
    .args(["--protected-mode", "no", "--daemonize", "no", "--dir"])
    .arg(dir)
    .args(extra);
    Server::spawn(
        name,
        cmd,
        port,
        dir.join(format!("{name}.log")),
        Duration::from_secs(10),
    )
}
