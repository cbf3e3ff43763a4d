//! Golden tests of the controller: scripted inputs at explicit times in, a printed trace
//! out, compared with an inline snapshot (refresh with `UPDATE_EXPECT=1`). Each scenario
//! reads as a story: what the probes said, what the controller decided and why.

use std::fmt::Write as _;
use std::time::Duration;

use expect_test::Expect;

use super::*;
use crate::core::ids::{Epoch, RunId};
use crate::core::model::{Policy, RegionName};
use crate::core::testkit;
use crate::core::time::Ts;

pub(super) struct Sim {
    pub(super) policy: Policy,
    pub(super) state: State,
    pub(super) trace: String,
    runs: u32,
}

pub(super) fn r(name: &str) -> RegionName {
    RegionName::new(name)
}

impl Sim {
    pub(super) fn new() -> Sim {
        Sim::with(|_| {})
    }

    pub(super) fn with(edit: impl FnOnce(&mut Policy)) -> Sim {
        let mut policy = testkit::policy(vec![]);
        edit(&mut policy);
        let state = State::new(&policy, policy.regions.primary.clone(), Ts(0));
        Sim {
            policy,
            state,
            trace: String::new(),
            runs: 0,
        }
    }

    pub(super) fn feed(&mut self, t: u64, label: &str, input: Input) -> &mut Sim {
        let (next, commands) = step(&self.policy, &self.state, input, Ts::from_secs(t));
        self.state = next;
        let _ = write!(
            self.trace,
            "t={t:<5} {label:<34} → {}",
            self.state.display_name()
        );
        if let Phase::Blocked { hold, .. } = &self.state.phase {
            let _ = write!(self.trace, " [{}]", hold.label());
        }
        self.trace.push('\n');
        for c in commands {
            let line = match c {
                Command::StartRun(req) => format!(
                    "START {} {}→{}{}{}",
                    req.direction,
                    req.from,
                    req.to,
                    if req.automatic() { " auto" } else { " manual" },
                    if req.allow_data_loss {
                        " allow-data-loss"
                    } else {
                        ""
                    }
                ),
                Command::Alert(d) => format!("ALERT {}", d.summary),
                Command::Record(d) => format!("RECORD {}: {}", d.summary, d.reason),
                Command::Refuse(reason) => format!("REFUSE {reason}"),
            };
            let _ = writeln!(self.trace, "          {line}");
        }
        self
    }

    /// `east=down west=ok eu=ok lag=2s isolated votes=1 synced healthy_since=T`
    pub(super) fn health(&mut self, t: u64, spec: &str) -> &mut Sim {
        let mut snap = HealthSummary {
            regions: vec![],
            observers: vec![ObserverVote {
                observer: "this controller".into(),
                sees_down: true,
            }],
        };
        let (mut lag, mut synced, mut since, mut isolated) = (None, None, Some(Ts(0)), false);
        for tok in spec.split_whitespace() {
            match tok.split_once('=') {
                Some(("lag", v)) => {
                    lag = Some(Duration::from_secs(
                        v.trim_end_matches('s').parse().expect("lag"),
                    ))
                }
                Some(("votes", v)) => {
                    let n: usize = v.parse().expect("votes");
                    snap.observers = (0..n.max(1))
                        .map(|i| ObserverVote {
                            observer: format!("observer {i}"),
                            sees_down: i < n,
                        })
                        .collect();
                }
                Some(("healthy_since", v)) => since = Some(Ts::from_secs(v.parse().expect("time"))),
                Some((region, v)) => {
                    let verdict = match v {
                        "ok" => Verdict::Healthy,
                        "down" => Verdict::Down {
                            since: Ts::from_secs(t),
                        },
                        "suspect" => Verdict::Suspect { failures: 1 },
                        "recovering" => Verdict::Recovering { successes: 1 },
                        "unknown" => Verdict::Unknown,
                        other => panic!("unknown verdict {other}"),
                    };
                    snap.regions.push(RegionSummary {
                        region: r(region),
                        verdict,
                        healthy_since: matches!(verdict, Verdict::Healthy)
                            .then_some(since)
                            .flatten(),
                        replica_lag: None,
                        in_sync: None,
                        failing: Vec::new(),
                    });
                }
                None if tok == "isolated" => isolated = true,
                None if tok == "synced" || tok == "unsynced" => synced = Some(tok == "synced"),
                None => panic!("unknown token {tok}"),
            }
        }
        if isolated {
            // The tracker reports isolation on every serving region at once.
            for h in &mut snap.regions {
                h.verdict = Verdict::ObserverIsolated {
                    since: Ts::from_secs(t),
                };
            }
        }
        // Lag and sync describe the secondaries' replicas (failover) or the primary's
        // (failback), whichever is the replica now.
        let active = self.state.active.clone();
        for h in &mut snap.regions {
            if h.region != active {
                h.replica_lag = lag;
                h.in_sync = synced;
            }
        }
        self.feed(t, &format!("health {spec}"), Input::Health(snap))
    }

    pub(super) fn tick(&mut self, t: u64, wall: u64, mono: u64) -> &mut Sim {
        self.feed(
            t,
            &format!("tick wall={wall}s mono={mono}s"),
            Input::Tick(ClockReading {
                wall: Ts::from_secs(wall),
                mono_ms: mono * 1000,
            }),
        )
    }

    /// The journal accepted the run the controller asked for.
    pub(super) fn started(&mut self, t: u64) -> &mut Sim {
        let Phase::Starting { request, .. } = &self.state.phase else {
            panic!("no run requested: {:?}", self.state.phase)
        };
        self.runs += 1;
        let input = Input::RunStarted {
            run: RunId(format!("r{}", self.runs)),
            epoch: Epoch(u64::from(self.runs)),
            direction: request.direction,
            to: request.to.clone(),
        };
        self.feed(t, &format!("run r{} started", self.runs), input)
    }

    pub(super) fn finished(&mut self, t: u64, end: RunEnd) -> &mut Sim {
        let run = RunId(format!("r{}", self.runs));
        self.feed(
            t,
            &format!("run {run} {end:?}"),
            Input::RunFinished { run, end },
        )
    }

    pub(super) fn op(&mut self, t: u64, label: &str, cmd: OperatorCommand) -> &mut Sim {
        self.feed(t, label, Input::Operator(cmd))
    }

    pub(super) fn check(&self, expected: Expect) {
        expected.assert_eq(&self.trace);
    }
}

pub(super) fn failover(to: Option<&str>, allow_data_loss: bool) -> OperatorCommand {
    OperatorCommand::Failover {
        to: to.map(r),
        allow_data_loss,
        by: "alice".into(),
        note: String::new(),
    }
}

mod guardrails;
mod lifecycle;
mod restore;
