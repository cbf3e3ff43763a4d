//! The policy a drill runs: the scenario's own, or a scratch copy beside it (so its
//! relative paths still resolve) with some probes made advisory or some detection
//! settings replaced, for drills about what a non-critical failure must not do and for
//! measuring one detection rule against another on the same outage.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::scenario::{Meta, PAUSE_STEP, PauseStep};

/// The policy to run `meta`'s drill with: `policy` itself when the drill changes
/// nothing, else a scratch copy the caller removes when the drill ends.
pub fn drill_policy(meta: &Meta, policy: &Path) -> anyhow::Result<PathBuf> {
    let detection = meta.detection.settings();
    if meta.advisory.is_empty() && detection.is_empty() && meta.pause_step.is_none() {
        return Ok(policy.to_path_buf());
    }
    let p = policy;
    let text = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
    let mut doc: toml::Table = text
        .parse()
        .with_context(|| format!("parse {}", p.display()))?;
    let probes = doc
        .get_mut("probes")
        .and_then(|v| v.as_array_mut())
        .with_context(|| format!("{} has no [[probes]]", p.display()))?;
    for name in &meta.advisory {
        let probe = probes
            .iter_mut()
            .filter_map(|v| v.as_table_mut())
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(name.as_str()))
            .with_context(|| {
                format!(
                    "the drill makes probe `{name}` advisory, but {} has no such probe",
                    p.display()
                )
            })?;
        probe.insert("critical".into(), toml::Value::Boolean(false));
    }
    if !detection.is_empty() {
        let table = doc
            .entry("detection")
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .with_context(|| format!("{}: [detection] is not a table", p.display()))?;
        for (key, value) in &detection {
            table.insert((*key).into(), toml::Value::String(value.clone()));
        }
    }
    let mut changes = Vec::new();
    if let Some(pause) = &meta.pause_step {
        add_pause_step(&mut doc, pause, p)?;
        changes.push(format!(
            "a `{PAUSE_STEP}` step sleeping {} after `{}`",
            pause.sleep, pause.after
        ));
    }
    if !meta.advisory.is_empty() {
        changes.push(format!(
            "probes made advisory: {}",
            meta.advisory.join(", ")
        ));
    }
    if !detection.is_empty() {
        let set: Vec<String> = detection
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        changes.push(format!("detection: {}", set.join(", ")));
    }
    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("policy");
    let copy = p.with_file_name(format!(".{stem}.drill-{}.toml", meta.name));
    let header = format!(
        "# A scratch copy of {} for the drill `{}` ({}); removed when the drill ends.\n",
        p.display(),
        meta.name,
        changes.join("; ")
    );
    std::fs::write(&copy, header + &toml::to_string(&doc)?)
        .with_context(|| format!("write {}", copy.display()))?;
    Ok(copy)
}

/// Inserts a `command` step that sleeps after `pause.after` in the failover runbook, in a
/// stage of its own.
fn add_pause_step(doc: &mut toml::Table, pause: &PauseStep, p: &Path) -> anyhow::Result<()> {
    let sleep = humantime::parse_duration(&pause.sleep).map_err(|e| {
        anyhow::anyhow!(
            "pause_step sleep \"{}\": {e}; write e.g. \"4s\"",
            pause.sleep
        )
    })?;
    let steps = doc
        .get_mut("failover")
        .and_then(|f| f.get_mut("steps"))
        .and_then(|v| v.as_array_mut())
        .with_context(|| format!("{} has no [[failover.steps]]", p.display()))?;
    let at = steps
        .iter()
        .position(|v| v.get("name").and_then(|n| n.as_str()) == Some(pause.after.as_str()))
        .with_context(|| {
            format!(
                "the drill pauses after failover step `{}`, but {} has no such step",
                pause.after,
                p.display()
            )
        })?;
    let mut step = toml::Table::new();
    step.insert("name".into(), PAUSE_STEP.into());
    step.insert("kind".into(), "command".into());
    step.insert(
        "run".into(),
        toml::Value::Array(vec![
            "sleep".into(),
            format!("{:.3}", sleep.as_secs_f64()).into(),
        ]),
    );
    steps.insert(at + 1, toml::Value::Table(step));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::scenario::Scenario;

    const POLICY: &str = r#"
[detection]
interval = "1s"
timeout = "250ms"
confirm_interval = "250ms"

[[probes]]
name = "api"

[[probes]]
name = "storage"
"#;

    fn scenario(drill: &str) -> Scenario {
        toml::from_str(&format!(
            "[drill]\n{drill}\n[[faults]]\nkind = \"api_error\"\n[expect]\nfailover = true\n"
        ))
        .expect("a scenario")
    }

    /// The drill's policy for a copy of `POLICY`, and what it says; the directory goes
    /// when the first element is dropped.
    fn run(drill: &str) -> (tempfile::TempDir, PathBuf, toml::Table) {
        let dir = tempfile::tempdir().expect("a scratch dir");
        let policy = dir.path().join("sandbox.toml");
        std::fs::write(&policy, POLICY).expect("write the policy");
        let s = scenario(drill);
        let copy = drill_policy(&s.drill, &policy).expect("the drill's policy");
        let doc = std::fs::read_to_string(&copy)
            .expect("read the copy")
            .parse()
            .expect("parse the copy");
        (dir, copy, doc)
    }

    #[test]
    fn a_drill_that_changes_nothing_runs_the_policy_itself() {
        let (_dir, copy, _) = run("name = \"plain\"");
        assert_eq!(
            copy.file_name().and_then(|n| n.to_str()),
            Some("sandbox.toml")
        );
    }

    #[test]
    fn a_drill_can_run_the_old_rule_by_replacing_detection_settings_in_a_copy() {
        let (_dir, copy, doc) = run(
            "name = \"old-rule\"\n[drill.detection]\nconfirm_interval = \"1s\"\nmin_failure_span = \"1800ms\"",
        );
        assert_eq!(
            copy.file_name().and_then(|n| n.to_str()),
            Some(".sandbox.drill-old-rule.toml")
        );
        let d = doc["detection"].as_table().expect("[detection]");
        assert_eq!(d["confirm_interval"].as_str(), Some("1s"));
        assert_eq!(d["min_failure_span"].as_str(), Some("1800ms"));
        assert_eq!(d["interval"].as_str(), Some("1s"), "the rest is kept");
        let probes = doc["probes"].as_array().expect("[[probes]]");
        assert!(probes.iter().all(|p| p.get("critical").is_none()));
    }

    #[test]
    fn a_pause_step_goes_right_after_the_step_it_names() {
        let dir = tempfile::tempdir().expect("a scratch dir");
        let policy = dir.path().join("sandbox.toml");
        let text = format!(
            "{POLICY}\n[[failover.steps]]\nname = \"promote\"\n[[failover.steps]]\nname = \"dns\"\n"
        );
        std::fs::write(&policy, text).expect("write the policy");
        let s =
            scenario("name = \"mid\"\n[drill.pause_step]\nafter = \"promote\"\nsleep = \"1500ms\"");
        let copy = drill_policy(&s.drill, &policy).expect("the drill's policy");
        let doc: toml::Table = std::fs::read_to_string(&copy)
            .expect("read")
            .parse()
            .expect("parse");
        let steps = doc["failover"]["steps"].as_array().expect("steps");
        let names: Vec<&str> = steps.iter().filter_map(|s| s["name"].as_str()).collect();
        assert_eq!(names, ["promote", PAUSE_STEP, "dns"]);
        assert_eq!(steps[1]["run"][1].as_str(), Some("1.500"));

        let s = scenario("name = \"mid\"\n[drill.pause_step]\nafter = \"nope\"\nsleep = \"1s\"");
        let e = drill_policy(&s.drill, &policy).expect_err("no such step");
        assert!(e.to_string().contains("no such step"), "{e}");
    }

    #[test]
    fn a_drill_makes_the_probes_it_names_advisory_and_no_others() {
        let (_dir, _, doc) = run("name = \"half\"\nadvisory = [\"storage\"]");
        let probes = doc["probes"].as_array().expect("[[probes]]");
        assert_eq!(probes[0].get("critical"), None);
        assert_eq!(probes[1]["critical"].as_bool(), Some(false));
    }
}
