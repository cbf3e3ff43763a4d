//! One contract, both coordination backends. Each scenario below is written once against
//! [`Backend`] and run twice: on the embedded backend (one controller; the SQLite
//! journal's fencing epoch is the only fence, and a replacement is the same controller
//! restarted on its journal) and on etcd (a real 3-member cluster; each controller has
//! its own journal, and a replacement is another controller elected at a newer epoch
//! that finds the run in the shared record).
//!
//! The contract:
//! - a run completes with each step's effect applied once, and leaves nothing to resume;
//! - a controller lost in the middle of a side effect is replaced, and its replacement
//!   finishes the run without applying that effect again; the lost one, when it wakes,
//!   applies nothing more;
//! - a new run is not started while another is unfinished, and applies nothing; the
//!   unfinished one is still finished.
//!
//! The steps are the fake ones of tests/runbook.rs: the outside world they act on is the
//! point of other tests.

#[path = "support/etcd.rs"]
mod etcd_support;
mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lifeboat::coord::etcd::{Etcd, Leadership};
use lifeboat::coord::{EtcdAuthority, unfinished};
use lifeboat::journal::JournalError;
use lifeboat::runbook::{Executor, RunOutcome};
use lifeboat::sandbox::etcd::EtcdCluster;
use support::{Target, executor, journal, sandbox_plan};

/// How long any one call of a scenario may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// What a scenario needs of a coordination backend.
#[async_trait]
trait Backend: Send {
    /// `node` becomes the controller that acts for the service, and this is its
    /// executor. The controller that acted before is lost (its host gone), without
    /// being told: whatever it is in the middle of, it is still in the middle of.
    async fn acting(&mut self, node: &str, world: &Arc<Target>) -> Executor;

    /// With the acting controller's executor: finds the run a lost controller left
    /// unfinished and drives it as far as it goes (`None`: no run was left).
    async fn finish_left_run(&mut self, exec: &Executor) -> Option<RunOutcome>;

    /// Whether a run is left for the next acting controller to finish.
    async fn run_left(&self) -> bool;
}

/// One controller; its replacement is the same controller restarted on its journal.
struct Embedded {
    dir: tempfile::TempDir,
}

impl Embedded {
    async fn start() -> Embedded {
        Embedded {
            dir: support::tempdir(),
        }
    }
}

#[async_trait]
impl Backend for Embedded {
    async fn acting(&mut self, node: &str, world: &Arc<Target>) -> Executor {
        // Its own connection to the journal, as a restarted process has.
        executor(journal(&self.dir), world, node)
    }

    async fn finish_left_run(&mut self, exec: &Executor) -> Option<RunOutcome> {
        exec.resume_unfinished(&sandbox_plan("any").service)
            .await
            .expect("resume from the journal")
            .map(|(_, outcome)| outcome)
    }

    async fn run_left(&self) -> bool {
        !journal(&self.dir)
            .unfinished(&sandbox_plan("any").service)
            .expect("read the journal")
            .is_empty()
    }
}

/// Controllers on a real 3-member etcd cluster, each with its own journal.
struct OnEtcd {
    cluster: EtcdCluster,
    /// The cluster's data, then each controller's journal.
    dirs: Vec<tempfile::TempDir>,
    /// The acting controller: its client and leadership.
    leader: Option<(Etcd, Leadership)>,
}

impl OnEtcd {
    async fn start() -> OnEtcd {
        let dir = etcd_support::tempdir();
        let cluster = etcd_support::cluster(dir.path()).await;
        OnEtcd {
            cluster,
            dirs: vec![dir],
            leader: None,
        }
    }

    fn etcd(&self) -> &Etcd {
        &self.leader.as_ref().expect("a controller acts").0
    }
}

#[async_trait]
impl Backend for OnEtcd {
    async fn acting(&mut self, node: &str, world: &Arc<Target>) -> Executor {
        let mut before = None;
        if let Some((etcd, lost)) = self.leader.take() {
            // Its lease goes, as when its host dies.
            lost.session()
                .revoke(&etcd)
                .await
                .expect("revoke the lease");
            before = Some(lost.epoch());
        }
        let etcd = etcd_support::connect(etcd_support::settings(self.cluster.endpoints())).await;
        let leadership = etcd_support::lead(
            &etcd,
            &etcd_support::candidate(node, "us-west-2"),
            Duration::from_secs(10),
        )
        .await;
        if let Some(before) = before {
            assert!(leadership.epoch() > before, "a new leader, a newer epoch");
        }
        let dir = etcd_support::tempdir();
        let exec = executor(journal(&dir), world, node)
            .authority(Arc::new(EtcdAuthority::new(leadership.clone(), node)));
        self.dirs.push(dir);
        self.leader = Some((etcd, leadership));
        exec
    }

    async fn finish_left_run(&mut self, exec: &Executor) -> Option<RunOutcome> {
        let (etcd, leadership) = self.leader.as_ref().expect("a controller acts");
        let left = unfinished(etcd, leadership.service())
            .await
            .expect("read the shared record")?;
        let from = format!("{} (epoch {})", left.intent.node, left.intent.epoch);
        Some(
            exec.adopt(
                left.intent.plan.clone(),
                &left.intent.started_by,
                left.intent.started_at,
                &left.ended_steps(),
                &from,
            )
            .await
            .expect("adopt the run"),
        )
    }

    async fn run_left(&self) -> bool {
        let (_, leadership) = self.leader.as_ref().expect("a controller acts");
        unfinished(self.etcd(), leadership.service())
            .await
            .expect("read the shared record")
            .is_some()
    }
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not end within {PATIENCE:?}"))
}

async fn a_run_completes_with_each_effect_once_and_leaves_nothing_to_resume(
    mut b: impl Backend,
    name: &str,
) {
    let world = Target::in_memory();
    let exec = b.acting("ctl-a", &world).await;
    let out = within("the run", exec.start(sandbox_plan("r1"), "test"))
        .await
        .expect("journal");
    assert_eq!(out, RunOutcome::Completed, "{name}");
    world.assert_each_effect_once(name);
    assert!(
        !b.run_left().await,
        "{name}: a completed run is not resumed"
    );
    let next = b.acting("ctl-b", &world).await;
    assert_eq!(within("the resume", b.finish_left_run(&next)).await, None);
    world.assert_each_effect_once(name);
}

async fn a_controller_lost_mid_effect_is_replaced_and_the_effect_is_not_applied_again(
    mut b: impl Backend,
    name: &str,
) {
    let world = Target::in_memory();
    let hang = world.hang_after_apply("promote-standby");
    let a = b.acting("ctl-a", &world).await;
    let lost = tokio::spawn(async move { a.start(sandbox_plan("r1"), "test").await });
    support::until(|| world.effects().contains(&"promote-standby".to_string())).await;
    assert!(b.run_left().await, "{name}: the run is left unfinished");

    let next = b.acting("ctl-b", &world).await;
    let out = within("the takeover", b.finish_left_run(&next)).await;
    assert_eq!(out, Some(RunOutcome::Completed), "{name}");
    world.assert_each_effect_once(name);
    assert_eq!(
        world.calls("promote-standby", "apply"),
        1,
        "{name}: the replacement checked the promotion and found it done"
    );
    assert_eq!(
        world.calls("fence-old-primary", "apply"),
        1,
        "{name}: a step ended before the loss is not applied again"
    );

    // The lost controller wakes in the middle of its promotion: it is refused at its
    // next record and applies nothing more.
    hang.notify_one();
    let woke = within("the lost controller", lost)
        .await
        .expect("join")
        .expect("journal");
    assert!(
        matches!(woke, RunOutcome::Superseded(_) | RunOutcome::Interrupted),
        "{name}: {woke:?}"
    );
    world.assert_each_effect_once(name);
    assert!(!b.run_left().await, "{name}: the run ended");
}

async fn a_new_run_is_not_started_while_another_is_unfinished(mut b: impl Backend, name: &str) {
    let world = Target::in_memory();
    let hang = world.hang_after_apply("move-dns");
    let a = b.acting("ctl-a", &world).await;
    let lost = tokio::spawn(async move { a.start(sandbox_plan("r1"), "test").await });
    support::until(|| world.effects().contains(&"move-dns".to_string())).await;

    // The replacement decides a run of its own before finishing the one left.
    let next = b.acting("ctl-b", &world).await;
    let before = world.effects().len();
    let second = within("the second run", next.start(sandbox_plan("r2"), "test")).await;
    match &second {
        Err(JournalError::RunInProgress { run_id, .. }) => assert_eq!(run_id.0, "r1"),
        Ok(RunOutcome::NotStarted(_)) => {}
        other => panic!("{name}: a second run was not refused: {other:?}"),
    }
    assert_eq!(
        world.effects().len(),
        before,
        "{name}: the refused run applied nothing"
    );

    let out = within("the takeover", b.finish_left_run(&next)).await;
    assert_eq!(out, Some(RunOutcome::Completed), "{name}: r1 is finished");
    world.assert_each_effect_once(name);
    hang.notify_one();
    let _ = within("the lost controller", lost).await;
    world.assert_each_effect_once(name);
    assert!(!b.run_left().await, "{name}: nothing is left");
}

/// Each scenario, once per backend.
macro_rules! contract {
    ($($scenario:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Embedded::start().await, "embedded").await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::OnEtcd::start().await, "etcd").await;
                }
            )*
        }
    };
}

contract!(
    a_run_completes_with_each_effect_once_and_leaves_nothing_to_resume,
    a_controller_lost_mid_effect_is_replaced_and_the_effect_is_not_applied_again,
    a_new_run_is_not_started_while_another_is_unfinished,
);
