//! `command` probes: run a program; exit status 0 is healthy. It runs in its own process
//! group, and the whole group is killed when the round times out or is cancelled, so a
//! hung check (or a `curl` it started) cannot pile up behind the next round.

use async_trait::async_trait;

use super::{Facts, Failure, Probe, snippet};

pub struct CommandProbe {
    run: Vec<String>,
    probe: String,
    region: String,
}

impl CommandProbe {
    /// `run` is the program and its arguments (never empty in a valid policy). The
    /// program sees `LIFEBOAT_PROBE` and `LIFEBOAT_REGION`.
    pub fn new(run: Vec<String>, probe: &str, region: &str) -> CommandProbe {
        CommandProbe {
            run,
            probe: probe.to_string(),
            region: region.to_string(),
        }
    }
}

#[async_trait]
impl Probe for CommandProbe {
    fn endpoint(&self) -> String {
        format!("command `{}`", self.run.join(" "))
    }

    async fn check(&self) -> Result<Facts, Failure> {
        let Some((program, args)) = self.run.split_first() else {
            return Err(Failure::new("nothing to run"));
        };
        let child = tokio::process::Command::new(program)
            .args(args)
            .env("LIFEBOAT_PROBE", &self.probe)
            .env("LIFEBOAT_REGION", &self.region)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Failure::new(format!("could not start {program}: {e}")))?;
        // Armed until the program has exited by itself: if this future is dropped first
        // (the round timed out, or the scheduler stopped), the group is killed.
        let guard = child.id().map(GroupKill);
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| Failure::new(format!("could not wait for {program}: {e}")))?;
        if let Some(g) = guard {
            std::mem::forget(g);
        }
        let said = |bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            let last = text.lines().rev().find(|l| !l.trim().is_empty());
            last.map(|l| snippet(l, 160))
        };
        let message = said(&out.stderr).or_else(|| said(&out.stdout));
        if out.status.success() {
            return Ok(Facts::detail(match message {
                Some(m) => format!("exit status 0: {m}"),
                None => "exit status 0".to_string(),
            }));
        }
        let status = match out.status.code() {
            Some(code) => format!("exit status {code}"),
            None => format!("{}", out.status),
        };
        Err(Failure::new(match message {
            Some(m) => format!("{status}: {m}"),
            None => status,
        }))
    }
}

/// Kills a process group when dropped (the `command` step uses it too).
pub(crate) struct GroupKill(pub u32);

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
