//! What an SRE deploys beside the daemon, checked by their own tools: the Prometheus
//! alert rules by `promtool check rules` and `promtool test rules` (a unit test for every
//! alert), the Grafana dashboard's queries parsed by promtool, and every metric the rules
//! and the dashboard use found on a live daemon's `/metrics` on the sandbox.
//!
//! promtool comes with Debian's `prometheus` package; install-deps.sh installs it.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const RULES: &str = "deploy/prometheus/lifeboat-rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/lifeboat-rules.test.yml";
const DASHBOARD: &str = "deploy/grafana/lifeboat.json";

fn promtool(args: &[&str]) -> Output {
    Command::new("promtool")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "promtool is not installed ({e}): run tests/setup/install-deps.sh (apt-get install prometheus)"
            )
        })
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn promtool_accepts_the_alert_rules_and_their_unit_tests_pass() {
    let check = promtool(&["check", "rules", "--lint=all", "--lint-fatal", RULES]);
    assert!(check.status.success(), "{}", text(&check));
    let test = promtool(&["test", "rules", RULE_TESTS]);
    assert!(test.status.success(), "{}", text(&test));
}

/// The values of `key: value` lines in a YAML file.
fn yaml_values(path: &str, key: &str) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
        .lines()
        .filter_map(|l| {
            l.trim_start()
                .trim_start_matches("- ")
                .strip_prefix(key)
                .map(|v| v.trim().to_string())
        })
        .collect()
}

#[test]
fn every_alert_has_a_unit_test_and_the_issue_s_cases_are_covered() {
    let alerts = yaml_values(RULES, "alert:");
    let tested = yaml_values(RULE_TESTS, "alertname:");
    assert_eq!(
        rule_expressions().len(),
        alerts.len(),
        "one expression per alert"
    );
    let untested: Vec<_> = alerts.difference(&tested).collect();
    assert!(untested.is_empty(), "alerts without a test: {untested:?}");
    for needed in [
        "LifeboatRegionDown",
        "LifeboatFailoverStarted",
        "LifeboatFailoverCompleted",
        "LifeboatFailoverFailed",
        "LifeboatAwaitingApproval",
        "LifeboatNoQuorum",
        "LifeboatReplicaLagOverBudget",
        "LifeboatOldPrimaryUnfenced",
        "LifeboatAbsent",
        "LifeboatProbeNearTimeout",
        "LifeboatWitnessUnreachable",
        "LifeboatObserverIsolated",
        "LifeboatStepNotReady",
    ] {
        assert!(alerts.contains(needed), "no alert {needed}");
    }
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(DASHBOARD).expect("read the dashboard"))
        .expect("the dashboard is JSON")
}

/// Every PromQL query in the dashboard: panel targets and annotations (`expr`), and
/// template variables' `label_values(…)` selectors.
fn queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(q)) => out.push(q.clone()),
                    ("query", serde_json::Value::String(q)) if q.starts_with("label_values(") => {
                        let inner = &q["label_values(".len()..q.len() - 1];
                        let selector = inner.rsplit_once(',').map_or(inner, |(s, _)| s);
                        out.push(selector.trim().to_string());
                    }
                    _ => queries(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

/// The rules' `expr:` values, a block scalar (`expr: |`) being the lines indented
/// deeper than its key.
fn rule_expressions() -> Vec<String> {
    let rules = std::fs::read_to_string(RULES).expect("read the rules");
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(value) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        if value.trim() != "|" {
            out.push(value.trim().to_string());
            continue;
        }
        let mut block = String::new();
        while let Some(next) = lines.next_if(|n| n.trim().is_empty() || indent(n) > indent(line)) {
            block.push_str(next.trim());
            block.push(' ');
        }
        out.push(block);
    }
    out
}

/// Grafana's variables replaced by values PromQL accepts.
fn substituted(q: &str) -> String {
    q.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$service", "orders")
        .replace("$component", "api")
}

/// The metric names a query reads: every `lifeboat_…` identifier outside strings, and
/// Prometheus's own `up`.
fn metric_names(q: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_string = false;
    let mut word = String::new();
    for c in q.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            in_string = !in_string;
        }
        if !in_string && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            word.push(c);
            continue;
        }
        if word.starts_with("lifeboat_") || word == "up" {
            names.insert(word.clone());
        }
        word.clear();
    }
    names
}

#[test]
fn the_dashboard_has_the_issue_s_panels_and_every_query_parses_as_promql() {
    let d = dashboard();
    let titles: Vec<String> = d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter_map(|p| p["title"].as_str().map(str::to_lowercase))
        .collect();
    for needed in [
        "region verdicts",
        "probe latency: $component",
        "runs",
        "run duration",
        "replica lag against the rpo budget",
        "observers seeing the serving region down",
        "witnesses",
    ] {
        assert!(
            titles.iter().any(|t| t == needed),
            "no panel {needed:?}: {titles:?}"
        );
    }
    let heatmap = d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .find(|p| p["type"] == "heatmap")
        .expect("a heatmap");
    assert_eq!(heatmap["repeat"], "component", "one heatmap per component");

    let mut qs = Vec::new();
    queries(&d, &mut qs);
    assert!(qs.len() >= 20, "found only {} queries", qs.len());
    // promtool parses PromQL only inside rule files: one recording rule per query.
    let dir = support::tempdir();
    let rules = dir.path().join("dashboard-queries.yml");
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in qs.iter().enumerate() {
        let q = substituted(q);
        yaml.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&q).expect("json string")
        ));
    }
    std::fs::write(&rules, yaml).expect("write");
    let out = promtool(&["check", "rules", rules.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out));
}

/// The series names a /metrics page offers: its samples, and each family's names by
/// type (a histogram without observations still declares `_bucket`, `_sum`, `_count`).
fn exposed(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            match kind {
                "histogram" => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
                "counter" => {
                    names.insert(format!("{name}_total"));
                }
                _ => {
                    names.insert(name.to_string());
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// The daemon on the sandbox, stopped with the sandbox whatever happens to the test.
struct Daemon {
    child: std::process::Child,
    sandbox: std::path::PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        lifeboat::sandbox::process::stop_pid(self.child.id(), Duration::from_secs(10));
        let _ = self.child.wait();
        let _ = lifeboat::sandbox::world::down(&self.sandbox);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_rules_and_the_dashboard_use_exists_on_a_live_daemon_on_the_sandbox() {
    let root = support::tempdir();
    let policy = support::scratch_sandbox_policy(root.path());
    let aws = [
        ("AWS_ACCESS_KEY_ID", lifeboat::sandbox::moto::ACCESS_KEY_ID),
        (
            "AWS_SECRET_ACCESS_KEY",
            lifeboat::sandbox::moto::SECRET_ACCESS_KEY,
        ),
    ];
    let up = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["sandbox", "up", "--policy", &policy])
        .envs(aws)
        .output()
        .expect("lifeboat sandbox up");
    let sandbox = root.path().join(".lifeboat/sandbox");
    assert!(up.status.success(), "{}", text(&up));
    let child = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["run", "--policy", &policy])
        .envs(aws)
        .env("LIFEBOAT_API_TOKEN", "")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let daemon = Daemon { child, sandbox };

    // The controller publishes its address beside its journal (the witness the sandbox
    // runs publishes its own beside another).
    let (loaded, _) = lifeboat::policy::load_valid(Path::new(&policy)).expect("the policy");
    let journal = lifeboat::journal::location(&loaded, Path::new("/var/lib/lifeboat"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        if let Some(published) = lifeboat::daemon::discovery::find(&journal) {
            break published.url;
        }
        assert!(
            Instant::now() < deadline,
            "the controller did not publish its API beside {}",
            journal.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let http = reqwest::Client::new();
    let scrape = |want: &'static [&'static str]| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let page = http
                    .get(format!("{url}/metrics"))
                    .send()
                    .await
                    .expect("GET /metrics")
                    .text()
                    .await
                    .expect("text");
                if want.iter().all(|s| page.contains(s)) || Instant::now() > deadline {
                    return page;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    // A few probe rounds and witness polls, so per-probe and per-region series exist.
    let before = scrape(&[
        "lifeboat_probe_up{",
        "lifeboat_active_region{service=\"sandbox-orders\",region=\"us-east-1\"} 1",
        "lifeboat_witness_up{service=\"sandbox-orders\",witness=\"http://127.0.0.1:",
        "lifeboat_database_role{service=\"sandbox-orders\",region=\"us-east-1\",role=\"primary\"} 1",
        "lifeboat_readiness_ok{service=\"sandbox-orders\",",
    ])
    .await;
    // A failover by hand, so that the run's series (steps, durations, outcomes) exist
    // too, and the new series follow the service to the other region. The loss is
    // accepted up front: this test is about the metrics, not the RPO gate, and on an idle
    // primary the standby's lag in seconds counts from its last replayed commit whenever
    // some non-commit WAL is still being replayed, which on a loaded machine went past
    // the sandbox's 5 s budget (2 suites in 3 on this machine under a fuzz build).
    let failover = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args([
            "failover",
            "--policy",
            &policy,
            "--yes",
            "--allow-data-loss",
            "--by",
            "tests/deploy.rs",
        ])
        .envs(aws)
        .env("NO_COLOR", "1")
        .output()
        .expect("lifeboat failover");
    assert!(failover.status.success(), "{}", text(&failover));
    let page = scrape(&[
        "lifeboat_runs_total{service=\"sandbox-orders\",direction=\"failover\",outcome=\"completed\"} 1",
        "lifeboat_run_duration_seconds_count{service=\"sandbox-orders\",direction=\"failover\",outcome=\"completed\"} 1",
        "lifeboat_active_region{service=\"sandbox-orders\",region=\"us-west-2\"} 1",
        "lifeboat_database_role{service=\"sandbox-orders\",region=\"us-west-2\",role=\"primary\"} 1",
        "lifeboat_unfenced_primary{service=\"sandbox-orders\",region=\"us-east-1\"} 0",
        "lifeboat_step_duration_seconds_count{",
    ])
    .await;
    for line in [
        "lifeboat_runs_total{service=\"sandbox-orders\",direction=\"failover\",outcome=\"completed\"} 1",
        "lifeboat_active_region{service=\"sandbox-orders\",region=\"us-west-2\"} 1",
        "lifeboat_database_role{service=\"sandbox-orders\",region=\"us-west-2\",role=\"primary\"} 1",
    ] {
        assert!(
            before.contains("lifeboat_probe_up{"),
            "before the failover:\n{before}"
        );
        assert!(page.contains(line), "no {line} after the failover:\n{page}");
    }
    let offered = exposed(&page);

    let mut used = BTreeSet::new();
    let mut qs = Vec::new();
    queries(&dashboard(), &mut qs);
    for q in &qs {
        used.extend(metric_names(q));
    }
    for expr in rule_expressions() {
        used.extend(metric_names(&expr));
    }
    used.remove("up");
    assert!(used.len() >= 15, "found only {used:?}");
    let missing: Vec<_> = used.difference(&offered).collect();
    assert!(
        missing.is_empty(),
        "the rules or the dashboard use metrics the daemon does not export: {missing:?}\n/metrics:\n{page}"
    );
    // Every series carries the service's name.
    assert!(
        page.contains("lifeboat_probe_up{service=\"sandbox-orders\""),
        "no service label:\n{page}"
    );
    drop(daemon);
}
