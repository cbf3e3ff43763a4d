//! A drill's evidence: the figures it measured, each expectation passed or failed, and the
//! timeline, as JSON for machines, Markdown for the terminal, and an HTML page with an SVG
//! timeline drawn by a plotting crate.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

mod timeline;

#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Report {
    pub drill: String,
    pub description: String,
    pub repetition: u32,
    pub passed: bool,
    pub checks: Vec<Assertion>,
    pub figures: Figures,
    /// Seconds since the (first) fault; negative before it.
    pub timeline: Vec<Mark>,
    pub steps: Vec<Span>,
    pub writes: Vec<WritePoint>,
    /// What went wrong running the drill itself (not an expectation), if anything.
    pub error: Option<String>,
    /// A copy of the daemon's journal (runs and decisions with their evidence).
    #[serde(default)]
    pub journal: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Assertion {
    pub what: String,
    pub passed: bool,
    pub detail: String,
}

/// The measured figures, in seconds unless named otherwise. `None`: did not happen.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Figures {
    /// From the fault to the controller declaring the region down.
    pub detection: Option<f64>,
    /// From the fault to the failover being started.
    pub decision: Option<f64>,
    /// A failover happened in a drill that expected none.
    #[serde(default)]
    pub unexpected_failover: bool,
    /// From the fault to the failover completed.
    pub failover: Option<f64>,
    /// From the first failed write after the fault to the first successful one after it.
    pub client_rto: Option<f64>,
    /// Acknowledged writes missing from the serving database after the failover.
    pub lost_writes: Option<u64>,
    pub writes_acked: u64,
    pub writes_failed: u64,
    /// Whether two databases ever took writes at the same time.
    pub two_writable: bool,
    pub writable_samples: usize,
    /// From asking for the failback to it completing.
    pub failback: Option<f64>,
    /// Acknowledged writes missing after the failback.
    pub failback_lost_writes: Option<u64>,
    /// HA: from the fault on the acting controller to another one leading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<f64>,
    /// HA: from the fault to the controller it hit saying it no longer leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_acting: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Mark {
    pub at: f64,
    pub what: String,
}

/// A step of a run, placed on the timeline.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Span {
    pub run: String,
    pub step: String,
    pub kind: String,
    pub start: f64,
    pub end: f64,
    pub state: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WritePoint {
    pub at: f64,
    pub acked: bool,
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.2}s"))
        .unwrap_or_else(|| "—".to_string())
}

fn count(v: Option<u64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "—".to_string())
}

impl Report {
    /// One line with the figures that matter, for the end of a terminal run.
    pub fn headline(&self) -> String {
        let f = &self.figures;
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let mut parts = Vec::new();
        if let Some(d) = f.detection {
            parts.push(format!("detected in {d:.2}s"));
        }
        match f.failover {
            Some(t) if f.unexpected_failover => {
                parts.push(format!("UNEXPECTED FAILOVER, completed after {t:.2}s"))
            }
            Some(t) => parts.push(format!(
                "failed over in {t:.2}s (clients saw {} of failed writes)",
                secs(f.client_rto)
            )),
            None if f.unexpected_failover => parts.push("UNEXPECTED FAILOVER".to_string()),
            None => parts.push("no failover".to_string()),
        }
        if let Some(n) = f.lost_writes {
            parts.push(format!("{n} acknowledged write(s) lost"));
        }
        if let Some(t) = f.failback {
            parts.push(format!(
                "failed back in {t:.2}s losing {}",
                count(f.failback_lost_writes)
            ));
        }
        parts.push(if f.two_writable {
            "TWO WRITABLE PRIMARIES SEEN".to_string()
        } else {
            "never two writable primaries".to_string()
        });
        format!("{} {verdict}: {}", self.drill, parts.join(", "))
    }

    /// The summary printed in the terminal.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let _ = writeln!(
            s,
            "## Drill `{}` (repetition {}): {verdict}\n",
            self.drill, self.repetition
        );
        if !self.description.is_empty() {
            let _ = writeln!(s, "{}\n", self.description);
        }
        let f = &self.figures;
        let _ = writeln!(s, "| figure | value |\n|---|---|");
        let rows = [
            (
                "unexpected failover",
                if f.unexpected_failover { "YES" } else { "no" }.to_string(),
            ),
            ("time to detect", secs(f.detection)),
            ("time to decision", secs(f.decision)),
            ("failover completed", secs(f.failover)),
            ("client-side RTO (writes failing)", secs(f.client_rto)),
            ("acknowledged writes lost (failover)", count(f.lost_writes)),
            ("failback", secs(f.failback)),
            (
                "acknowledged writes lost (failback)",
                count(f.failback_lost_writes),
            ),
            (
                "writes acknowledged / failed",
                format!("{} / {}", f.writes_acked, f.writes_failed),
            ),
            (
                "two writable primaries",
                format!(
                    "{} ({} samples)",
                    if f.two_writable { "YES" } else { "never" },
                    f.writable_samples
                ),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        if !self.steps.is_empty() {
            let _ = writeln!(
                s,
                "\n| run | step | kind | duration | state |\n|---|---|---|---|---|"
            );
            for st in &self.steps {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.2}s | {} |",
                    st.run,
                    st.step,
                    st.kind,
                    st.end - st.start,
                    st.state
                );
            }
        }
        let _ = writeln!(s, "\n| expectation | result | detail |\n|---|---|---|");
        for c in &self.checks {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                c.what,
                if c.passed { "pass" } else { "FAIL" },
                c.detail.replace('|', "/")
            );
        }
        if let Some(e) = &self.error {
            let _ = writeln!(s, "\nThe drill itself failed: {e}");
        }
        s
    }

    /// A self-contained page: the summary tables and the SVG timeline.
    pub fn html(&self) -> String {
        let svg = self
            .timeline_svg()
            .unwrap_or_else(|e| format!("<p>the timeline could not be drawn: {}</p>", escape(&e)));
        let mut rows = String::new();
        for c in &self.checks {
            let _ = write!(
                rows,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                if c.passed { "pass" } else { "fail" },
                escape(&c.what),
                if c.passed { "pass" } else { "FAIL" },
                escape(&c.detail)
            );
        }
        let f = &self.figures;
        let figures = [
            ("time to detect", secs(f.detection)),
            ("time to decision", secs(f.decision)),
            ("failover completed", secs(f.failover)),
            ("client-side RTO", secs(f.client_rto)),
            ("acknowledged writes lost (failover)", count(f.lost_writes)),
            ("failback", secs(f.failback)),
            (
                "acknowledged writes lost (failback)",
                count(f.failback_lost_writes),
            ),
            (
                "two writable primaries",
                if f.two_writable {
                    "YES".to_string()
                } else {
                    "never".to_string()
                },
            ),
        ]
        .iter()
        .map(|(k, v)| format!("<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(v)))
        .collect::<String>();
        // The controller's events in full, numbered as their labels on the chart.
        let events = timeline::numbered(&self.timeline)
            .iter()
            .map(|(n, m)| {
                format!(
                    "<tr><td>{n}</td><td style=\"text-align:right\">{:+.2}s</td><td>{}</td></tr>",
                    m.at,
                    escape(&m.what)
                )
            })
            .collect::<String>();
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>lifeboat drill {name}</title>\n\
             <style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse;margin:1em 0}} \
             td,th{{border:1px solid #ccc;padding:4px 8px}} tr.pass td:nth-child(2){{color:#080}} tr.fail td:nth-child(2){{color:#c00;font-weight:bold}} \
             h1 .verdict{{color:{color}}}</style></head>\n<body><h1>Drill <code>{name}</code> <span class=\"verdict\">{verdict}</span></h1>\n\
             <p>{desc}</p>\n<h2>Timeline</h2>\n{svg}\n\
             <h3>Events, numbered as on the chart</h3><table><tr><th>#</th><th>from the fault</th><th>what</th></tr>{events}</table>\n\
             <h2>Figures</h2><table>{figures}</table>\n\
             <h2>Expectations</h2><table><tr><th>expectation</th><th>result</th><th>detail</th></tr>{rows}</table>\n</body></html>\n",
            name = escape(&self.drill),
            verdict = if self.passed { "passed" } else { "FAILED" },
            color = if self.passed { "#080" } else { "#c00" },
            desc = escape(&self.description),
        )
    }

    /// The timeline: write outcomes, the controller's marks and each step as a bar.
    pub fn timeline_svg(&self) -> Result<String, String> {
        timeline::svg(self)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// How a figure spread over repetitions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    /// The 99th percentile by nearest rank: the largest value below 100 samples.
    pub p99: f64,
    pub max: f64,
    /// How many repetitions had the figure.
    pub n: usize,
}

/// min / median / p99 / max of the values that are present.
pub fn spread(values: impl IntoIterator<Item = Option<f64>>) -> Option<Spread> {
    let mut v: Vec<f64> = values.into_iter().flatten().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let rank = (0.99 * n as f64).ceil() as usize;
    Some(Spread {
        min: v[0],
        median,
        p99: v[rank.clamp(1, n) - 1],
        max: v[n - 1],
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            drill: "region-outage".into(),
            description: "test".into(),
            repetition: 1,
            passed: true,
            checks: vec![Assertion {
                what: "fails over within 30s".into(),
                passed: true,
                detail: "5.1s".into(),
            }],
            figures: Figures {
                detection: Some(2.1),
                decision: Some(2.1),
                failover: Some(3.4),
                ..Figures::default()
            },
            timeline: vec![
                Mark {
                    at: 2.1,
                    what: "down".into(),
                },
                Mark {
                    at: 3.4,
                    what: "failover done".into(),
                },
            ],
            steps: vec![Span {
                run: "fo-x".into(),
                step: "promote".into(),
                kind: "postgres_promote".into(),
                start: 2.2,
                end: 2.9,
                state: "verified".into(),
            }],
            writes: vec![
                WritePoint {
                    at: -1.0,
                    acked: true,
                },
                WritePoint {
                    at: 1.0,
                    acked: false,
                },
                WritePoint {
                    at: 4.0,
                    acked: true,
                },
            ],
            error: None,
            journal: None,
        }
    }

    #[test]
    fn the_timeline_is_an_svg_with_every_step_and_mark() {
        let svg = sample().timeline_svg().expect("draws");
        assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
        assert!(svg.contains("promote") && svg.contains("failover done") && svg.contains("writes"));
        assert!(sample().html().contains("<svg"));
    }

    #[test]
    fn spread_gives_min_median_p99_max() {
        let s = spread([Some(3.0), None, Some(1.0), Some(2.0)]).expect("values");
        assert_eq!(
            (s.min, s.median, s.p99, s.max, s.n),
            (1.0, 2.0, 3.0, 3.0, 3)
        );
        assert_eq!(spread([None, None]), None);
        // Of 200 values 1..=200, the 99th percentile by nearest rank is the 198th.
        let s = spread((1..=200).map(|i| Some(f64::from(i)))).expect("values");
        assert_eq!((s.median, s.p99, s.max), (100.5, 198.0, 200.0));
    }
}
