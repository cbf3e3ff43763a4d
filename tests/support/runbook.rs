//! Fakes shared by the runbook, CLI and crash tests: a target that records every call and
//! every effect, scriptable per step, and the plans and executors the tests run.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lifeboat::action::approval::Gate;
use lifeboat::clock::WallClock;
use lifeboat::core::binding::Binding;
use lifeboat::core::ids::{Epoch, RunId};
use lifeboat::core::model::Direction;
use lifeboat::core::plan::{self, Plan, PlanRequest, PlannedStep};
use lifeboat::core::reason::{Notice, Trigger};
use lifeboat::core::time::Ts;
use lifeboat::journal::Journal;
use lifeboat::runbook::{Applied, Check, Executor, Step, StepCtx, StepError, StepFactory, Verify};
use tokio::sync::Notify;

/// 2026-11-23T12:34:56Z: tests' wall clock starts here.
pub const T0: u64 = 1_795_437_296_000;

/// The failover plan of a policy under `policies/`.
pub fn plan(policy: &str, run_id: &str) -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies")
        .join(policy);
    let (policy, _) = lifeboat::policy::load_valid(&path).expect("the policy is valid");
    plan::build(
        &policy,
        PlanRequest {
            direction: Direction::Failover,
            from: policy.regions.primary.clone(),
            to: policy.regions.secondaries[0].clone(),
            run_id: RunId(run_id.to_string()),
            epoch: Epoch(0),
            trigger: Trigger::Operator {
                by: "test".to_string(),
                note: "primary region down: 3 failed rounds of db".to_string(),
            },
            allow_data_loss: false,
        },
    )
    .expect("the failover plans")
}

/// The sandbox failover: six steps in five stages, `scale-up-workers` and `flush-cache`
/// in parallel, `tell-ops` allowed to fail.
pub fn sandbox_plan(run_id: &str) -> Plan {
    plan("sandbox.toml", run_id)
}

thread_local! {
    /// When this test's clock reads `T0`: the first time a clock is asked for. Each test
    /// runs on its own thread, so every executor of one test shares one timeline.
    static ORIGIN: tokio::time::Instant = tokio::time::Instant::now();
}

/// Wall-clock time that follows tokio's clock, so a paused test journals exact times.
pub fn tokio_clock() -> WallClock {
    let origin = ORIGIN.with(|o| *o);
    WallClock::from_fn(move || Ts(T0 + origin.elapsed().as_millis() as u64))
}

pub const SANDBOX_STEPS: [&str; 6] = [
    "fence-old-primary",
    "promote-standby",
    "move-dns",
    "scale-up-workers",
    "flush-cache",
    "tell-ops",
];

/// A journal in `dir`, created on first use.
pub fn journal(dir: &tempfile::TempDir) -> Arc<Journal> {
    Arc::new(Journal::open_or_create(&dir.path().join("journal.db")).expect("journal"))
}

/// `n` retryable errors saying `msg`.
pub fn retryable(n: usize, msg: &str) -> VecDeque<StepError> {
    (0..n).map(|_| StepError::retryable(msg)).collect()
}

/// Lets spawned tasks run until `cond` holds. Waiting in small sleeps (not busy
/// yielding) leaves the runtime idle, which is what lets the paused clock advance.
pub async fn until(cond: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("condition never held within 1000 virtual seconds");
}

pub fn executor(journal: Arc<Journal>, target: &Arc<Target>, actor: &str) -> Executor {
    Executor::new(journal, Arc::new(Factory(target.clone())))
        .clock(tokio_clock())
        .actor(actor)
}

/// Where effects are recorded: in memory, or one line per effect in a file (which
/// survives the process being killed).
enum EffectLog {
    Memory(Mutex<Vec<String>>),
    File(PathBuf),
}

/// How one step's fake behaves; everything defaults to "works at once".
#[derive(Default)]
pub struct Behaviour {
    /// Returned by the first `check` calls, in order.
    pub check_errors: VecDeque<StepError>,
    /// Returned by the first `apply` calls, in order; the effect is not applied.
    pub apply_errors: VecDeque<StepError>,
    /// `verify` answers `NotYet` this many times before `Done`.
    pub verify_not_yet: u32,
    /// Returned by `verify` instead of an observation.
    pub verify_error: Option<StepError>,
    /// An RPO gate: `apply` asks for approval unless the run accepts data loss.
    pub rpo_gate: bool,
    /// `apply` applies the effect, then waits here (to be abandoned mid-call).
    pub hang_after_apply: Option<Arc<Notify>>,
    /// `check` waits here before looking.
    pub hold_check: Option<Arc<Notify>>,
    /// `verify` never observes the effect.
    pub verify_never: bool,
    /// The factory cannot build the step.
    pub build_error: Option<StepError>,
    /// `apply` reports this notice with its result.
    pub notice: Option<Notice>,
}

/// A test target: the effect of step `name` is the record "name"; `check` looks for it,
/// `apply` adds it, `verify` sees it. Every call is counted.
pub struct Target {
    log: EffectLog,
    behaviour: Mutex<HashMap<String, Behaviour>>,
    calls: Mutex<Vec<(String, &'static str)>>,
    contexts: Mutex<HashMap<String, StepCtx>>,
}

impl Target {
    pub fn in_memory() -> Arc<Target> {
        Arc::new(Target::new(EffectLog::Memory(Mutex::default())))
    }

    pub fn in_file(path: &Path) -> Arc<Target> {
        Arc::new(Target::new(EffectLog::File(path.to_path_buf())))
    }

    fn new(log: EffectLog) -> Target {
        Target {
            log,
            behaviour: Mutex::default(),
            calls: Mutex::default(),
            contexts: Mutex::default(),
        }
    }

    /// Scripts the behaviour of one step.
    pub fn script(&self, step: &str, b: Behaviour) {
        self.behaviour
            .lock()
            .expect("lock")
            .insert(step.to_string(), b);
    }

    /// Scripts `step` to apply its effect and then hang (a controller lost in the middle
    /// of the side effect) until the returned `Notify` wakes it.
    pub fn hang_after_apply(&self, step: &str) -> Arc<Notify> {
        let hang = Arc::new(Notify::new());
        self.script(
            step,
            Behaviour {
                hang_after_apply: Some(hang.clone()),
                ..Behaviour::default()
            },
        );
        hang
    }

    /// Panics unless every sandbox step's effect was applied exactly once (`context`
    /// says when, in the message).
    pub fn assert_each_effect_once(&self, context: &str) {
        for s in SANDBOX_STEPS {
            assert_eq!(
                self.effect_counts().get(s),
                Some(&1),
                "{context}: {s} once: {:?}",
                self.effects()
            );
        }
    }

    /// Every effect applied, in order.
    pub fn effects(&self) -> Vec<String> {
        match &self.log {
            EffectLog::Memory(m) => m.lock().expect("lock").clone(),
            EffectLog::File(p) => match std::fs::read_to_string(p) {
                Ok(s) => s.lines().map(str::to_string).collect(),
                Err(_) => Vec::new(),
            },
        }
    }

    /// How many times each step's effect was applied.
    pub fn effect_counts(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for e in self.effects() {
            *out.entry(e).or_default() += 1;
        }
        out
    }

    /// How many times `phase` was called for `step`.
    pub fn calls(&self, step: &str, phase: &str) -> usize {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|(s, p)| s == step && *p == phase)
            .count()
    }

    /// The context of the latest call to `step`.
    pub fn last_ctx(&self, step: &str) -> Option<StepCtx> {
        self.contexts.lock().expect("lock").get(step).cloned()
    }

    fn applied(&self, step: &str) -> bool {
        self.effects().iter().any(|e| e == step)
    }

    fn apply_effect(&self, step: &str) {
        match &self.log {
            EffectLog::Memory(m) => m.lock().expect("lock").push(step.to_string()),
            EffectLog::File(p) => {
                // One write of one short line with O_APPEND: atomic, even with the
                // parallel steps of a stage appending at the same time.
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .expect("open effects file");
                f.write_all(format!("{step}\n").as_bytes())
                    .expect("append effect");
                f.sync_all().expect("sync effect");
            }
        }
    }

    fn record(&self, ctx: &StepCtx, phase: &'static str) {
        self.calls
            .lock()
            .expect("lock")
            .push((ctx.step.clone(), phase));
        self.contexts
            .lock()
            .expect("lock")
            .insert(ctx.step.clone(), ctx.clone());
    }

    fn with<T>(&self, step: &str, f: impl FnOnce(&mut Behaviour) -> T) -> T {
        let mut all = self.behaviour.lock().expect("lock");
        f(all.entry(step.to_string()).or_default())
    }
}

/// Builds fake steps bound to a target.
pub struct Factory(pub Arc<Target>);

impl StepFactory for Factory {
    fn build(&self, _plan: &Plan, step: &PlannedStep) -> Result<Arc<dyn Step>, StepError> {
        if let Some(e) = self.0.with(&step.name, |b| b.build_error.clone()) {
            return Err(e);
        }
        // A gate is the real one: it has no effect to fake.
        if let Binding::ManualApproval { prompt } = &step.binding {
            return Ok(Arc::new(Gate::new(prompt.clone())));
        }
        Ok(Arc::new(FakeStep {
            target: self.0.clone(),
        }))
    }
}

struct FakeStep {
    target: Arc<Target>,
}

#[async_trait]
impl Step for FakeStep {
    async fn check(&self, ctx: &StepCtx) -> Result<Check, StepError> {
        let t = &self.target;
        t.record(ctx, "check");
        if let Some(n) = t.with(&ctx.step, |b| b.hold_check.clone()) {
            n.notified().await;
        }
        if let Some(e) = t.with(&ctx.step, |b| b.check_errors.pop_front()) {
            return Err(e);
        }
        Ok(if t.applied(&ctx.step) {
            Check::Done(format!("{} found", ctx.step))
        } else {
            Check::NotDone(format!("{} absent", ctx.step))
        })
    }

    async fn apply(&self, ctx: &StepCtx) -> Result<Applied, StepError> {
        let t = &self.target;
        t.record(ctx, "apply");
        if let Some(e) = t.with(&ctx.step, |b| b.apply_errors.pop_front()) {
            return Err(e);
        }
        if t.with(&ctx.step, |b| b.rpo_gate) && !ctx.allow_data_loss {
            return Err(StepError::needs_approval(format!(
                "replica lag 42s on {} exceeds the RPO budget {}s: re-run with --allow-data-loss to accept",
                ctx.region,
                ctx.rpo_budget.as_secs()
            )));
        }
        t.apply_effect(&ctx.step);
        if let Some(n) = t.with(&ctx.step, |b| b.hang_after_apply.clone()) {
            n.notified().await;
        }
        let applied = Applied::new(format!("{} applied at epoch {}", ctx.step, ctx.epoch));
        Ok(match t.with(&ctx.step, |b| b.notice.clone()) {
            Some(n) => applied.with_notice(n),
            None => applied,
        })
    }

    async fn verify(&self, ctx: &StepCtx) -> Result<Verify, StepError> {
        let t = &self.target;
        t.record(ctx, "verify");
        if let Some(e) = t.with(&ctx.step, |b| b.verify_error.clone()) {
            return Err(e);
        }
        let not_yet = t.with(&ctx.step, |b| {
            if b.verify_never {
                return true;
            }
            let wait = b.verify_not_yet > 0;
            b.verify_not_yet = b.verify_not_yet.saturating_sub(1);
            wait
        });
        Ok(if not_yet || !t.applied(&ctx.step) {
            Verify::NotYet(format!("{} not visible yet", ctx.step))
        } else {
            Verify::Done(format!("{} visible", ctx.step))
        })
    }

    async fn compensate(&self, ctx: &StepCtx) -> Result<(), StepError> {
        self.target.record(ctx, "compensate");
        Ok(())
    }
}
