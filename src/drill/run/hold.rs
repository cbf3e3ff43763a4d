//! Drills where the controller must hold still: no failover, whatever it saw, and the
//! evidence of why (the controller's own decision, the status an operator reads, the
//! data). A failover that happens anyway is reported as what it is, an unexpected
//! failover, with the writes it really lost.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{Daemon, Origin, new_run, now, secs_since, until, wait_run_end};
use crate::core::controller::Phase;
use crate::core::model::Direction;

use crate::drill::accounting;
use crate::drill::observe::WriteLog;
use crate::drill::report::{Assertion, Mark, Report};
use crate::drill::scenario::Expect;
use crate::sandbox::world::{PRIMARY, World};

/// What a no-failover drill checks, and with what.
pub(super) struct Held<'a> {
    pub expect: &'a Expect,
    /// The lifeboat binary, for `lifeboat status` as an operator runs it.
    pub bin: &'a Path,
    pub policy: &'a Path,
    pub world: &'a World,
    pub daemon: &'a Daemon,
    pub writes: &'a WriteLog,
    pub origin: Origin,
}

impl Held<'_> {
    pub async fn check(&self, report: &mut Report) -> anyhow::Result<()> {
        let e = self.expect;
        if e.frozen {
            self.froze(report).await;
        }
        tokio::time::sleep(e.watch_for).await;
        let serving = self.no_failover(report).await;
        if let Some(reason) = &e.blocked {
            self.holds_for(report, reason).await;
        }
        if !e.status_says.is_empty() {
            self.status_says(report);
        }
        let snapshot = self
            .writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let loss = accounting::lost(self.world, &serving, &snapshot).await;
        report.figures.lost_writes = loss.as_ref().ok().map(accounting::Loss::total);
        if let Some(max) = e.max_lost_writes {
            report.checks.push(Assertion {
                what: format!("at most {max} acknowledged writes lost"),
                passed: loss.as_ref().is_ok_and(|l| l.total() <= max),
                detail: match &loss {
                    Ok(l) => l.to_string(),
                    Err(err) => format!("could not count them ({serving} did not answer: {err:#})"),
                },
            });
        }
        Ok(())
    }

    /// The controller noticed it had been stopped (or its clock jumped) and froze its
    /// automatic decisions.
    async fn froze(&self, report: &mut Report) {
        let v = until(
            self.daemon,
            Duration::from_secs(10),
            "a freeze of automatic decisions",
            |v| v.frozen_until.is_some(),
        )
        .await;
        report.checks.push(Assertion {
            what: "freezes automatic decisions when it wakes".into(),
            passed: v.is_ok(),
            detail: match &v {
                Ok(v) => v
                    .last_decision
                    .as_ref()
                    .map(|d| format!("{}: {}", d.summary, d.reason))
                    .unwrap_or_else(|| "frozen".into()),
                Err(err) => format!("{err:#}"),
            },
        });
    }

    /// Checks that no failover started; returns the region serving now (where an
    /// unexpected failover moved the service, if one did).
    async fn no_failover(&self, report: &mut Report) -> String {
        let d = self.daemon;
        let from = self.origin.first;
        let Some(run) = new_run(d, Direction::Failover, from).await else {
            let decided = d
                .status()
                .await
                .ok()
                .and_then(|v| v.last_decision)
                .map(|d| {
                    format!(
                        "; the controller's last decision: {} — {}",
                        d.summary, d.reason
                    )
                })
                .unwrap_or_default();
            report.checks.push(Assertion {
                what: format!(
                    "does not fail over (watched {}s)",
                    self.expect.watch_for.as_secs()
                ),
                passed: true,
                detail: format!("no failover started{decided}"),
            });
            return PRIMARY.to_string();
        };
        // It failed over anyway. Let the run end, so the figures and the loss are real.
        let ended = wait_run_end(d, Direction::Failover, from, Duration::from_secs(60)).await;
        let run = ended.unwrap_or(run);
        report.figures.unexpected_failover = true;
        report.figures.decision = Some(secs_since(run.created_at, from));
        report.figures.failover = run.finished_at.map(|f| secs_since(f, from));
        report.timeline.push(Mark {
            at: super::fault_offset(report) + secs_since(run.created_at, from),
            what: "UNEXPECTED failover".into(),
        });
        let serving = d
            .status()
            .await
            .map(|v| v.active.as_str().to_string())
            .unwrap_or_else(|_| run.to.as_str().to_string());
        report.checks.push(Assertion {
            what: format!("does not fail over (watched {}s)", self.expect.watch_for.as_secs()),
            passed: false,
            detail: format!(
                "UNEXPECTED FAILOVER: run {} to {} {} {:.2}s after the fault: {}; {serving} serves now",
                run.run_id,
                run.to,
                run.status,
                secs_since(run.created_at, from),
                run.reason
            ),
        });
        serving
    }

    async fn holds_for(&self, report: &mut Report, reason: &str) {
        let v = self.daemon.status().await;
        let holds = v.as_ref().is_ok_and(
            |v| matches!(&v.phase, Phase::Blocked { hold: r, .. } if r.label() == reason),
        );
        report.checks.push(Assertion {
            what: format!("holds for {reason}"),
            passed: holds,
            detail: match &v {
                Ok(v) => format!(
                    "state {}: {}",
                    v.state,
                    v.why.clone().unwrap_or_else(|| "no reason given".into())
                ),
                Err(err) => format!("the daemon did not answer: {err:#}"),
            },
        });
        report.timeline.push(Mark {
            at: super::fault_offset(report) + secs_since(now(), self.origin.first),
            what: format!("holding: {reason}"),
        });
    }

    /// What `lifeboat status` prints, as an operator would run it, must say why and what
    /// to do.
    fn status_says(&self, report: &mut Report) {
        let out = Command::new(self.bin)
            .arg("status")
            .arg("--policy")
            .arg(self.policy)
            .env("NO_COLOR", "1")
            .output();
        let text = out
            .as_ref()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        let lower = text.to_lowercase();
        let missing: Vec<&String> = self
            .expect
            .status_says
            .iter()
            .filter(|w| !lower.contains(&w.to_lowercase()))
            .collect();
        let said: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("why:") || l.starts_with("next:"))
            .collect();
        report.checks.push(Assertion {
            what: "lifeboat status says why and what to do".into(),
            passed: out.is_ok() && missing.is_empty(),
            detail: match (&out, missing.is_empty()) {
                (Err(err), _) => format!("could not run lifeboat status: {err}"),
                (Ok(_), true) => said.join(" / "),
                (Ok(_), false) => format!(
                    "missing {:?} in: {}",
                    missing,
                    if said.is_empty() {
                        text.trim().to_string()
                    } else {
                        said.join(" / ")
                    }
                ),
            },
        });
    }
}
