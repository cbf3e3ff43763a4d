//! Run reports and journal backups against moto's S3: a run that ends leaves its report
//! (JSON, Markdown, HTML) beside the journal and in the reports bucket, and a journal
//! backup verified as stored; `lifeboat show --report` writes it again; `lifeboat journal
//! backup` and `restore` round-trip through the bucket, a restore over a journal some
//! process holds is refused, and a journal that cannot be read names its newest backup.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use lifeboat::archive::Archiver;
use lifeboat::clients::aws::AwsClients;
use lifeboat::clock::WallClock;
use lifeboat::core::controller::{Decision, Evidence, FailingProbe};
use lifeboat::core::ids::{Epoch, RunId};
use lifeboat::core::model::{Direction, Policy, RegionName, S3Location};
use lifeboat::core::reason::{Note, Reason, Trigger};
use lifeboat::journal::Journal;
use lifeboat::report::RunReport;
use lifeboat::runbook::{Backoff, RetrySettings, RunOutcome, StepError};
use support::{Behaviour, Target, executor, sandbox_plan};

const RUN: &str = "fo-20261123-123456-abcd";

fn lifeboat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .env_remove("LIFEBOAT_STATE_DIR")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("run lifeboat")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn create_bucket(aws: &AwsClients) -> String {
    let name = support::unique("reports");
    aws.s3("us-east-1")
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("create the reports bucket");
    name
}

async fn object(aws: &AwsClients, bucket: &str, key: &str) -> Option<Vec<u8>> {
    lifeboat::archive::s3::get(&aws.s3("us-east-1"), bucket, key)
        .await
        .ok()
}

/// A failover the controller decided on evidence, whose DNS step was throttled once and
/// whose notification failed.
async fn finished_run(journal: &Arc<Journal>) {
    let service = "sandbox-orders";
    let t = WallClock::system().now();
    journal
        .record_decision(
            service,
            &Decision {
                at: t,
                summary: "failing over to us-west-2".into(),
                reason: Reason::Trigger(Trigger::RegionDown {
                    region: RegionName::new("us-east-1"),
                    since: t,
                    failures: 3,
                }),
                evidence: Evidence {
                    failing: vec![FailingProbe {
                        probe: "db".into(),
                        region: RegionName::new("us-east-1"),
                        failures: 3,
                        error: "PostgreSQL lifeboat@127.0.0.1:15432/orders: connection refused (after 3ms)".into(),
                    }],
                    ..Evidence::default()
                },
            },
        )
        .expect("decision");
    journal
        .record_decision(
            service,
            &Decision {
                at: t,
                summary: "failover started".into(),
                reason: Reason::Note(Note::RunStarted {
                    run: RunId(RUN.into()),
                    epoch: Epoch(1),
                    direction: Direction::Failover,
                    to: RegionName::new("us-west-2"),
                }),
                evidence: Evidence::default(),
            },
        )
        .expect("decision");
    let target = Target::in_memory();
    target.script(
        "move-dns",
        Behaviour {
            apply_errors: [StepError::retryable(
                "Throttling on UpdateHealthCheck: slow down",
            )]
            .into(),
            ..Behaviour::default()
        },
    );
    target.script(
        "tell-ops",
        Behaviour {
            apply_errors: [StepError::fatal("SNS topic `ops` <does not exist>")].into(),
            ..Behaviour::default()
        },
    );
    let quick = Backoff {
        first: Duration::from_millis(50),
        max: Duration::from_millis(50),
        factor: 1.0,
        jitter: false,
    };
    let out = executor(journal.clone(), &target, "lifeboat daemon (pid 7)")
        .clock(WallClock::system())
        .retry(RetrySettings {
            apply: quick,
            verify: quick,
        })
        .start(sandbox_plan(RUN), "the controller (daemon)")
        .await
        .expect("run");
    assert_eq!(out, RunOutcome::Completed);
}

fn sandbox_policy(bucket: &str, moto: &str) -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/sandbox.toml");
    let (mut p, _) = lifeboat::policy::load_valid(&path).expect("the sandbox policy is valid");
    p.reports.s3 = Some(S3Location::parse(&format!("s3://{bucket}/lb/")).expect("location"));
    p.aws.endpoint_url = Some(moto.to_string());
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_ends_leaves_its_report_beside_the_journal_and_in_the_bucket_and_a_verified_backup()
 {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let bucket = create_bucket(&aws).await;
    let dir = support::tempdir();
    let jpath = dir.path().join("state/sandbox-orders.db");
    let journal = Arc::new(Journal::open_or_create(&jpath).expect("journal"));
    finished_run(&journal).await;
    let policy = Arc::new(sandbox_policy(&bucket, &moto.url()));

    let archiver = Archiver::new(
        policy.clone(),
        journal.clone(),
        Some(aws.clone()),
        WallClock::system(),
    );
    archiver.run_ended(&RunId(RUN.into()));
    archiver.flush(Duration::from_secs(60)).await;

    let local = dir.path().join("state/reports/sandbox-orders");
    let json = std::fs::read_to_string(local.join(format!("{RUN}.json"))).expect("json report");
    let r: RunReport = serde_json::from_str(&json).expect("the JSON report parses");
    assert_eq!(r.run.run_id.0, RUN);
    assert_eq!(
        r.decisions.len(),
        2,
        "the trigger and the start: {:?}",
        r.decisions
    );
    assert_eq!(r.decisions[0].reason.label(), "region_down");
    assert_eq!(r.decisions[0].evidence.failing[0].probe, "db");
    let dns = r
        .steps
        .iter()
        .find(|s| s.name == "move-dns")
        .expect("move-dns");
    assert_eq!(
        dns.apply_attempts(),
        2,
        "the throttled attempt and the good one"
    );
    assert!(
        r.timeline.iter().any(|e| e.what.contains("run started")),
        "{:?}",
        r.timeline
    );

    let md = std::fs::read_to_string(local.join(format!("{RUN}.md"))).expect("markdown");
    for want in [
        "# failover fo-20261123-123456-abcd of `sandbox-orders`: us-east-1 → us-west-2",
        "| fencing epoch | 1 |",
        "## Decision and evidence",
        "failing: db in us-east-1 (3 in a row): PostgreSQL lifeboat@127.0.0.1:15432/orders: connection refused",
        "Throttling on UpdateHealthCheck: slow down",
        "### tell-ops",
    ] {
        assert!(md.contains(want), "the Markdown lacks {want:?}:\n{md}");
    }
    let html = std::fs::read_to_string(local.join(format!("{RUN}.html"))).expect("html");
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("<svg") && html.contains(">promote-standby</text>"));
    assert!(
        html.contains("SNS topic `ops` &lt;does not exist&gt;")
            && !html.contains("<does not exist>"),
        "text from the journal is escaped"
    );

    for ext in ["json", "md", "html"] {
        let key = format!("lb/sandbox-orders/runs/{RUN}.{ext}");
        let stored = object(&aws, &bucket, &key).await;
        let here = std::fs::read(local.join(format!("{RUN}.{ext}"))).expect("local");
        assert_eq!(
            stored.as_deref(),
            Some(here.as_slice()),
            "s3://{bucket}/{key}"
        );
    }

    let note = lifeboat::journal::backup::read_note(&jpath).expect("the backup is noted");
    assert!(
        note.location
            .starts_with(&format!("s3://{bucket}/lb/sandbox-orders/journal/"))
            && note.location.ends_with(&format!("-{RUN}.db")),
        "{}",
        note.location
    );
    let key = note.location.trim_start_matches(&format!("s3://{bucket}/"));
    let copy = object(&aws, &bucket, key).await.expect("the backup object");
    assert_eq!(copy.len() as u64, note.bytes);
    let restored = dir.path().join("copy.db");
    std::fs::write(&restored, &copy).expect("write");
    lifeboat::journal::backup::verify_copy(&restored).expect("the backup is a sound journal");
    let back = Journal::open(&restored).expect("open the backup");
    assert_eq!(back.run(&RunId(RUN.into())).expect("the run").run_id.0, RUN);
}

/// The sandbox policy in a scratch layout whose vars point at this test's moto and whose
/// reports go to `bucket`.
fn scratch_policy(root: &Path, moto: &str, bucket: &str) -> String {
    let policy = support::scratch_sandbox_policy(root);
    let text = std::fs::read_to_string(&policy).expect("read");
    let text = text.replace("s3://sandbox-orders-reports/", &format!("s3://{bucket}/"));
    std::fs::write(&policy, text).expect("write");
    let port = moto.rsplit(':').next().expect("port");
    std::fs::create_dir_all(root.join(".lifeboat/sandbox")).expect("mkdir");
    std::fs::write(
        root.join(".lifeboat/sandbox/state.toml"),
        format!("moto_port = {port}\n"),
    )
    .expect("vars");
    policy
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_restores_through_the_bucket_but_never_over_a_journal_a_process_holds() {
    let moto = support::moto();
    let aws = AwsClients::for_emulator(&moto.url());
    let bucket = create_bucket(&aws).await;
    let root = support::tempdir();
    let policy = scratch_policy(root.path(), &moto.url(), &bucket);
    let jpath = root.path().join(".lifeboat/sandbox/journal.db");
    let journal = Arc::new(Journal::open_or_create(&jpath).expect("journal"));
    finished_run(&journal).await;
    drop(journal);

    let out = lifeboat(&[
        "journal",
        "backup",
        "--policy",
        &policy,
        "--to",
        &format!("s3://{bucket}/lb/"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("verified as stored"), "{said}");
    let url = said
        .split_whitespace()
        .find(|w| w.starts_with("s3://"))
        .expect("the backup's URL")
        .to_string();

    // The journal breaks: its error names the backup and how to restore it.
    std::fs::write(&jpath, b"this is not an SQLite database, not even close").expect("break it");
    for companion in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{companion}", jpath.display()));
    }
    let out = lifeboat(&["history", "--policy", &policy]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("cannot be read"), "{said}");
    assert!(
        said.contains(&format!("Restore the newest backup, {url}"))
            && said.contains("lifeboat journal restore --journal ")
            && said.contains(&format!("sandbox/journal.db --from {url}")),
        "{said}"
    );

    // Held by another process (the daemon holds this lock while it runs): refused.
    let held = lifeboat::daemon::discovery::lock(&jpath, "lifeboat run").expect("lock");
    let out = lifeboat(&["journal", "restore", "--policy", &policy, "--from", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("refusing to restore over a live journal"),
        "{said}"
    );
    assert!(
        said.contains("lifeboat run, pid"),
        "the holder is named: {said}"
    );
    assert_eq!(
        std::fs::read(&jpath).expect("read"),
        b"this is not an SQLite database, not even close",
        "nothing was replaced"
    );
    drop(held);

    // A file that is not a journal is refused before anything is touched.
    let junk = root.path().join("junk.db");
    std::fs::write(&junk, b"junk").expect("junk");
    let out = lifeboat(&[
        "journal",
        "restore",
        "--policy",
        &policy,
        "--from",
        junk.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("nothing was replaced"),
        "{}",
        text(&out)
    );

    let out = lifeboat(&["journal", "restore", "--policy", &policy, "--from", &url]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("the journal it replaced is kept at"),
        "{said}"
    );
    let aside = std::fs::read_dir(jpath.parent().expect("dir"))
        .expect("list")
        .filter_map(|e| e.ok())
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("journal.db.replaced-")
        })
        .expect("the broken journal is kept");
    assert_eq!(
        std::fs::read(aside.path()).expect("read"),
        b"this is not an SQLite database, not even close"
    );
    let out = lifeboat(&["history", "--policy", &policy]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(RUN), "{}", text(&out));

    // And the report can be written again from the restored journal.
    let out = lifeboat(&["show", RUN, "--policy", &policy, "--report"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!(
            ".lifeboat/sandbox/reports/sandbox-orders/{RUN}.html"
        )) && said.contains(&format!(
            "s3://{bucket}/lifeboat/sandbox-orders/runs/{RUN}.json"
        )),
        "{said}"
    );
    assert!(
        object(
            &aws,
            &bucket,
            &format!("lifeboat/sandbox-orders/runs/{RUN}.md")
        )
        .await
        .is_some()
    );
}
