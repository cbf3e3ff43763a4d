//! The CLI's side of a daemon that runs several services (`run --policies`): finding a
//! service by name, and `status` listing them all.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::control_args::Service;
use super::journal_args::DEFAULT_POLICY;
use crate::contract::ServiceLine;
use crate::daemon::discovery;

/// The policy file of service `name` of the daemon running from `state_dir`.
///
/// Errors: no such daemon runs, or it runs no service by that name (the message lists
/// those it runs).
pub fn policy_of(name: &str, state_dir: &Path) -> anyhow::Result<PathBuf> {
    let Some(fleet) = discovery::find_fleet(state_dir) else {
        anyhow::bail!(
            "-s {name}: no daemon started with --policies is running here ({} not found or its daemon is gone); start one (lifeboat run --policies DIR), or name the policy file with --policy",
            discovery::fleet_path(state_dir).display()
        );
    };
    match fleet.services.iter().find(|m| m.name == name) {
        Some(m) => m.policy.clone().ok_or_else(|| {
            anyhow::anyhow!("service `{name}` runs from no policy file; name it with --policy")
        }),
        None => anyhow::bail!(
            "the daemon (pid {}) runs no service `{name}`; it runs: {}",
            fleet.pid,
            names(&fleet)
        ),
    }
}

fn names(fleet: &discovery::FleetPublished) -> String {
    fleet
        .services
        .iter()
        .map(|m| m.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which policy file an operator command means: `--policy`, `-s NAME`, the only service
/// of a daemon started with `--policies`, else the default. With several services and
/// neither option, says to pick one.
pub fn policy_file(service: &Service, state_dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(p) = &service.policy {
        return Ok(p.clone());
    }
    if let Some(name) = &service.name {
        return policy_of(name, state_dir);
    }
    match discovery::find_fleet(state_dir) {
        Some(f) if f.services.len() == 1 => policy_of(&f.services[0].name, state_dir),
        Some(f) if !f.services.is_empty() => anyhow::bail!(
            "the daemon (pid {}) runs {} services: name one with -s NAME ({}); `lifeboat status` lists them",
            f.pid,
            f.services.len(),
            names(&f)
        ),
        _ => Ok(PathBuf::from(DEFAULT_POLICY)),
    }
}

/// `lifeboat status` on a daemon that runs several services: one line each.
pub fn render(lines: &[ServiceLine]) -> String {
    let width = lines.iter().map(|l| l.name.len()).max().unwrap_or(7).max(7);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<width$}  {:<13}  {:<14}  WHY",
        "SERVICE", "STATE", "SERVING"
    );
    for l in lines {
        let why = match (&l.run, &l.why) {
            (Some(run), _) => format!("run {run} in progress"),
            (None, Some(why)) => why.clone(),
            (None, None) => "-".to_string(),
        };
        let _ = writeln!(
            s,
            "{:<width$}  {:<13}  {:<14}  {why}",
            l.name, l.state, l.active
        );
    }
    let refused: Vec<_> = lines.iter().filter(|l| l.policy_error.is_some()).collect();
    for l in &refused {
        let _ = writeln!(
            s,
            "\n{}: its policy file {} was refused at the last reload; the service runs on its last good policy. Fix the file (lifeboat validate {}) and reload (lifeboat reload).",
            l.name,
            l.policy.as_deref().unwrap_or("?"),
            l.policy.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(
        s,
        "\n{} service{}; details of one: lifeboat status -s NAME",
        lines.len(),
        if lines.len() == 1 { "" } else { "s" }
    );
    s
}

/// What `lifeboat reload` prints: each kind of change on a line, then every refusal and
/// postponement with its reason.
pub fn render_reload(r: &crate::contract::ReloadReport) -> String {
    let mut s = String::new();
    for (what, names) in [
        ("started", &r.started),
        ("restarted", &r.restarted),
        ("stopped", &r.stopped),
    ] {
        if !names.is_empty() {
            let _ = writeln!(s, "{what}: {}", names.join(", "));
        }
    }
    if !r.unchanged.is_empty() {
        let _ = writeln!(s, "unchanged: {} service(s)", r.unchanged.len());
    }
    for (what, list) in [("refused", &r.refused), ("put off", &r.deferred)] {
        for f in list {
            let who = match (&f.service, &f.file) {
                (Some(service), Some(file)) => format!("{service} ({file})"),
                (Some(service), None) => service.clone(),
                (None, Some(file)) => file.clone(),
                (None, None) => "the policy directory".to_string(),
            };
            let _ = writeln!(s, "{what}: {who}:\n  {}", f.reason.replace('\n', "\n  "));
        }
    }
    if !r.refused.is_empty() {
        let _ = writeln!(
            s,
            "A refused file's service keeps running on its last good policy: fix the file (lifeboat validate FILE) and reload again."
        );
    }
    if !r.deferred.is_empty() {
        let _ = writeln!(s, "Reload again once the run in flight ends.");
    }
    if s.is_empty() {
        s.push_str("nothing to reload: no policy file\n");
    }
    s
}
