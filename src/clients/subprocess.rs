//! Running an operator's program, for the `command` probe and the `command` step alike:
//! in its own process group, killed with everything it started when the caller gives
//! up; with an allow-listed environment, so it never sees the daemon's API token,
//! AWS credentials or the secrets the policy references; and with its output buffered
//! up to a bound, so a chatty program cannot grow the daemon's memory.

use std::ffi::OsString;
use std::process::{ExitStatus, Stdio};

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much of each of stdout and stderr is kept: the last 64 KiB. Messages quote the
/// last lines, and a health check has no business printing more.
pub const OUTPUT_CAP: usize = 64 * 1024;

/// What a program inherits from lifeboat's environment, when set: what a script needs
/// to find its tools and speak the operator's language. Never a credential.
pub const INHERITED: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
];

/// Used when lifeboat itself runs without a PATH (a bare container), so `run = ["curl",
/// …]` still finds curl.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Whether a variable may be passed through by name (`[commands] pass_env`). The
/// policy loader refuses the others with a diagnostic; this is the second line.
pub fn passable(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with("AWS_")
        && !name.starts_with("LIFEBOAT_")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A program to run and what it sees.
#[derive(Clone, Debug)]
pub struct Program<'a> {
    /// The program and its arguments.
    pub run: &'a [String],
    /// Variables lifeboat sets for it (`LIFEBOAT_PROBE`, `LIFEBOAT_RUN_ID`, …).
    pub vars: Vec<(&'static str, String)>,
    /// Variables passed through from lifeboat's environment by name.
    pub pass: &'a [String],
}

/// How the program ended and the tail of what it wrote.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Bytes dropped from the front of stdout and stderr to stay within `OUTPUT_CAP`.
    pub dropped: u64,
}

#[derive(Debug, Error)]
pub enum SpawnError {
    #[error("nothing to run")]
    Empty,
    #[error("could not start {program}: {source}")]
    Start {
        program: String,
        source: std::io::Error,
    },
    #[error("could not wait for {program}: {source}")]
    Wait {
        program: String,
        source: std::io::Error,
    },
}

/// The environment a program gets: the allow-list, then what the policy passes, then
/// lifeboat's own variables (which win).
pub fn environment(p: &Program<'_>) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(n) = name.to_str() else { continue };
        let inherited = INHERITED.contains(&n) || n.starts_with("LC_");
        let passed = p.pass.iter().any(|x| x == n) && passable(n);
        if inherited || passed {
            env.push((name, value));
        }
    }
    if !env.iter().any(|(n, _)| n == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    for (name, value) in &p.vars {
        env.retain(|(n, _)| n != name);
        env.push(((*name).into(), value.into()));
    }
    env
}

/// Runs the program to its end. The caller bounds it (a probe's timeout, a step's
/// deadline) by dropping this future: the whole process group is then killed.
///
/// Guarantees: nothing the program started outlives a dropped call; at most
/// `OUTPUT_CAP` bytes of each stream are held, however much it writes (the rest is
/// read and discarded, so the program never blocks on a full pipe).
/// Errors: an empty command line; a program that cannot be started or waited for.
pub async fn run(p: &Program<'_>) -> Result<Finished, SpawnError> {
    let Some((program, args)) = p.run.split_first() else {
        return Err(SpawnError::Empty);
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(environment(p))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| SpawnError::Start {
            program: program.clone(),
            source,
        })?;
    // Armed until the program has exited by itself: if this future is dropped first,
    // the group is killed, children included.
    let guard = child.id().map(GroupKill);
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (out, err, status) = tokio::join!(tail(stdout), tail(stderr), child.wait());
    let status = status.map_err(|source| SpawnError::Wait {
        program: program.clone(),
        source,
    })?;
    if let Some(g) = guard {
        std::mem::forget(g);
    }
    Ok(Finished {
        status,
        stdout: String::from_utf8_lossy(&out.0).into_owned(),
        stderr: String::from_utf8_lossy(&err.0).into_owned(),
        dropped: out.1 + err.1,
    })
}

/// Reads a stream to its end, keeping its last `OUTPUT_CAP` bytes; returns them and
/// how many were dropped.
async fn tail(stream: Option<impl AsyncRead + Unpin>) -> (Vec<u8>, u64) {
    let Some(mut stream) = stream else {
        return (Vec::new(), 0);
    };
    let mut kept = Vec::new();
    let mut dropped = 0u64;
    let mut chunk = vec![0u8; 8192];
    // A read error ends the capture; the exit status still says how the program ended.
    while let Ok(n) = stream.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&chunk[..n]);
        if kept.len() > OUTPUT_CAP {
            let excess = kept.len() - OUTPUT_CAP;
            kept.drain(..excess);
            dropped = dropped.saturating_add(excess as u64);
        }
    }
    (kept, dropped)
}

/// Kills a process group when dropped.
struct GroupKill(u32);

impl Drop for GroupKill {
    fn drop(&mut self) {
        let pid = i32::try_from(self.0)
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            // ESRCH (already gone) is the expected failure and needs no handling.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_outside_lifeboat_and_aws_may_be_passed_through() {
        assert!(passable("KUBECONFIG"));
        assert!(!passable("AWS_SECRET_ACCESS_KEY"));
        assert!(!passable("LIFEBOAT_API_TOKEN"));
        assert!(!passable("A=B"));
        assert!(!passable(""));
    }

    #[tokio::test]
    async fn output_beyond_the_cap_is_read_and_dropped_keeping_the_end() {
        let run: Vec<String> = [
            "sh",
            "-c",
            "head -c 1000000 /dev/zero | tr '\\0' x; echo; echo the-end",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let done = super::run(&Program {
            run: &run,
            vars: vec![],
            pass: &[],
        })
        .await
        .expect("run");
        assert!(done.status.success());
        assert!(done.stdout.len() <= OUTPUT_CAP);
        assert!(done.stdout.ends_with("the-end\n"), "keeps the tail");
        assert!(done.dropped >= 1_000_000 - OUTPUT_CAP as u64);
    }
}
