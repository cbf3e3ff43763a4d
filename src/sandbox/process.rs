//! Starting, finding and stopping the local servers of the sandbox and the tests.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A port on 127.0.0.1 that was free a moment ago, chosen below the kernel's ephemeral
/// range: the servers bind it a little later, and a port from that range could meanwhile
/// be taken as the local end of any outgoing connection (which made one sandbox start in
/// ten fail with "address in use").
pub fn free_port() -> anyhow::Result<u16> {
    let low = ephemeral_low().unwrap_or(32768);
    let range = 10_000..low.max(10_001);
    for _ in 0..200 {
        let port = fastrand::u16(range.clone());
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    let l = TcpListener::bind("127.0.0.1:0").context("find a free port on 127.0.0.1")?;
    Ok(l.local_addr()?.port())
}

/// The first port of the kernel's ephemeral range (`net.ipv4.ip_local_port_range`).
fn ephemeral_low() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Waits until 127.0.0.1:`port` accepts connections, or fails naming `what` and its log.
pub fn wait_for_port(port: u16, timeout: Duration, what: &str, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if port_open(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "{what} did not start listening on 127.0.0.1:{port} within {}s; its log is {}:\n{}",
        timeout.as_secs(),
        log.display(),
        tail(log, 20)
    )
}

/// The last `n` lines of a log file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The effective user id of this process, read from /proc (no libc call needed).
pub fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|u| u.parse().ok()))
        })
        .unwrap_or(u32::MAX)
}

/// A system user the servers that refuse root (PostgreSQL) run as.
#[derive(Clone, Debug)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// `None` when this process is not root (servers then run as the current user); the
    /// `postgres` user otherwise, which Debian's postgresql package creates.
    pub fn for_postgres() -> anyhow::Result<Option<RunAs>> {
        if euid() != 0 {
            return Ok(None);
        }
        let passwd = std::fs::read_to_string("/etc/passwd").context("read /etc/passwd")?;
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() > 3 && f[0] == "postgres" {
                return Ok(Some(RunAs {
                    name: f[0].to_string(),
                    uid: f[2].parse().context("uid of user postgres")?,
                    gid: f[3].parse().context("gid of user postgres")?,
                }));
            }
        }
        bail!(
            "running as root, and PostgreSQL refuses to run as root, but there is no `postgres` user to run it as; install Debian's postgresql package (tests/setup/install-deps.sh) or run as a normal user"
        )
    }

    /// Gives `path` (and everything under it) to this user.
    pub fn chown_tree(&self, path: &Path) -> anyhow::Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("chown {} to {}", path.display(), self.name))?;
        if path.is_dir() {
            for e in std::fs::read_dir(path)? {
                self.chown_tree(&e?.path())?;
            }
        }
        Ok(())
    }

    pub fn apply(&self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        cmd.uid(self.uid).gid(self.gid).env("HOME", "/tmp");
    }
}

/// Runs a command to completion, failing with its output when it fails.
pub fn run(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: could not start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Finds a program: `$ENV_VAR` if set, else the first existing candidate path, else the
/// bare name (left to PATH).
pub fn find_program(env_var: &str, candidates: &[PathBuf], name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A server this process started. Dropping it kills the server unless it was detached
/// (the sandbox detaches, so servers outlive `lifeboat sandbox up`).
#[derive(Debug)]
pub struct Server {
    pub name: String,
    pub port: u16,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// Starts `cmd` in its own process group (so a Ctrl-C in the terminal does not reach
    /// it), output to `log`, and waits until it listens on `port`.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        port: u16,
        log: PathBuf,
        timeout: Duration,
    ) -> anyhow::Result<Server> {
        use std::os::unix::process::CommandExt;
        let out =
            std::fs::File::create(&log).with_context(|| format!("create log {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| {
                format!(
                    "start {name} ({:?}); is it installed? tests/setup/install-deps.sh installs it",
                    cmd.get_program()
                )
            })?;
        let mut server = Server {
            name: name.to_string(),
            port,
            log,
            child: Some(child),
        };
        if let Err(e) = server.wait_ready(timeout) {
            server.kill();
            return Err(e);
        }
        Ok(server)
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if port_open(self.port) {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "{} exited ({status}) before listening on port {}; log {}:\n{}",
                    self.name,
                    self.port,
                    self.log.display(),
                    tail(&self.log, 20)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        wait_for_port(self.port, Duration::ZERO, &self.name, &self.log)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops managing the process: it keeps running after this value is dropped.
    pub fn detach(mut self) -> u32 {
        self.child.take().map(|c| c.id()).unwrap_or(0)
    }

    /// Kills the server (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `signal` (e.g. "TERM", "KILL") to a process by id. Returns whether it existed.
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub use crate::process::alive;

/// Stops a detached server: SIGTERM, then SIGKILL if it is still alive after `grace`.
pub fn stop_pid(pid: u32, grace: Duration) {
    if !alive(pid) {
        return;
    }
    signal(pid, "TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && alive(pid) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        signal(pid, "KILL");
    }
}
