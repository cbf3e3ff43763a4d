//! `lifeboat run --policies DIR`: one process runs every service of a directory, each
//! with its own journal, loop and routes under `/v1/services/NAME`, one `/metrics` with a
//! `service` label, and the CLI reaching each by name. A reload (the API or SIGHUP)
//! starts new files, restarts changed ones, refuses invalid ones (the service keeps its
//! last good policy) and stops removed ones, but never under a run in flight. One service
//! that hangs, waits for an approval or cannot start does not hold the others back.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lifeboat::contract::{ReloadReport, ServiceLine};
use lifeboat::sandbox::endpoint::{self, Faults, Mode};
use lifeboat::sandbox::fleet;
use support::daemon::Daemon;

/// A fleet service (`lifeboat::sandbox::fleet`): ten probes per interval against the
/// servers at `east` and `west`, manual mode, a failover that first waits for approval.
fn policy(name: &str, interval: &str, east: u16, west: u16) -> String {
    fleet::policy(&fleet::Service {
        name: name.to_string(),
        east,
        west,
        interval: humantime::parse_duration(interval).expect("an interval"),
    })
}

struct Fleet {
    daemon: Daemon,
    state: PathBuf,
    http: reqwest::Client,
}

impl Fleet {
    /// Starts `run --policies dir` and waits until it runs `expect` services.
    fn start(dir: &Path, state: &Path, expect: usize) -> Fleet {
        std::fs::create_dir_all(state).expect("the state directory");
        let first = state.join("a.db");
        let mut c = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
        c.args(["run", "--policies"])
            .arg(dir)
            .arg("--state-dir")
            .arg(state)
            .env("LIFEBOAT_API_TOKEN", "");
        let daemon = Daemon::start(c, &first, &state.join("daemon.log"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while lifeboat::daemon::discovery::find_fleet(state)
            .is_none_or(|f| f.services.len() != expect)
        {
            assert!(
                Instant::now() < deadline,
                "the daemon did not publish {expect} services; its log:\n{}",
                daemon.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Fleet {
            daemon,
            state: state.to_path_buf(),
            http: reqwest::Client::new(),
        }
    }

    async fn services(&self) -> Vec<ServiceLine> {
        self.http
            .get(format!("{}/v1/services", self.daemon.url))
            .send()
            .await
            .expect("GET /v1/services")
            .json()
            .await
            .expect("service lines")
    }

    async fn status(&self, name: &str) -> serde_json::Value {
        self.http
            .get(format!("{}/v1/services/{name}/status", self.daemon.url))
            .send()
            .await
            .expect("GET status")
            .json()
            .await
            .expect("status")
    }

    /// A control call: `POST path` with the daemon's token and `body`, if any.
    async fn post(&self, path: &str, body: Option<serde_json::Value>) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}{path}", self.daemon.url))
            .bearer_auth(&self.daemon.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    async fn reload(&self) -> ReloadReport {
        let r = self.post("/v1/reload", None).await;
        assert_eq!(r.status(), 200);
        r.json().await.expect("a reload report")
    }

    /// An operator's failover of `name` to us-west-2, once that region passes its probes
    /// (before, the guardrails refuse it); the run waits for its approval. Its id.
    async fn failover(&self, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        while verdict(&self.status(name).await, "us-west-2") != "healthy" {
            assert!(
                Instant::now() < deadline,
                "us-west-2 never healthy for {name}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let body = serde_json::json!({"by": "t", "expect_to": "us-west-2"});
        let r = self
            .post(&format!("/v1/services/{name}/failover"), Some(body))
            .await;
        let status = r.status();
        let reply: serde_json::Value = r.json().await.expect("a reply");
        assert_eq!(status, 200, "{reply}");
        reply["run_id"].as_str().expect("a run id").to_string()
    }

    /// `lifeboat ARGS --state-dir STATE`: exit status and stdout.
    fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .args(args)
            .arg("--state-dir")
            .arg(&self.state)
            .env("LIFEBOAT_API_TOKEN", "")
            .output()
            .expect("run the CLI");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Polls `/v1/services` until `ok` holds, at most 15 s.
    async fn until(&self, what: &str, ok: impl Fn(&[ServiceLine]) -> bool) -> Vec<ServiceLine> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let lines = self.services().await;
            if ok(&lines) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within 15 s; services {lines:#?}\nlog:\n{}",
                self.daemon.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A temporary policy directory and state directory, and a healthy server for each
/// region.
struct Place {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    state: PathBuf,
    east: u16,
    west: u16,
    _servers: [tokio::task::JoinHandle<()>; 2],
}

async fn place() -> Place {
    let tmp = support::tempdir();
    let (dir, state) = (tmp.path().join("policies"), tmp.path().join("state"));
    std::fs::create_dir_all(&dir).expect("dir");
    let (east, t1) = endpoint::spawn(Faults::new("us-east-1"), 0)
        .await
        .expect("east");
    let (west, t2) = endpoint::spawn(Faults::new("us-west-2"), 0)
        .await
        .expect("west");
    Place {
        _tmp: tmp,
        dir,
        state,
        east,
        west,
        _servers: [t1, t2],
    }
}

fn names(lines: &[ServiceLine]) -> Vec<&str> {
    lines.iter().map(|l| l.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_process_runs_every_policy_with_its_own_routes_metrics_and_cli_name() {
    let Place {
        _tmp,
        dir,
        state,
        east,
        west,
        _servers,
    } = place().await;
    for name in ["a", "b", "c"] {
        std::fs::write(
            dir.join(format!("{name}.toml")),
            policy(name, "500ms", east, west),
        )
        .expect("write");
    }
    let f = Fleet::start(&dir, &state, 3);
    let url = &f.daemon.url;

    let lines = f
        .until("every service serving from its primary", |l| {
            l.len() == 3 && l.iter().all(|s| s.state == "primary" && s.healthy)
        })
        .await;
    assert_eq!(names(&lines), ["a", "b", "c"]);
    for name in ["a", "b", "c"] {
        assert_eq!(f.status(name).await["service"], name);
        // Each has its own journal, beside which the CLI finds its routes.
        let published =
            lifeboat::daemon::discovery::find(&state.join(format!("{name}.db"))).expect(name);
        assert_eq!(published.service.as_deref(), Some(name));
    }
    // With several services the single-service routes say how to address one.
    let r = f
        .http
        .get(format!("{url}/v1/status"))
        .send()
        .await
        .expect("GET /v1/status");
    assert_eq!(r.status(), 404);
    let text = r.text().await.expect("text");
    assert!(
        text.contains("runs 3 services") && text.contains("/v1/services/NAME/status"),
        "{text}"
    );
    let r = f
        .http
        .get(format!("{url}/v1/services/nope/status"))
        .send()
        .await
        .expect("GET unknown service");
    assert_eq!(r.status(), 404);
    assert!(r.text().await.expect("text").contains("no service `nope`"));

    // One exposition: every family described once, every service's series in it.
    let text = f
        .http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let mut described = std::collections::HashSet::new();
    for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert!(described.insert(l), "described twice: {l}");
    }
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("parses as Prometheus text");
    let mut with_state: Vec<&str> = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == "lifeboat_controller_state" && s.labels.get("state") == Some("primary")
        })
        .filter_map(|s| s.labels.get("service"))
        .collect();
    with_state.sort();
    assert_eq!(with_state, ["a", "b", "c"], "{text}");

    // The CLI: `status` lists them all; `-s NAME` picks one for any command.
    let (ok, out, err) = f.cli(&["status"]);
    assert!(ok, "{out}{err}");
    for name in ["a ", "b ", "c "] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(name) && l.contains("primary")),
            "{out}"
        );
    }
    let (ok, out, err) = f.cli(&[
        "pause",
        "-s",
        "b",
        "--by",
        "tester",
        "--reason",
        "fleet test",
    ]);
    assert!(ok, "{out}{err}");
    assert_eq!(f.status("b").await["state"], "paused");
    assert_eq!(f.status("a").await["state"], "primary");
    let (ok, out, _) = f.cli(&["status", "-s", "b", "--json"]);
    assert!(!ok, "a paused service is not healthy");
    let view: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(view["service"], "b");
    assert_eq!(view["state"], "paused");
    let (ok, out, err) = f.cli(&["status", "--json"]);
    assert!(!ok, "one service is paused: {out}{err}");
    let lines: Vec<ServiceLine> = serde_json::from_str(&out).expect("json lines");
    assert_eq!(lines.len(), 3);
    let (ok, _, err) = f.cli(&["failover", "--dry-run", "--by", "t"]);
    assert!(!ok);
    assert!(
        err.contains("runs 3 services") && err.contains("-s NAME"),
        "{err}"
    );
    let (ok, _, err) = f.cli(&["status", "-s", "zzz"]);
    assert!(!ok);
    assert!(
        err.contains("no service `zzz`") && err.contains("a, b, c"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_starts_restarts_refuses_and_stops_but_never_under_a_run() {
    let Place {
        _tmp,
        dir,
        state,
        east,
        west,
        _servers,
    } = place().await;
    let file = |n: &str| dir.join(format!("{n}.toml"));
    std::fs::write(file("a"), policy("a", "500ms", east, west)).expect("a");
    std::fs::write(file("b"), policy("b", "500ms", east, west)).expect("b");
    let f = Fleet::start(&dir, &state, 2);

    // Nothing changed: nothing restarts (asked as an operator would, from the CLI).
    let (ok, out, err) = f.cli(&["reload", "--json"]);
    assert!(ok, "{out}{err}");
    let r: lifeboat::contract::ReloadReport = serde_json::from_str(&out).expect("a report");
    assert_eq!(r.unchanged, ["a", "b"], "{r:?}");
    assert!(r.started.is_empty() && r.restarted.is_empty() && r.refused.is_empty());

    // The directory gone for a moment (a deploy swapping it): nothing stops.
    let aside = dir.with_extension("aside");
    std::fs::rename(&dir, &aside).expect("move the directory away");
    let r = f.reload().await;
    std::fs::rename(&aside, &dir).expect("move it back");
    assert!(r.stopped.is_empty(), "{r:?}");
    assert_eq!(r.refused.len(), 1, "{r:?}");
    assert!(r.refused[0].reason.contains("nothing was changed"), "{r:?}");
    assert_eq!(names(&f.services().await), ["a", "b"]);

    // A new file, a changed one and a broken one.
    std::fs::write(file("c"), policy("c", "500ms", east, west)).expect("c");
    std::fs::write(file("b"), policy("b", "400ms", east, west)).expect("b");
    let good_a = std::fs::read_to_string(file("a")).expect("a");
    std::fs::write(
        file("a"),
        good_a.replace("interval = \"500ms\"", "interval = 5"),
    )
    .expect("a");
    let r = f.reload().await;
    assert_eq!(r.started, ["c"], "{r:?}");
    assert_eq!(r.restarted, ["b"], "{r:?}");
    assert_eq!(r.refused.len(), 1, "{r:?}");
    let refused = &r.refused[0];
    assert_eq!(refused.service.as_deref(), Some("a"));
    // `validate`'s diagnostics: the file, the line, the field.
    assert!(
        refused.reason.contains("a.toml") && refused.reason.contains("interval"),
        "{}",
        refused.reason
    );
    let lines = f
        .until("a refused but running, b and c serving", |l| {
            names(l) == ["a", "b", "c"] && l.iter().all(|s| s.state == "primary")
        })
        .await;
    assert!(lines[0].policy_error.is_some());
    assert!(lines[1].policy_error.is_none() && lines[2].policy_error.is_none());
    let metrics = f
        .http
        .get(format!("{}/metrics", f.daemon.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("lifeboat_policy_refused{service=\"a\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lifeboat_policy_refused{service=\"b\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lifeboat_detection_interval_seconds{service=\"b\"} 0.4"),
        "the restarted service runs the new policy:\n{metrics}"
    );
    let (_, out, _) = f.cli(&["status"]);
    assert!(
        out.contains("a: its policy file") && out.contains("was refused"),
        "{out}"
    );

    // A run in flight on c (an operator's failover waiting for approval): removing its
    // file stops nothing until the run ends.
    let run = f.failover("c").await;
    std::fs::remove_file(file("c")).expect("rm c");
    std::fs::write(file("a"), &good_a).expect("a fixed");
    let r = f.reload().await;
    assert!(r.stopped.is_empty(), "{r:?}");
    assert_eq!(r.deferred.len(), 1, "{r:?}");
    assert_eq!(r.deferred[0].service.as_deref(), Some("c"));
    assert!(r.deferred[0].reason.contains(&run), "{r:?}");
    assert!(r.refused.is_empty(), "a is fixed: {r:?}");
    assert_eq!(names(&f.services().await), ["a", "b", "c"]);
    // The same from the CLI: exit 1, what was put off and why.
    let (ok, out, _) = f.cli(&["reload"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("put off: c") && out.contains(&run) && out.contains("Reload again once"),
        "{out}"
    );

    let body = serde_json::json!({"by": "t", "reason": "test"});
    let aborted = f
        .post(&format!("/v1/services/c/runs/{run}/abort"), Some(body))
        .await;
    assert_eq!(aborted.status(), 200, "{:?}", aborted.text().await);
    f.until("c's run over", |l| {
        l.iter().any(|s| s.name == "c" && s.run.is_none())
    })
    .await;
    // SIGHUP reloads too; b's file goes at the same time.
    std::fs::remove_file(file("b")).expect("rm b");
    let pid = f.daemon.child.id().to_string();
    let hup = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(hup.success());
    let lines = f
        .until("b and c stopped, a fixed", |l| {
            names(l) == ["a"] && l[0].policy_error.is_none()
        })
        .await;
    assert_eq!(lines[0].state, "primary");
    // A stopped service's journal is free again and no longer published.
    assert!(lifeboat::daemon::discovery::find(&state.join("b.db")).is_none());
    assert!(lifeboat::daemon::discovery::find(&state.join("c.db")).is_none());
    // Exactly one service: the single-service routes answer for it again.
    let s: serde_json::Value = f
        .http
        .get(format!("{}/v1/status", f.daemon.url))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(s["service"], "a");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_service_hanging_waiting_or_broken_does_not_hold_the_others_back() {
    let tmp = support::tempdir();
    let (dir, state) = (tmp.path().join("policies"), tmp.path().join("state"));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::create_dir_all(&state).expect("state");
    let hung_faults = Faults::new("us-east-1");
    let (hung, _t0) = endpoint::spawn(hung_faults.clone(), 0).await.expect("hung");
    let east_faults = Faults::new("us-east-1");
    let (east, _t1) = endpoint::spawn(east_faults.clone(), 0).await.expect("east");
    let (west, _t2) = endpoint::spawn(Faults::new("us-west-2"), 0)
        .await
        .expect("west");
    // Eight healthy services, one whose primary will hang, one waiting for an approval,
    // one whose journal is damaged.
    for i in 0..8 {
        let name = format!("s{i}");
        std::fs::write(
            dir.join(format!("{name}.toml")),
            policy(&name, "500ms", east, west),
        )
        .expect("write");
    }
    std::fs::write(dir.join("a.toml"), policy("a", "500ms", hung, west)).expect("hung");
    std::fs::write(
        dir.join("waiting.toml"),
        policy("waiting", "500ms", west, west),
    )
    .expect("waiting");
    std::fs::write(
        dir.join("broken.toml"),
        policy("broken", "500ms", east, west),
    )
    .expect("broken");
    std::fs::write(state.join("broken.db"), b"this is not a journal").expect("damage");
    let f = Fleet::start(&dir, &state, 10);
    let lines = f
        .until("ten services serving", |l| {
            l.len() == 10 && l.iter().all(|s| s.state == "primary")
        })
        .await;
    assert!(!names(&lines).contains(&"broken"));
    let log = f.daemon.log_tail();
    assert!(
        log.contains("broken"),
        "the damaged journal is reported:\n{log}"
    );

    // One service waits for an approval, one's primary never answers.
    f.failover("waiting").await;
    hung_faults.set_mode(Mode::Hang);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Then the healthy services' primary fails: each of them decides as fast as alone.
    // Manual mode: the decision is "down, an operator may fail over".
    let fault = Instant::now();
    east_faults.set_mode(Mode::Error);
    let healthy: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
    let deadline = fault + Duration::from_secs(10);
    let mut pending = healthy.clone();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for name in pending {
            if east_verdict(&f.status(&name).await) != "down" {
                still.push(name);
            }
        }
        pending = still;
        assert!(
            Instant::now() < deadline,
            "{pending:?} did not see their primary down within 10 s:\n{}",
            f.daemon.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = fault.elapsed();
    // Three failed rounds at 500 ms: one to two seconds alone. A service held back by the hung one would wait out its timeouts every round,
    // or never decide.
    // (6 s leaves room for a loaded CI host; a shared, blocked loop never decides.)
    eprintln!("the eight healthy services saw their primary down {took:?} after the fault");
    assert!(took < Duration::from_secs(6), "took {took:?}");
    // The waiting service still waits, the hung one's probe still reports timeouts.
    let waiting = f.status("waiting").await;
    assert!(waiting["current_run"]["waiting"].is_string(), "{waiting:#}");
    let a = f.status("a").await;
    assert_ne!(east_verdict(&a), "healthy", "{a:#}");
}

/// The verdict on us-east-1 in a status view.
fn east_verdict(status: &serde_json::Value) -> String {
    verdict(status, "us-east-1")
}

/// The verdict on `region` in a status view.
fn verdict(status: &serde_json::Value, region: &str) -> String {
    status["regions"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["region"] == region))
        .and_then(|r| r["verdict"]["verdict"].as_str())
        .unwrap_or("?")
        .to_string()
}
