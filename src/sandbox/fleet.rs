//! Fleets for tests and benchmarks: N copies of a service whose API, workers and storage
//! probes point at local fault-switchable servers (`super::endpoint`, which answers HTTP
//! and accepts TCP on the same port, so one server per region serves every service).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where one service's probes look, and how often.
#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    /// The primary region's (us-east-1) server.
    pub east: u16,
    /// The secondary region's (us-west-2) server.
    pub west: u16,
    pub interval: Duration,
}

/// The policy of one fleet service: per region two HTTP probes of the API (critical),
/// one HTTP probe of the workers and two TCP probes of storage (not critical), so ten
/// probe rounds per interval; manual mode, so an outage is a decision and never a run;
/// the failover runbook first waits for an approval, so an operator's failover is a run
/// in flight until approved or aborted.
pub fn policy(s: &Service) -> String {
    let mut probes = String::new();
    for (probe, component, kind, target) in [
        ("api", "api", "http", "api"),
        ("api-deep", "api", "http", "api"),
        ("workers", "workers", "http", "workers"),
        ("storage", "storage", "tcp", "storage"),
        ("storage-2", "storage", "tcp", "storage"),
    ] {
        let critical = if component == "api" {
            ""
        } else {
            "critical = false\n"
        };
        probes.push_str(&format!(
            "[[probes]]\nname = \"{probe}\"\ncomponent = \"{component}\"\nkind = \"{kind}\"\ntarget = \"{target}\"\n{critical}\n"
        ));
    }
    let (name, east, west) = (&s.name, s.east, s.west);
    let interval = humantime::format_duration(s.interval);
    format!(
        r#"# A fleet service (lifeboat::sandbox::fleet): local servers, manual mode.
[service]
name = "{name}"

[regions]
primary = "us-east-1"
secondaries = ["us-west-2"]

[detection]
interval = "{interval}"
timeout = "200ms"
mode = "manual"

[readiness]
every = "1d"

[targets.api]
kind = "http"
regions.us-east-1.url = "http://127.0.0.1:{east}/health"
regions.us-west-2.url = "http://127.0.0.1:{west}/health"

[targets.workers]
kind = "http"
regions.us-east-1.url = "http://127.0.0.1:{east}/health"
regions.us-west-2.url = "http://127.0.0.1:{west}/health"

[targets.storage]
kind = "tcp"
regions.us-east-1 = {{ host = "127.0.0.1", port = {east} }}
regions.us-west-2 = {{ host = "127.0.0.1", port = {west} }}

{probes}[[failover.steps]]
name = "confirm"
kind = "manual_approval"
prompt = "go?"

[[failback.steps]]
name = "healthy"
kind = "wait_healthy"
"#
    )
}

/// Writes `<dir>/<name>.toml` for each service; returns the files.
pub fn write(dir: &Path, services: &[Service]) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    services
        .iter()
        .map(|s| {
            let path = dir.join(format!("{}.toml", s.name));
            std::fs::write(&path, policy(s))?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_service_s_policy_is_valid_and_has_ten_probe_rounds_per_interval() {
        let s = Service {
            name: "svc-007".into(),
            east: 7001,
            west: 7002,
            interval: Duration::from_millis(500),
        };
        let loaded = crate::policy::load_str(Path::new("svc-007.toml"), policy(&s));
        let p = loaded
            .policy
            .unwrap_or_else(|| panic!("{}", loaded.report.render(false)));
        assert_eq!(p.service, "svc-007");
        assert_eq!(p.detection.interval, Duration::from_millis(500));
        let rounds: usize = p.probes.iter().map(|p| p.regions.len()).sum();
        assert_eq!(rounds, 10);
    }
}
