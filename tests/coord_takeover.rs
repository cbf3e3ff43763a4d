//! A run one controller starts and another finishes, through etcd: the executor's
//! authority records each step's intent and outcome under the leader's epoch, and a new
//! leader adopts the run from the shared record with the plan it started with. Against a
//! real 3-member etcd cluster; the steps are the fake ones of tests/runbook.rs (the
//! outside world they act on is the point of other tests).

#[path = "support/etcd.rs"]
mod etcd_support;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_support::*;
use lifeboat::coord::records::{RunEnd, StepDone, Vote};
use lifeboat::coord::{EtcdAuthority, unfinished};
use lifeboat::core::health::Verdict;
use lifeboat::core::ids::RunId;
use lifeboat::core::model::RegionName;
use lifeboat::core::time::Ts;
use lifeboat::runbook::{Authority, AuthorityError, RunOutcome};
use support::{SANDBOX_STEPS, Target, executor, journal, sandbox_plan, until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_lost_mid_run_is_replaced_and_the_new_leader_finishes_with_each_effect_once() {
    let dir = tempdir();
    let cluster = cluster(dir.path()).await;
    let (etcd_a, etcd_b) = (
        connect(settings(cluster.endpoints())).await,
        connect(settings(cluster.endpoints())).await,
    );
    let svc = etcd_a.keys().service(SERVICE).expect("service");
    let world = Target::in_memory();
    let hang = world.hang_after_apply("promote-standby");

    // Controller A leads and starts the run; it stops answering right after promoting.
    let a = lead(
        &etcd_a,
        &candidate("ctl-a", "us-east-1"),
        Duration::from_secs(10),
    )
    .await;
    let epoch_a = a.epoch();
    let (dir_a, dir_b) = (tempdir(), tempdir());
    let run_a = {
        let exec = executor(journal(&dir_a), &world, "ctl-a")
            .authority(Arc::new(EtcdAuthority::new(a.clone(), "ctl-a")));
        tokio::spawn(async move { exec.start(sandbox_plan("r1"), "lifeboat (automatic)").await })
    };
    until(|| world.effects().contains(&"promote-standby".to_string())).await;

    // A's lease goes (as when its host dies); B is elected at a newer epoch and finds
    // the run in etcd with its plan and the steps A finished.
    a.session().revoke(&etcd_a).await.expect("revoke");
    let b = lead(
        &etcd_b,
        &candidate("ctl-b", "us-west-2"),
        Duration::from_secs(10),
    )
    .await;
    assert!(b.epoch() > epoch_a, "{} > {}", b.epoch(), epoch_a);
    let left = unfinished(&etcd_b, &svc)
        .await
        .expect("read")
        .expect("A's run is current");
    assert_eq!(left.intent.run_id, "r1");
    assert_eq!(left.intent.epoch, epoch_a);
    let ended: Vec<&str> = left.ended.iter().map(|(_, d)| d.step.as_str()).collect();
    assert_eq!(ended, vec!["fence-old-primary"], "{left:?}");

    let journal_b = journal(&dir_b);
    let out = executor(journal_b.clone(), &world, "ctl-b")
        .authority(Arc::new(EtcdAuthority::new(b.clone(), "ctl-b")))
        .adopt(
            left.intent.plan.clone(),
            &left.intent.started_by,
            left.intent.started_at,
            &left.ended_steps(),
            "ctl-a",
        )
        .await
        .expect("adopt");
    assert_eq!(out, RunOutcome::Completed);
    // B's record of the run says when A started it, not when B took it over.
    let started = journal(&dir_a)
        .run(&RunId("r1".into()))
        .expect("A's run")
        .created_at;
    assert_eq!(left.intent.started_at, Some(started));
    assert_eq!(
        journal_b
            .run(&RunId("r1".into()))
            .expect("B's run")
            .created_at,
        started
    );
    world.assert_each_effect_once("B finished the run");
    assert_eq!(
        world.calls("fence-old-primary", "check"),
        1,
        "B did not redo A's finished step"
    );

    // A wakes: it is refused by etcd and applies nothing more.
    hang.notify_one();
    let a_out = tokio::time::timeout(Duration::from_secs(20), run_a)
        .await
        .expect("A stops")
        .expect("join")
        .expect("journal");
    assert!(
        matches!(a_out, RunOutcome::Superseded(_) | RunOutcome::Interrupted),
        "{a_out:?}"
    );
    world.assert_each_effect_once("after A woke");

    // The shared record: one outcome per step, promote adopted by B; the run ended.
    let prefix = svc.run_prefix("r1").expect("prefix");
    let mut done: BTreeMap<String, StepDone> = BTreeMap::new();
    for s in etcd_b.list(&format!("{prefix}step/")).await.expect("list") {
        if s.key.ends_with("/done") {
            let d: StepDone = s.json().expect("done record");
            assert!(
                done.insert(d.step.clone(), d).is_none(),
                "one outcome per step"
            );
        }
    }
    assert_eq!(done.len(), SANDBOX_STEPS.len(), "{done:?}");
    assert_eq!(done["fence-old-primary"].epoch, epoch_a);
    assert_eq!(done["promote-standby"].epoch, b.epoch());
    assert_eq!(done["promote-standby"].outcome, "adopted");
    assert_eq!(done["move-dns"].outcome, "done");
    assert!(etcd_b.get(&svc.run_current()).await.expect("get").is_none());
    let end: RunEnd = etcd_b
        .get(&format!("{prefix}end"))
        .await
        .expect("get")
        .expect("end record")
        .json()
        .expect("decode");
    assert_eq!((end.status.as_str(), end.epoch), ("completed", b.epoch()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_not_started_when_a_counted_vote_changed_or_another_run_is_current() {
    let dir = tempdir();
    let cluster = cluster(dir.path()).await;
    let etcd = connect(settings(cluster.endpoints())).await;
    let svc = etcd.keys().service(SERVICE).expect("service");
    let leader = lead(
        &etcd,
        &candidate("ctl-a", "us-east-1"),
        Duration::from_secs(10),
    )
    .await;
    let observer = etcd.session().await.expect("observer session");
    let vote = |round: u64, down: bool| Vote {
        observer: "obs-c".to_string(),
        region: RegionName::new("eu-west-1"),
        round,
        observed_at: Ts(round * 1000),
        verdicts: BTreeMap::from([(
            RegionName::new("us-east-1"),
            if down {
                Verdict::Down { since: Ts(1000) }
            } else {
                Verdict::Healthy
            },
        )]),
        evidence: String::new(),
    };
    etcd.publish_vote(&observer, &svc, &vote(1, true))
        .await
        .expect("vote");
    let counted = etcd.votes(&svc).await.expect("votes");
    // The observer changes its mind after the leader counted its vote.
    etcd.publish_vote(&observer, &svc, &vote(2, false))
        .await
        .expect("vote");

    let auth = EtcdAuthority::new(leader.clone(), "ctl-a");
    auth.counted(&counted);
    let err = auth
        .begin(&sandbox_plan("r1"), "lifeboat (automatic)", Ts(1))
        .await
        .expect_err("the vote changed");
    assert!(
        matches!(&err, AuthorityError::NotRecorded(m) if m.contains("changed after it was counted")),
        "{err:?}"
    );
    assert!(etcd.get(&svc.run_current()).await.expect("get").is_none());

    // Counted afresh, the run starts; a second run cannot while it is current.
    auth.counted(&etcd.votes(&svc).await.expect("votes"));
    auth.begin(&sandbox_plan("r1"), "lifeboat (automatic)", Ts(1))
        .await
        .expect("begins");
    let err = auth
        .begin(&sandbox_plan("r2"), "alice", Ts(2))
        .await
        .expect_err("one run at a time");
    assert!(
        matches!(&err, AuthorityError::NotRecorded(m) if m.contains("another run is current")),
        "{err:?}"
    );
    auth.end(&RunId("r1".into()), "completed")
        .await
        .expect("end");
    auth.begin(&sandbox_plan("r2"), "alice", Ts(2))
        .await
        .expect("r2 begins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_epochs_intent_and_outcome_are_refused_once_a_new_leader_exists() {
    let dir = tempdir();
    let cluster = cluster(dir.path()).await;
    let (etcd_a, etcd_b) = (
        connect(settings(cluster.endpoints())).await,
        connect(settings(cluster.endpoints())).await,
    );
    let a = lead(
        &etcd_a,
        &candidate("ctl-a", "us-east-1"),
        Duration::from_secs(10),
    )
    .await;
    let old = EtcdAuthority::new(a.clone(), "ctl-a");
    let run = RunId("r1".into());
    old.intent(&run, 1, "fence-old-primary")
        .await
        .expect("A leads");
    // The same intent again (a retried attempt) is the same record, not a conflict.
    old.intent(&run, 1, "fence-old-primary")
        .await
        .expect("idempotent");
    a.session().revoke(&etcd_a).await.expect("revoke");
    assert!(old.may_act().is_err(), "A's lease is gone: it may not act");

    let b = lead(
        &etcd_b,
        &candidate("ctl-b", "us-west-2"),
        Duration::from_secs(10),
    )
    .await;
    let new = EtcdAuthority::new(b, "ctl-b");
    new.intent(&run, 1, "fence-old-primary")
        .await
        .expect("B's own intent");
    assert!(matches!(
        old.intent(&run, 2, "promote-standby").await,
        Err(AuthorityError::Deposed(_))
    ));
    new.done(
        &run,
        1,
        "fence-old-primary",
        lifeboat::runbook::SharedOutcome::Adopted,
    )
    .await
    .expect("B records the outcome");
    assert!(matches!(
        old.done(
            &run,
            1,
            "fence-old-primary",
            lifeboat::runbook::SharedOutcome::Done
        )
        .await,
        Err(AuthorityError::Deposed(_))
    ));
}
