//! Live progress of a run for the operator: a spinner per step with its phase, attempt
//! and elapsed time on a terminal; plain timestamped lines otherwise (logs, CI, pipes).
//! Fed either by the executor in this process or by polling a daemon's run view.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::core::step::StepState;
use crate::journal::RunDetail;
use crate::runbook::{Progress, ProgressKind};

/// One thing that happened to a step, from either source.
#[derive(Clone, Debug)]
pub struct Update {
    pub step: String,
    pub phase: String,
    pub attempt: u32,
    pub done: Option<bool>,
    pub message: String,
}

pub struct Renderer {
    start: Instant,
    fancy: Option<MultiProgress>,
    bars: BTreeMap<String, ProgressBar>,
    /// The last state seen per step when polling a daemon.
    seen: BTreeMap<String, (StepState, usize)>,
}

impl Renderer {
    pub fn new() -> Renderer {
        let fancy = (std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .then(MultiProgress::new);
        Renderer {
            start: Instant::now(),
            fancy,
            bars: BTreeMap::new(),
            seen: BTreeMap::new(),
        }
    }

    fn bar(&mut self, step: &str) -> Option<&ProgressBar> {
        let multi = self.fancy.as_ref()?;
        if !self.bars.contains_key(step) {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {prefix:<24} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(step.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            self.bars.insert(step.to_string(), bar);
        }
        self.bars.get(step)
    }

    pub fn show(&mut self, u: Update) {
        let attempt = if u.attempt > 1 {
            format!(" (attempt {})", u.attempt)
        } else {
            String::new()
        };
        let line = format!("{}{attempt}: {}", u.phase, u.message);
        let elapsed = self.start.elapsed();
        if self.fancy.is_some() {
            let done = u.done;
            if let Some(bar) = self.bar(&u.step) {
                match done {
                    Some(true) => bar.finish_with_message(format!("✓ {line}")),
                    Some(false) => bar.finish_with_message(format!("✗ {line}")),
                    None => bar.set_message(line),
                }
            }
        } else {
            eprintln!("[+{:>7.3}s] {}: {line}", elapsed.as_secs_f64(), u.step);
        }
    }

    /// A line about the run as a whole.
    pub fn note(&self, message: &str) {
        match &self.fancy {
            Some(m) => {
                let _ = m.println(format!("  {message}"));
            }
            None => eprintln!("[+{:>7.3}s] {message}", self.start.elapsed().as_secs_f64()),
        }
    }

    /// From the executor in this process.
    pub fn progress(&mut self, p: &Progress) {
        let Some(step) = &p.step else {
            self.note(&p.message);
            return;
        };
        let (phase, done) = match p.kind {
            ProgressKind::StepStarted => ("started", None),
            ProgressKind::Checked => ("checked", None),
            ProgressKind::Applying => ("applying", None),
            ProgressKind::Retrying => ("retrying", None),
            ProgressKind::Applied => ("applied", None),
            ProgressKind::Verifying => ("verifying", None),
            ProgressKind::Verified => ("verified", Some(true)),
            ProgressKind::Skipped => ("already in place", Some(true)),
            ProgressKind::StepFailed => ("failed", Some(false)),
            ProgressKind::AwaitingApproval => ("waiting for approval", Some(false)),
            _ => ("", None),
        };
        self.show(Update {
            step: step.clone(),
            phase: phase.to_string(),
            attempt: p.attempt,
            done,
            message: p.message.clone(),
        });
    }

    /// From a daemon's run view: reports what changed since the last poll.
    pub fn poll(&mut self, detail: &RunDetail) {
        for s in &detail.steps {
            let attempts = s.attempts.len();
            let changed = self
                .seen
                .get(&s.name)
                .is_none_or(|(st, n)| *st != s.state || *n != attempts);
            if !changed || s.state == StepState::Planned {
                continue;
            }
            self.seen.insert(s.name.clone(), (s.state, attempts));
            let done = match s.state {
                StepState::Verified | StepState::Skipped => Some(true),
                StepState::Failed | StepState::AwaitingApproval => Some(false),
                _ => None,
            };
            self.show(Update {
                step: s.name.clone(),
                phase: s.state.to_string(),
                attempt: s.apply_attempts(),
                done,
                message: s.detail.clone().unwrap_or_default(),
            });
        }
    }
}

impl Default for Renderer {
    fn default() -> Self {
        Renderer::new()
    }
}
