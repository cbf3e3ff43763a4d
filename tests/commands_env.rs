//! What a command probe and a command step see of lifeboat's environment: the basics,
//! their own `LIFEBOAT_*` variables and what `[commands] pass_env` names; never the API
//! token, AWS credentials or a secret the policy references. lifeboat runs as a child
//! process here, with those variables set, as an operator's shell or a daemon's unit
//! file would set them.

mod support;

use std::path::Path;
use std::process::Command;

const SECRETS: [(&str, &str); 5] = [
    ("LIFEBOAT_API_TOKEN", "token-value-q1w2e3"),
    ("AWS_SECRET_ACCESS_KEY", "aws-secret-value-r4t5y6"),
    ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEu7i8o9"),
    ("AWS_SESSION_TOKEN", "aws-session-value-p0a1s2"),
    ("DB_PASSWORD", "db-password-value-d3f4g5"),
];

fn policy(dir: &Path) -> std::path::PathBuf {
    let d = dir.display();
    let text = format!(
        r#"
[service]
name = "envcheck"

[regions]
primary = "us-east-1"
secondaries = ["us-west-2"]

[detection]
interval = "2s"
timeout = "1s"
failure_threshold = 1
recovery_threshold = 1
mode = "manual"

[journal]
path = "envcheck.db"

[commands]
pass_env = ["PASSED_THROUGH"]

[targets.db]
kind = "postgres"
host = "127.0.0.1"
user = "app"
database = "app"
password = {{ env = "DB_PASSWORD" }}

[[probes]]
name = "alive"
component = "database"
kind = "command"
regions = ["us-east-1", "us-west-2"]
run = ["sh", "-c", "env > {d}/probe-env-$LIFEBOAT_REGION.txt"]

[[failover.steps]]
name = "hook"
kind = "command"
run = ["sh", "-c", "env > {d}/step-env.txt"]

[[failback.steps]]
name = "hook"
kind = "command"
run = ["sh", "-c", "env > {d}/step-env.txt"]
"#
    );
    let path = dir.join("envcheck.toml");
    std::fs::write(&path, text).expect("write policy");
    path
}

fn lifeboat(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("PASSED_THROUGH", "visible-by-choice");
    for (k, v) in SECRETS {
        cmd.env(k, v);
    }
    cmd.output().expect("run lifeboat")
}

/// The environment a command wrote, checked for every secret lifeboat had.
fn assert_clean(file: &Path, must_have: &[&str]) {
    let env = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("the command did not write {}: {e}", file.display()));
    for (name, value) in SECRETS {
        assert!(
            !env.contains(value),
            "{} leaked {name}:\n{env}",
            file.display()
        );
        assert!(
            !env.lines().any(|l| l.starts_with(&format!("{name}="))),
            "{} sees {name}:\n{env}",
            file.display()
        );
    }
    assert!(
        !env.lines().any(|l| l.starts_with("AWS_")),
        "no AWS variable at all:\n{env}"
    );
    for want in must_have {
        assert!(
            env.contains(want),
            "{} lacks {want}:\n{env}",
            file.display()
        );
    }
}

#[test]
fn command_probes_and_steps_see_no_token_no_aws_credentials_and_no_secret() {
    let dir = support::tempdir();
    let file = policy(dir.path());
    let path = file.to_str().expect("utf-8");

    let out = lifeboat(dir.path(), &["probe", "--policy", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean(
        &dir.path().join("probe-env-us-east-1.txt"),
        &[
            "LIFEBOAT_PROBE=alive",
            "PASSED_THROUGH=visible-by-choice",
            "PATH=",
        ],
    );

    let out = lifeboat(
        dir.path(),
        &[
            "failover",
            "--policy",
            path,
            "--yes",
            "--allow-data-loss",
            "--by",
            "tester",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean(
        &dir.path().join("step-env.txt"),
        &[
            "LIFEBOAT_STEP=hook",
            "LIFEBOAT_SERVICE=envcheck",
            "PASSED_THROUGH=visible-by-choice",
        ],
    );
}
