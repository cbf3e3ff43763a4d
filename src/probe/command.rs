//! `command` probes: run a program; exit status 0 is healthy. It runs through
//! `clients::subprocess`: its own process group, killed whole when the round times out
//! or is cancelled (so a hung check, or a `curl` it started, cannot pile up behind the
//! next round), an allow-listed environment, and bounded output.

use async_trait::async_trait;

use super::{Facts, Failure, Probe, snippet};
use crate::clients::subprocess::{self, Program};

pub struct CommandProbe {
    run: Vec<String>,
    probe: String,
    region: String,
    pass_env: Vec<String>,
}

impl CommandProbe {
    /// `run` is the program and its arguments (never empty in a valid policy). The
    /// program sees `LIFEBOAT_PROBE` and `LIFEBOAT_REGION`, the basic environment
    /// (`PATH`, `HOME`, the locale…) and the variables `pass_env` names; nothing else
    /// of lifeboat's.
    pub fn new(run: Vec<String>, probe: &str, region: &str, pass_env: Vec<String>) -> CommandProbe {
        CommandProbe {
            run,
            probe: probe.to_string(),
            region: region.to_string(),
            pass_env,
        }
    }
}

#[async_trait]
impl Probe for CommandProbe {
    fn endpoint(&self) -> String {
        format!("command `{}`", self.run.join(" "))
    }

    async fn check(&self) -> Result<Facts, Failure> {
        let out = subprocess::run(&Program {
            run: &self.run,
            vars: vec![
                ("LIFEBOAT_PROBE", self.probe.clone()),
                ("LIFEBOAT_REGION", self.region.clone()),
            ],
            pass: &self.pass_env,
        })
        .await
        .map_err(|e| Failure::new(e.to_string()))?;
        let said = |text: &str| {
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
