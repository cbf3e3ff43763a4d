//! A readiness report as people read it: one line per step of each runbook, with the
//! state, what was seen or why not, and the fix.

use std::fmt::Write as _;

use crate::core::readiness::{Readiness, ReadinessReport};
use crate::core::time::fmt_duration;

/// The full report (`lifeboat readiness`).
pub fn text(r: &ReadinessReport) -> String {
    let mut s = String::new();
    let (ready, not_ready, cannot) = r.counts();
    let _ = writeln!(
        s,
        "Readiness of `{}` at {} ({} serves; took {})",
        r.service,
        r.at,
        r.serving,
        fmt_duration(std::time::Duration::from_millis(r.took_ms))
    );
    for rb in &r.runbooks {
        let next = if rb.next {
            "runs next"
        } else {
            "runs after the other"
        };
        let _ = writeln!(
            s,
            "\n{} {} → {} ({next})",
            capitalized(rb.direction.as_str()),
            rb.from,
            rb.to
        );
        if let Some(e) = &rb.plan_error {
            line(&mut s, "plan", "", e);
        }
        for st in &rb.steps {
            line(
                &mut s,
                &st.step,
                &format!("{} in {}", st.kind, st.region),
                &st.readiness,
            );
        }
    }
    let _ = writeln!(s, "\nPermissions");
    line(&mut s, "permissions", "IAM", &r.permissions);
    let verdict = if r.ok() { "READY" } else { "NOT READY" };
    let _ = writeln!(
        s,
        "\n{verdict}: {ready} ready, {not_ready} not ready, {cannot} cannot tell"
    );
    s
}

fn line(s: &mut String, name: &str, what: &str, r: &Readiness) {
    let mark = match r {
        Readiness::Ready { .. } => "ok  ",
        Readiness::NotReady { .. } => "FAIL",
        Readiness::CannotTell { .. } => "??  ",
    };
    let _ = writeln!(s, "  {mark} {name:<22} {what}");
    let _ = writeln!(s, "       {}", r.detail());
    if let Some(fix) = r.fix() {
        let _ = writeln!(s, "       fix: {fix}");
    }
}

fn capitalized(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A few lines for `lifeboat status`: the verdict, and each step that is not ready.
pub fn summary(r: &ReadinessReport) -> String {
    let mut s = String::new();
    let (ready, not_ready, cannot) = r.counts();
    let verdict = if r.ok() { "ready" } else { "NOT READY" };
    let _ = writeln!(
        s,
        "{verdict} ({ready} ready, {not_ready} not ready, {cannot} cannot tell) at {}",
        r.at
    );
    for ((direction, step), why, fix) in r.not_ready() {
        let which = direction.map(|d| format!("{d} ")).unwrap_or_default();
        let _ = writeln!(s, "  {which}{step}: {why}");
        let _ = writeln!(s, "    fix: {fix}");
    }
    s
}
