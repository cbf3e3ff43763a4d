//! A run report in Markdown (for a ticket or a post-mortem) and in HTML (one
//! self-contained page with the steps drawn on a timeline). Everything shown comes from
//! the journal; nothing here reads a secret (the journal holds none).

use std::fmt::Write as _;

use super::RunReport;
use crate::core::controller::Decision;
use crate::core::time::{Ts, fmt_duration};
use crate::journal::StepRecord;

fn took(r: &RunReport) -> String {
    fmt_duration(r.run.duration())
}

/// The decision's evidence in words, with the target it names.
fn evidence_lines(d: &Decision) -> Vec<String> {
    let mut out = d.evidence.lines();
    if let Some(t) = &d.evidence.target {
        out.push(format!("target: {t}"));
    }
    out
}

fn offset(at: Ts, start: Ts) -> String {
    format!("+{}", fmt_duration(at.since(start)))
}

fn step_took(s: &StepRecord) -> String {
    match (s.started_at, s.finished_at) {
        (Some(a), Some(b)) => fmt_duration(b.since(a)),
        (Some(_), None) => "unfinished".into(),
        _ => "not started".into(),
    }
}

/// Markdown: headline, decision and evidence, steps with attempts, approvals, timeline.
pub fn markdown(r: &RunReport) -> String {
    let run = &r.run;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# {} {} of `{}`: {} → {}\n",
        run.direction, run.run_id, run.service, run.from, run.to
    );
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| status | **{}** |", run.status);
    let _ = writeln!(
        s,
        "| started | {} by {} |",
        run.created_at,
        md(&run.started_by)
    );
    if let Some(end) = run.finished_at {
        let _ = writeln!(s, "| ended | {end} (took {}) |", took(r));
    }
    let _ = writeln!(s, "| why | {} |", md(&run.reason));
    if let Some(o) = &run.outcome {
        let _ = writeln!(s, "| outcome | {} |", md(o));
    }
    if let Some(by) = &run.ended_by {
        let _ = writeln!(s, "| ended by | {} |", md(by));
    }
    let _ = writeln!(s, "| fencing epoch | {} |", run.epoch);
    let _ = writeln!(
        s,
        "| data loss | {} |",
        if run.allow_data_loss {
            "accepted"
        } else {
            "not accepted"
        }
    );
    let _ = writeln!(
        s,
        "| started by the controller | {} |",
        if run.automatic {
            "yes"
        } else {
            "no (a person)"
        }
    );

    let _ = writeln!(s, "\n## Decision and evidence\n");
    if r.decisions.is_empty() {
        let _ = writeln!(s, "No decision of the controller names this run.");
    }
    for d in &r.decisions {
        let _ = writeln!(
            s,
            "- {} **{}**: {}",
            d.at,
            md(&d.summary),
            md(&d.reason.to_string())
        );
        for line in evidence_lines(d) {
            let _ = writeln!(s, "  - {}", md(&line));
        }
    }

    let _ = writeln!(s, "\n## Steps\n");
    let _ = writeln!(
        s,
        "| stage | step | kind | region | state | took | last word |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for st in &r.steps {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            st.stage,
            md(&st.name),
            st.kind,
            st.region,
            st.state,
            step_took(st),
            md(st.detail.as_deref().unwrap_or(""))
        );
    }
    for st in &r.steps {
        if st.attempts.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n### {}\n", md(&st.name));
        let _ = writeln!(s, "| at | phase | # | outcome | took | epoch | detail |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for a in &st.attempts {
            let outcome = match (a.outcome, a.error_class) {
                (None, _) => "interrupted".to_string(),
                (Some(o), Some(c)) => format!("{o} ({c})"),
                (Some(o), None) => o.to_string(),
            };
            let took = a
                .finished_at
                .map(|f| fmt_duration(f.since(a.started_at)))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {took} | {} | {} |",
                offset(a.started_at, run.created_at),
                a.phase,
                a.attempt,
                outcome,
                a.epoch,
                md(a.detail.as_deref().unwrap_or(""))
            );
        }
    }

    let _ = writeln!(s, "\n## Approvals\n");
    if r.approvals.is_empty() {
        let _ = writeln!(s, "None.");
    }
    for a in &r.approvals {
        let _ = writeln!(
            s,
            "- {} {} approved `{}`{}",
            a.at,
            md(&a.approved_by),
            md(&a.step),
            if a.allow_data_loss {
                ", accepting data loss"
            } else {
                ""
            }
        );
    }

    let _ = writeln!(s, "\n## Timeline\n");
    let _ = writeln!(s, "| at | | what | detail |\n|---|---|---|---|");
    for e in &r.timeline {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            e.at,
            offset(e.at, run.created_at),
            md(&e.what),
            md(&e.detail)
        );
    }
    let _ = writeln!(s, "\nGenerated {} from the journal.", r.generated_at);
    s
}

/// Text fit for a Markdown table cell: no pipe or line break can break the table.
fn md(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One HTML page: the headline table, the decision and evidence, a timeline of the
/// steps (an SVG bar per step, attempts as ticks), every attempt, approvals, events.
pub fn html(r: &RunReport) -> String {
    let run = &r.run;
    let mut s = String::new();
    let title = format!(
        "{} {} of {}: {} → {}",
        run.direction, run.run_id, run.service, run.from, run.to
    );
    let _ = write!(
        s,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}}\
         .completed{{color:#1a7f37}}.failed,.aborted{{color:#cf222e}}code{{background:#f6f8fa}}</style></head><body>\n",
        esc(&title)
    );
    let _ = writeln!(s, "<h1>{}</h1>", esc(&title));
    let _ = writeln!(s, "<table>");
    let status = run.status.to_string();
    let mut row = |k: &str, v: String| {
        let _ = writeln!(s, "<tr><th>{k}</th><td>{v}</td></tr>");
    };
    row(
        "status",
        format!(
            "<strong class=\"{}\">{}</strong>",
            esc(&status),
            esc(&status)
        ),
    );
    row(
        "started",
        format!("{} by {}", run.created_at, esc(&run.started_by)),
    );
    if let Some(end) = run.finished_at {
        row("ended", format!("{end} (took {})", took(r)));
    }
    row("why", esc(&run.reason));
    if let Some(o) = &run.outcome {
        row("outcome", esc(o));
    }
    if let Some(by) = &run.ended_by {
        row("ended by", esc(by));
    }
    row("fencing epoch", run.epoch.to_string());
    row(
        "data loss",
        if run.allow_data_loss {
            "accepted".into()
        } else {
            "not accepted".into()
        },
    );
    let _ = writeln!(s, "</table>");

    let _ = writeln!(s, "<h2>Decision and evidence</h2><ul>");
    for d in &r.decisions {
        let _ = writeln!(
            s,
            "<li>{} <strong>{}</strong>: {}<ul>",
            d.at,
            esc(&d.summary),
            esc(&d.reason.to_string())
        );
        for line in evidence_lines(d) {
            let _ = writeln!(s, "<li>{}</li>", esc(&line));
        }
        let _ = writeln!(s, "</ul></li>");
    }
    let _ = writeln!(s, "</ul>");

    let _ = writeln!(s, "<h2>Steps</h2>");
    s.push_str(&gantt(r));
    for st in &r.steps {
        let _ = writeln!(
            s,
            "<h3>{} <small>{} in {} · {} · {}</small></h3>",
            esc(&st.name),
            esc(&st.kind),
            st.region,
            st.state,
            step_took(st)
        );
        if let Some(d) = &st.detail {
            let _ = writeln!(s, "<p>{}</p>", esc(d));
        }
        let _ = writeln!(
            s,
            "<table><tr><th>at</th><th>phase</th><th>#</th><th>outcome</th><th>took</th><th>epoch</th><th>detail</th></tr>"
        );
        for a in &st.attempts {
            let outcome = match (a.outcome, a.error_class) {
                (None, _) => "interrupted".to_string(),
                (Some(o), Some(c)) => format!("{o} ({c})"),
                (Some(o), None) => o.to_string(),
            };
            let took = a
                .finished_at
                .map(|f| fmt_duration(f.since(a.started_at)))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{took}</td><td>{}</td><td>{}</td></tr>",
                offset(a.started_at, run.created_at),
                a.phase,
                a.attempt,
                esc(&outcome),
                a.epoch,
                esc(a.detail.as_deref().unwrap_or(""))
            );
        }
        let _ = writeln!(s, "</table>");
    }

    let _ = writeln!(s, "<h2>Approvals</h2><ul>");
    for a in &r.approvals {
        let _ = writeln!(
            s,
            "<li>{} {} approved <code>{}</code>{}</li>",
            a.at,
            esc(&a.approved_by),
            esc(&a.step),
            if a.allow_data_loss {
                ", accepting data loss"
            } else {
                ""
            }
        );
    }
    if r.approvals.is_empty() {
        let _ = writeln!(s, "<li>none</li>");
    }
    let _ = writeln!(s, "</ul>");

    let _ = writeln!(
        s,
        "<h2>Timeline</h2><table><tr><th>at</th><th></th><th>what</th><th>detail</th></tr>"
    );
    for e in &r.timeline {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.at,
            offset(e.at, run.created_at),
            esc(&e.what),
            esc(&e.detail)
        );
    }
    let _ = writeln!(
        s,
        "</table><p><small>Generated {} from the journal.</small></p></body></html>",
        r.generated_at
    );
    s
}

/// The steps on one time axis: a bar from each step's start to its end, coloured by
/// how it ended, with a tick at every attempt.
fn gantt(r: &RunReport) -> String {
    let start = r.run.created_at;
    let end = r
        .steps
        .iter()
        .filter_map(|st| st.finished_at.or(st.started_at))
        .chain(r.run.finished_at)
        .max()
        .unwrap_or(start);
    let span = end.since(start).as_secs_f64().max(0.001);
    let (left, width, row) = (180.0, 600.0, 22.0);
    let height = row * (r.steps.len() as f64 + 1.0) + 10.0;
    let x = |t: Ts| left + width * t.since(start).as_secs_f64() / span;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-size=\"12\" role=\"img\" aria-label=\"steps over time\">\n",
        left + width + 60.0
    );
    for (i, st) in r.steps.iter().enumerate() {
        let y = 10.0 + row * i as f64;
        let _ = writeln!(
            s,
            "<text x=\"0\" y=\"{}\">{}</text>",
            y + 14.0,
            esc(&st.name)
        );
        if let Some(a) = st.started_at {
            let b = st.finished_at.unwrap_or(end);
            let colour = match st.state.to_string().as_str() {
                "verified" | "skipped" => "#2da44e",
                "failed" => "#cf222e",
                _ => "#bf8700",
            };
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"16\" fill=\"{colour}\"><title>{} {}</title></rect>",
                x(a),
                (x(b) - x(a)).max(2.0),
                esc(&st.name),
                step_took(st)
            );
        }
        for at in &st.attempts {
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{y}\" y2=\"{1}\" stroke=\"#24292f\"/>",
                x(at.started_at),
                y + 16.0
            );
        }
    }
    let y = 10.0 + row * r.steps.len() as f64 + 12.0;
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"{y}\">+0s</text><text x=\"{}\" y=\"{y}\">+{}</text></svg>",
        left + width - 30.0,
        fmt_duration(end.since(start))
    );
    s
}
