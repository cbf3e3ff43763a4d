//! Readiness on the whole sandbox, with the real binary: `lifeboat readiness` on a
//! healthy sandbox and on a drifted one (its exit status is what CI pipelines read), and
//! the three drift drills, in which the daemon's scheduled rounds go red naming the step
//! and the fix, go green after the repair, and no failover starts. Like the other drills
//! they run one at a time (`.config/nextest.toml`).

use std::process::{Command, Output};

use lifeboat::clients::aws::AwsClients;
use lifeboat::core::model::Direction;
use lifeboat::core::readiness::{ReadinessReport, ReadyState};
use lifeboat::drill::report::Report;
use lifeboat::sandbox::world::World;

mod support;

fn lifeboat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("run lifeboat")
}

fn readiness(policy: &str) -> (Option<i32>, ReadinessReport) {
    let out = lifeboat(&["readiness", "--policy", policy, "--json"]);
    support::contract::assert_output_valid("readiness", &out.stdout);
    let report: ReadinessReport = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "readiness --json is a report ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_exits_0_on_the_healthy_sandbox_and_1_naming_the_step_when_it_drifts() {
    let root = support::tempdir();
    let policy = support::scratch_sandbox_policy(root.path());
    let up = lifeboat(&["sandbox", "up", "--policy", &policy]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let _down = Down(policy.clone());
    let dir = root.path().join(".lifeboat/sandbox");
    let world = World::load(&dir).expect("sandbox record");
    {
        let (code, r) = readiness(&policy);
        assert_eq!(code, Some(0), "{r:#?}");
        let states: Vec<(String, ReadyState)> =
            r.findings().map(|((_, s), f)| (s, f.state())).collect();
        assert_eq!(
            states.len(),
            16,
            "six failover steps, nine failback, the permissions"
        );
        assert!(
            states
                .iter()
                .all(|(s, st)| *st == ReadyState::Ready || s == "permissions"),
            "{states:?}"
        );

        // The primary's API fails and the secondary's group is capped.
        let api = world.api_url("us-east-1").expect("api");
        reqwest::Client::new()
            .post(format!("{api}/fault"))
            .json(&serde_json::json!({"mode": "error"}))
            .send()
            .await
            .expect("fault");
        AwsClients::for_emulator(&world.moto_url())
            .autoscaling("us-west-2")
            .update_auto_scaling_group()
            .auto_scaling_group_name("sandbox-orders-workers-usw2")
            .min_size(1)
            .desired_capacity(1)
            .max_size(1)
            .send()
            .await
            .expect("cap");
        let (code, r) = readiness(&policy);
        assert_eq!(code, Some(1));
        let red: Vec<String> = r
            .not_ready()
            .into_iter()
            .map(|((d, s), why, fix)| format!("{d:?} {s}: {why} / {fix}"))
            .collect();
        assert_eq!(red.len(), 1, "{red:#?}");
        assert!(
            red[0].starts_with("Some(Failover) scale-up-workers: "),
            "{red:#?}"
        );
        assert!(red[0].contains("raise the group's max"), "{red:#?}");
        // The failback waits for the primary to come back: its failing API is no reason
        // to call the failback not ready, only one to say readiness cannot tell yet.
        let wait = r
            .runbooks
            .iter()
            .flat_map(|rb| rb.steps.iter().map(move |s| (rb.direction, s)))
            .find(|(d, s)| *d == Direction::Failback && s.step == "primary-healthy")
            .map(|(_, s)| s.readiness.clone())
            .expect("the failback's wait");
        assert_eq!(wait.state(), ReadyState::CannotTell, "{wait:?}");
        assert!(wait.detail().contains("api"), "{wait:?}");
        let text = lifeboat(&["readiness", "--policy", &policy]);
        let said = String::from_utf8_lossy(&text.stdout);
        assert!(
            said.contains("FAIL scale-up-workers")
                && said.contains("NOT READY: 13 ready, 1 not ready, 2 cannot tell"),
            "{said}"
        );
    }
}

/// Takes the sandbox down when the test ends, whatever it asserted.
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = lifeboat(&["sandbox", "down", "--policy", &self.0]);
    }
}

/// Runs `policies/drills/NAME.toml` once; returns whether it passed and its report.
fn drill(name: &str) -> (bool, Report) {
    let tmp = support::tempdir();
    let policy = support::scratch_sandbox_policy(tmp.path());
    let out = tmp.path().join("reports");
    let run = lifeboat(&[
        "drill",
        &format!("policies/drills/{name}.toml"),
        "--policy",
        &policy,
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    let text = std::fs::read_to_string(out.join(format!("{name}-1.json"))).unwrap_or_else(|e| {
        panic!(
            "no report for {name} ({e}); stderr:\n{}",
            String::from_utf8_lossy(&run.stderr)
        )
    });
    let report: Report = serde_json::from_str(&text).expect("the report is JSON");
    if !run.status.success() {
        eprintln!("drill {name} failed:\n{}", report.markdown());
    }
    (run.status.success(), report)
}

fn drift(name: &str, step: &str) {
    let (ok, r) = drill(name);
    assert!(ok, "every expectation holds: {:#?}", r.checks);
    let red = r
        .checks
        .iter()
        .find(|c| c.what.starts_with("readiness goes red"))
        .expect("the red check");
    assert!(red.passed && red.what.contains(step), "{red:?}");
    assert!(red.detail.contains("fix:"), "{red:?}");
    for c in ["readiness is green within", "no failover", "the metric"] {
        assert!(
            r.checks.iter().any(|x| x.what.starts_with(c) && x.passed),
            "{c}: {:#?}",
            r.checks
        );
    }
    assert_eq!(r.figures.failover, None);
}

#[test]
fn a_deleted_switch_health_check_turns_the_dns_step_red_until_it_is_recreated() {
    drift("drift-health-check-deleted", "move-dns");
}

#[test]
fn a_capped_auto_scaling_group_turns_the_scaling_step_red_until_the_cap_is_lifted() {
    drift("drift-asg-max-lowered", "scale-up-workers");
}

#[test]
fn stopped_replication_turns_the_promotion_red_until_it_streams_again() {
    drift("drift-replication-stopped", "promote-standby");
}
