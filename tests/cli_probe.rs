//! `lifeboat probe` end to end: the binary probes real local endpoints, prints the table
//! and the verdicts, and its exit status follows the primary's critical probes.

mod support;

use std::path::Path;

use lifeboat::sandbox::endpoint::{self, Faults, Mode};

/// A policy whose API is served by the two given ports and whose database probe is a
/// command that passes in us-east-1 and fails in us-west-2.
fn policy(dir: &Path, east: u16, west: u16) -> std::path::PathBuf {
    let text = format!(
        r#"
[service]
name = "cli-probe"

[regions]
primary = "us-east-1"
secondaries = ["us-west-2"]

[detection]
interval = "5s"
timeout = "2s"
failure_threshold = 3
mode = "manual"

[channels.ops]
kind = "sns"
topic_arn = "arn:aws:sns:us-east-1:111122223333:ops"

[targets.db]
kind = "postgres"
user = "app"
database = "app"
regions.us-east-1.host = "127.0.0.1"
regions.us-west-2.host = "127.0.0.1"

[targets.api]
kind = "http"
regions.us-east-1.url = "http://127.0.0.1:{east}/health"
regions.us-west-2.url = "http://127.0.0.1:{west}/health"

[targets.dns]
kind = "route53"
zone_id = "Z1"
record_name = "app.example.com"
style = "failover_pair"
regions.us-east-1.set_identifier = "east"
regions.us-west-2.set_identifier = "west"

[[probes]]
name = "api"
component = "api"
kind = "http"
target = "api"
json_field = "status"
json_equals = "ok"

[[probes]]
name = "replica-check"
component = "database"
kind = "command"
regions = ["us-east-1", "us-west-2"]
run = ["sh", "-c", "test \"$LIFEBOAT_REGION\" = us-east-1 || {{ echo 'no replica here' >&2; exit 1; }}"]

[[probes]]
name = "api-tcp"
component = "api"
kind = "tcp"
target = "api-port"
critical = false

[targets.api-port]
kind = "tcp"
regions.us-east-1 = {{ host = "127.0.0.1", port = {east} }}
regions.us-west-2 = {{ host = "127.0.0.1", port = 1 }}

[[failover.steps]]
name = "promote"
kind = "postgres_promote"
target = "db"

[[failover.steps]]
name = "dns"
kind = "route53_switch"
target = "dns"

[[failback.steps]]
name = "healthy"
kind = "wait_healthy"

[[failback.steps]]
name = "promote"
kind = "postgres_promote"
target = "db"

[[failback.steps]]
name = "dns"
kind = "route53_switch"
target = "dns"
"#
    );
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).expect("write the policy");
    path
}

async fn lifeboat(args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("run lifeboat");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn probe_prints_a_table_and_exits_by_the_primarys_critical_probes() {
    let (east_faults, west_faults) = (Faults::new("us-east-1"), Faults::new("us-west-2"));
    let (east, t1) = endpoint::spawn(east_faults.clone(), 0)
        .await
        .expect("serve");
    let (west, t2) = endpoint::spawn(west_faults.clone(), 0)
        .await
        .expect("serve");
    west_faults.set_mode(Mode::Error);
    let dir = support::tempdir();
    let file = policy(dir.path(), east, west);
    let file = file.to_str().expect("utf-8 path");

    let (code, out) = lifeboat(&["probe", "--policy", file]).await;
    assert_eq!(code, 0, "the primary passes:\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("COMPONENT  REGION     PROBE"), "{out}");
    let row = |probe: &str, region: &str| {
        lines
            .iter()
            .find(|l| l.contains(&format!(" {region} ")) && l.contains(&format!(" {probe} ")))
            .unwrap_or_else(|| panic!("no row for {probe} in {region}:\n{out}"))
            .to_string()
    };
    assert!(row("api", "us-east-1").contains(" ok "), "{out}");
    assert!(row("api", "us-west-2").contains(" FAIL "), "{out}");
    assert!(
        row("api", "us-west-2").contains("HTTP 500, expected 200"),
        "{out}"
    );
    assert!(
        row("replica-check", "us-west-2").contains("exit status 1: no replica here"),
        "{out}"
    );
    assert!(
        row("api-tcp (advisory)", "us-west-2").contains(" warn "),
        "{out}"
    );
    assert!(out.contains("us-east-1 (primary)   healthy"), "{out}");
    assert!(
        out.contains("us-west-2             suspect (1 failed in a row)"),
        "{out}"
    );

    let (code, _) = lifeboat(&["probe", "--policy", file, "--region", "us-west-2"]).await;
    assert_eq!(code, 1, "us-west-2's critical probes fail");

    east_faults.set_mode(Mode::Garbage);
    let (code, json) = lifeboat(&["probe", "--policy", file, "--json"]).await;
    assert_eq!(code, 1, "now the primary fails too");
    support::contract::assert_output_valid("probe", json.as_bytes());
    let doc: serde_json::Value = serde_json::from_str(&json).expect("one JSON document");
    assert_eq!(doc["observations"].as_array().map(Vec::len), Some(6));
    // Each observation says which component its probe stands for, as the table does.
    for o in doc["observations"].as_array().into_iter().flatten() {
        let want = if o["probe"] == "replica-check" {
            "database"
        } else {
            "api"
        };
        assert_eq!(o["component"], want, "{o}");
    }
    assert_eq!(doc["health"]["regions"][0]["region"], "us-east-1");
    assert_eq!(doc["health"]["regions"][0]["verdict"], "suspect");
    t1.abort();
    t2.abort();
}

#[tokio::test]
async fn probe_refuses_a_region_the_policy_does_not_have() {
    let dir = support::tempdir();
    let file = policy(dir.path(), 1, 1);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args([
            "probe",
            "--policy",
            file.to_str().expect("path"),
            "--region",
            "eu-west-9",
        ])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("region eu-west-9 is not one of the policy's regions (us-east-1, us-west-2)"),
        "{err}"
    );
}
