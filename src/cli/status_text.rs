//! `lifeboat status` for people: the state and why, each region, each probe, the runs.

use std::fmt::Write as _;

use crate::core::controller::Leadership;
use crate::core::health::Verdict;
use crate::core::time::fmt_duration;
use crate::daemon::status::StatusView;

fn paint(color: bool, code: &str, s: &str) -> String {
    if color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn verdict_text(v: &Verdict) -> String {
    v.to_string()
}

pub fn render(v: &StatusView, color: bool) -> String {
    let mut s = String::new();
    let state = match v.state.as_str() {
        "primary" | "on_secondary" => paint(color, "32", &v.state),
        "blocked" | "suspect" | "paused" => paint(color, "33", &v.state),
        _ => paint(color, "36", &v.state),
    };
    let _ = writeln!(s, "{}: {state} (mode {})", v.service, v.mode.as_str());
    let where_ = if v.active == v.primary {
        "its primary region".to_string()
    } else {
        format!("a secondary; the primary is {}", v.primary)
    };
    let _ = writeln!(s, "  serving from {} ({where_})", v.active);
    let _ = writeln!(s, "  as of {} — {}", v.observed_at, v.source);
    match &v.leadership {
        Leadership::Sole => {}
        Leadership::Leading { epoch } => {
            let _ = writeln!(
                s,
                "  this controller leads the service (etcd, epoch {epoch})"
            );
        }
        Leadership::Following { leader: Some(l) } => {
            let _ = writeln!(
                s,
                "  {l} leads the service; this controller watches and acts on nothing"
            );
        }
        Leadership::Following { leader: None } => {
            let _ = writeln!(
                s,
                "  no controller is known to lead the service yet; this one acts on nothing until elected"
            );
        }
    }
    if v.leadership != Leadership::Sole && !v.observers.is_empty() {
        let (down, who) = crate::core::controller::ObserverVote::tally(&v.observers);
        let _ = writeln!(
            s,
            "  votes on {}: {down} of {} see it down, {} needed ({})",
            v.active,
            v.observers.len(),
            v.quorum,
            who.join("; ")
        );
    }
    let (why, next) = match v.quorum_explanation() {
        Some((why, next)) => (Some(why), Some(next)),
        None => (v.why.clone(), v.next_step.clone()),
    };
    if let Some(why) = &why {
        let _ = writeln!(s, "\n  {} {why}", paint(color, "1;33", "why:"));
        if let Some(next) = &next {
            let _ = writeln!(s, "  {} {next}", paint(color, "1", "next:"));
        }
    }
    if let Some(until) = v.frozen_until {
        let _ = writeln!(
            s,
            "  automatic decisions are frozen until {until} (the controller distrusted its own clock or loop)"
        );
    }

    let _ = writeln!(s, "\nRegions");
    for r in &v.regions {
        let verdict = verdict_text(&r.verdict);
        let verdict = if r.verdict.is_healthy() {
            paint(color, "32", &verdict)
        } else {
            paint(color, "31", &verdict)
        };
        let mut extra = Vec::new();
        if let Some(d) = r.healthy_for {
            extra.push(format!("healthy for {}", fmt_duration(d)));
        }
        if let Some(role) = &r.role {
            extra.push(format!("database {role}"));
        }
        if let Some(l) = r.replica_lag {
            extra.push(format!("replica lag {}", fmt_duration(l)));
        }
        match r.in_sync {
            Some(true) => extra.push("in sync".to_string()),
            Some(false) => extra.push("not in sync".to_string()),
            None => {}
        }
        let serving = if r.serving { "serving" } else { "" };
        let _ = writeln!(
            s,
            "  {:<12} {:<8} {verdict:<24} {}",
            r.region.as_str(),
            serving,
            extra.join(", ")
        );
    }

    let _ = writeln!(s, "\nProbes");
    let _ = writeln!(
        s,
        "  {:<10} {:<12} {:<16} {:<10} {:<6} {:>8} {:>6}  DETAIL / LAST ERROR",
        "COMPONENT", "REGION", "PROBE", "KIND", "STATUS", "LATENCY", "FAILS"
    );
    for p in &v.probes {
        let status = if p.ok {
            paint(color, "32", "ok    ")
        } else {
            paint(color, "31", "FAIL  ")
        };
        let name = if p.critical {
            p.probe.clone()
        } else {
            format!("{} (adv.)", p.probe)
        };
        let note = if p.ok {
            p.detail.clone().unwrap_or_default()
        } else {
            p.last_error.clone().unwrap_or_default()
        };
        let _ = writeln!(
            s,
            "  {:<10} {:<12} {:<16} {:<10} {status} {:>8} {:>6}  {note}",
            p.component,
            p.region.as_str(),
            name,
            p.kind,
            format!("{}ms", p.latency.as_millis()),
            p.consecutive_failures
        );
    }

    if !v.witnesses.is_empty() {
        let _ = writeln!(
            s,
            "\nWitnesses (an automatic failover needs {} of {} observers to see the outage)",
            v.quorum,
            v.witnesses.len() + 1
        );
        for w in &v.witnesses {
            let said = match (&w.answered_ago, w.fresh) {
                (None, _) => "has not answered yet".to_string(),
                (Some(ago), fresh) => {
                    let sees = if w.sees_down.is_empty() {
                        "sees no region down".to_string()
                    } else {
                        let names: Vec<&str> = w.sees_down.iter().map(|r| r.as_str()).collect();
                        format!("sees {} down", names.join(", "))
                    };
                    let stale = if fresh { "" } else { " — too old to count" };
                    format!("{sees} ({} ago{stale})", fmt_duration(*ago))
                }
            };
            let err = w
                .last_error
                .as_ref()
                .map(|e| format!("; last poll failed: {e}"))
                .unwrap_or_default();
            let _ = writeln!(s, "  {:<28} {said}{err}", w.url);
        }
    }

    if let Some(r) = &v.readiness {
        let _ = write!(s, "\nReadiness: ");
        let text = crate::readiness::render::summary(r);
        let painted = if r.ok() {
            text
        } else {
            text.replacen("NOT READY", &paint(color, "1;31", "NOT READY"), 1)
        };
        s.push_str(&painted);
        let _ = writeln!(s, "  (lifeboat readiness shows every step)");
    }

    if let Some(run) = &v.current_run {
        let waiting = run
            .waiting
            .as_ref()
            .map(|w| format!(" — waiting for approval: {w}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "\nCurrent run: {} ({} to {}){waiting}",
            run.run_id, run.direction, run.to
        );
    }
    if let Some(r) = &v.last_run {
        let ended = r
            .finished_at
            .map(|t| format!(" at {t}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "\nLast run: {} {} {} → {}: {}{ended} (took {}; lifeboat show {})",
            r.run_id,
            r.direction,
            r.from,
            r.to,
            r.status,
            fmt_duration(r.duration()),
            r.run_id
        );
    }
    if let Some(d) = &v.last_decision {
        let _ = writeln!(s, "Last decision, with its evidence:");
        for line in super::history::render_decisions(std::slice::from_ref(d)).lines() {
            let _ = writeln!(s, "  {line}");
        }
    }
    let _ = writeln!(
        s,
        "Worst-case detection time: {}",
        fmt_duration(v.worst_case_detection)
    );
    if !v.detection_rule.is_empty() {
        let _ = writeln!(s, "Detection rule: {}.", v.detection_rule);
    }
    s
}
