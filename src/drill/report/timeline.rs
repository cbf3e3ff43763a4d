//! The drill report's SVG timeline: the writes, the controller's events and each step as
//! a bar on one time axis. The legend has a strip of its own above the plot, and the
//! events' labels are laid out in lanes, so close events never print over each other;
//! each label carries the number its event has in the list under the chart.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Mark, Report};

const WIDTH: u32 = 1080;
const MARGIN: u32 = 12;
/// The row names' column, left of the plot.
const NAMES: u32 = 230;
const X_AXIS: u32 = 40;
const LEGEND: u32 = 30;
const ROW: f64 = 34.0;
/// The height of one lane of event labels.
const LANE: f64 = 15.0;
/// Label font size as plotters takes it (its SVG writes size / 1.24: 10.5 px).
const FONT: u32 = 13;
/// The width of one character of a label, erring wide so that the estimated boxes hold
/// the real ones.
pub(super) const CHAR: f64 = 6.6;
/// Room kept between two labels in the same lane.
const GAP: f64 = 8.0;

/// The timeline's marks in the order they are numbered (by time).
pub(super) fn numbered(marks: &[Mark]) -> Vec<(usize, &Mark)> {
    let mut sorted: Vec<&Mark> = marks.iter().collect();
    sorted.sort_by(|a, b| a.at.total_cmp(&b.at));
    sorted
        .into_iter()
        .enumerate()
        .map(|(i, m)| (i + 1, m))
        .collect()
}

/// The label an event has on the chart.
pub(super) fn label(n: usize, m: &Mark) -> String {
    let what: String = m.what.chars().take(48).collect();
    format!("{n} {what}")
}

/// Assigns each label (start and width in pixels, in time order) the lowest lane in
/// which it starts after the previous label there ends.
pub(super) fn lanes(spans: &[(f64, f64)]) -> Vec<usize> {
    let mut ends: Vec<f64> = Vec::new();
    spans
        .iter()
        .map(|&(start, width)| {
            let lane = match ends.iter().position(|&end| end + GAP <= start) {
                Some(l) => l,
                None => {
                    ends.push(f64::NEG_INFINITY);
                    ends.len() - 1
                }
            };
            ends[lane] = start + width;
            lane
        })
        .collect()
}

pub(super) fn svg(r: &Report) -> Result<String, String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let mut step_rows: Vec<String> = Vec::new();
    for s in &r.steps {
        let name = step_row(&s.run, &s.step);
        if !step_rows.contains(&name) {
            step_rows.push(name);
        }
    }
    let times = r
        .writes
        .iter()
        .map(|w| w.at)
        .chain(r.timeline.iter().map(|m| m.at));
    let t_min = times.clone().fold(0.0_f64, f64::min) - 0.5;
    let t_max = times
        .chain(r.steps.iter().map(|s| s.end))
        .fold(1.0_f64, f64::max)
        + 0.5;

    // The event labels' lanes, in pixels along the plot's width.
    let plot_width = f64::from(WIDTH - 2 * MARGIN - NAMES);
    let px = |t: f64| (t - t_min) / (t_max - t_min) * plot_width;
    let events = numbered(&r.timeline);
    let spans: Vec<(f64, f64)> = events
        .iter()
        .map(|(n, m)| {
            let width = label(*n, m).chars().count() as f64 * CHAR;
            // A label that would run off the right edge ends there instead.
            ((px(m.at) + 4.0).min(plot_width - width).max(0.0), width)
        })
        .collect();
    let lane_of = lanes(&spans);
    let lane_count = lane_of.iter().max().map_or(0, |l| l + 1);

    // Rows from the top, in pixels: the y axis counts pixels up from the bottom.
    let controller = (lane_count as f64 * LANE + 20.0).max(ROW);
    let mut heights = vec![
        ("writes".to_string(), ROW),
        ("controller".to_string(), controller),
    ];
    heights.extend(step_rows.iter().map(|s| (s.clone(), ROW)));
    let total: f64 = heights.iter().map(|(_, h)| h).sum();
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    let mut top = total;
    for (name, h) in heights {
        rows.push((name, top - h, top));
        top -= h;
    }
    let row = |name: &str| -> (f64, f64) {
        rows.iter()
            .find(|(n, _, _)| n == name)
            .map_or((0.0, ROW), |(_, lo, hi)| (*lo, *hi))
    };
    let height = LEGEND + 2 * MARGIN + X_AXIS + total.ceil() as u32;

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        legend(&root).map_err(e)?;
        let (_, area) = root.split_vertically(LEGEND);
        let mut chart = ChartBuilder::on(&area)
            .margin(MARGIN)
            .x_label_area_size(X_AXIS)
            .y_label_area_size(NAMES)
            .build_cartesian_2d(t_min..t_max, 0.0..total)
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("seconds from the fault")
            .draw()
            .map_err(e)?;
        let name_style = ("sans-serif", 15)
            .into_font()
            .into_text_style(&root)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (name, lo, hi) in &rows {
            let (_, y) = chart.backend_coord(&(t_min, (lo + hi) / 2.0));
            let shown: String = name.chars().take(32).collect();
            root.draw(&Text::new(
                shown,
                ((MARGIN + 4) as i32, y),
                name_style.clone(),
            ))
            .map_err(e)?;
            chart
                .draw_series(LineSeries::new(
                    vec![(t_min, *lo), (t_max, *lo)],
                    RGBColor(220, 220, 220),
                ))
                .map_err(e)?;
        }
        // The fault.
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, 0.0), (0.0, total)],
                RED.stroke_width(2),
            ))
            .map_err(e)?;
        let (lo, hi) = row("writes");
        chart
            .draw_series(r.writes.iter().map(|w| {
                let color = if w.acked {
                    GREEN.mix(0.7)
                } else {
                    RED.mix(0.9)
                };
                Circle::new((w.at, (lo + hi) / 2.0), 3, color.filled())
            }))
            .map_err(e)?;
        let (lo, _) = row("controller");
        let marker_y = lo + 9.0;
        let label_style = ("sans-serif", FONT)
            .into_font()
            .into_text_style(&root)
            .pos(Pos::new(HPos::Left, VPos::Bottom));
        for (((n, m), (start, _)), lane) in events.iter().zip(&spans).zip(&lane_of) {
            let y = marker_y + 8.0 + (*lane as f64 + 1.0) * LANE - 2.0;
            let x = t_min + start / plot_width * (t_max - t_min);
            chart
                .draw_series(LineSeries::new(
                    vec![(m.at, marker_y), (m.at, y - LANE + 3.0)],
                    BLUE.mix(0.35),
                ))
                .map_err(e)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    label(*n, m),
                    (x, y),
                    label_style.clone(),
                )))
                .map_err(e)?;
        }
        chart
            .draw_series(
                events
                    .iter()
                    .map(|(_, m)| TriangleMarker::new((m.at, marker_y), 6, BLUE.filled())),
            )
            .map_err(e)?;
        for s in &r.steps {
            let (lo, hi) = row(&step_row(&s.run, &s.step));
            let end = if s.end - s.start < 0.02 {
                s.start + 0.02
            } else {
                s.end
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(s.start, lo + 6.0), (end, hi - 6.0)],
                    step_color(&s.state).filled(),
                )))
                .map_err(e)?;
        }
        root.present().map_err(e)?;
    }
    Ok(out)
}

fn step_row(run: &str, step: &str) -> String {
    format!("{} · {step}", run.split('-').next().unwrap_or(""))
}

fn step_color(state: &str) -> RGBAColor {
    match state {
        "verified" | "skipped" => BLUE.mix(0.6),
        "failed" => RED.mix(0.8),
        _ => RGBColor(255, 165, 0).mix(0.8),
    }
}

/// The legend, in its own strip above the plot.
fn legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = ("sans-serif", 14)
        .into_font()
        .into_text_style(root)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let y = (LEGEND / 2 + 4) as i32;
    let mut x = (MARGIN + 4) as i32;
    let items: [(&str, u8); 7] = [
        ("fault", 0),
        ("write acknowledged", 1),
        ("write failed", 2),
        ("controller event (numbered, listed below)", 3),
        ("step verified", 4),
        ("step failed", 5),
        ("step in another state", 6),
    ];
    for (text, shape) in items {
        match shape {
            0 => root.draw(&PathElement::new(
                vec![(x + 5, y - 7), (x + 5, y + 7)],
                RED.stroke_width(2),
            ))?,
            1 => root.draw(&Circle::new((x + 5, y), 4, GREEN.mix(0.7).filled()))?,
            2 => root.draw(&Circle::new((x + 5, y), 4, RED.mix(0.9).filled()))?,
            3 => root.draw(&TriangleMarker::new((x + 5, y), 6, BLUE.filled()))?,
            s => {
                let state = ["verified", "failed", "running"][usize::from(s - 4)];
                root.draw(&Rectangle::new(
                    [(x, y - 5), (x + 12, y + 5)],
                    step_color(state).filled(),
                ))?
            }
        }
        root.draw(&Text::new(text, (x + 16, y), style.clone()))?;
        x += 16 + (text.chars().count() as f64 * CHAR) as i32 + 18;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::report::{Span, WritePoint};

    #[test]
    fn close_labels_take_separate_lanes_and_distant_ones_share_the_first() {
        // In time order: three labels on top of each other, then one far to the right.
        let spans = [(0.0, 100.0), (10.0, 60.0), (20.0, 30.0), (400.0, 40.0)];
        assert_eq!(lanes(&spans), [0, 1, 2, 0]);
        // A lane is reused as soon as the label before it there has ended.
        assert_eq!(lanes(&[(0.0, 50.0), (30.0, 50.0), (60.0, 10.0)]), [0, 1, 0]);
    }

    /// A drill whose controller events come within a few hundred milliseconds.
    fn crowded() -> Report {
        let marks = [
            (0.0, "fault"),
            (0.01, "fault: database stopped abruptly (primary)"),
            (0.02, "fault: API answering 500 (primary)"),
            (2.71, "detected: down"),
            (2.76, "decision: failover"),
            (3.02, "DNS → us-west-2"),
            (3.10, "failover completed"),
            (9.0, "primary repaired and rejoined"),
            (9.05, "failback asked"),
            (10.2, "failback completed"),
        ];
        Report {
            drill: "region-outage".into(),
            timeline: marks
                .iter()
                .map(|(at, what)| Mark {
                    at: *at,
                    what: what.to_string(),
                })
                .collect(),
            steps: vec![Span {
                run: "fo-x".into(),
                step: "promote".into(),
                kind: "postgres_promote".into(),
                start: 2.8,
                end: 2.95,
                state: "verified".into(),
            }],
            writes: (0..40)
                .map(|i| WritePoint {
                    at: f64::from(i) * 0.3 - 1.0,
                    acked: !(1..4).contains(&i),
                })
                .collect(),
            ..Report::default()
        }
    }

    /// The `<text>` elements of an SVG: x, y and content.
    fn texts(svg: &str) -> Vec<(f64, f64, String)> {
        let attr = |tag: &str, name: &str| -> f64 {
            let key = format!(" {name}=\"");
            let start = tag.find(&key).expect("attribute") + key.len();
            let end = start + tag[start..].find('"').expect("quote");
            tag[start..end].parse().expect("number")
        };
        svg.split("<text")
            .skip(1)
            .map(|t| {
                let open = &t[..t.find('>').expect("tag end")];
                let body = &t[open.len() + 1..t.find("</text>").expect("close")];
                (attr(open, "x"), attr(open, "y"), body.trim().to_string())
            })
            .collect()
    }

    #[test]
    fn no_two_event_labels_overlap_and_the_legend_stays_above_the_plot() {
        let r = crowded();
        let svg = svg(&r).expect("draws");
        let all = texts(&svg);
        let labels: Vec<&(f64, f64, String)> = all
            .iter()
            .filter(|(_, _, t)| {
                t.split(' ')
                    .next()
                    .is_some_and(|n| n.parse::<usize>().is_ok())
            })
            .collect();
        assert_eq!(
            labels.len(),
            r.timeline.len(),
            "one label per event: {labels:?}"
        );
        let height = f64::from(FONT) / 1.24;
        for (i, a) in labels.iter().enumerate() {
            for b in &labels[i + 1..] {
                let a_end = a.0 + a.2.chars().count() as f64 * CHAR;
                let b_end = b.0 + b.2.chars().count() as f64 * CHAR;
                let apart_x = a_end <= b.0 || b_end <= a.0;
                let apart_y = (a.1 - b.1).abs() >= height;
                assert!(apart_x || apart_y, "{a:?} overlaps {b:?}");
            }
        }
        // The legend has its own strip: nothing of it reaches into the plot below.
        for item in ["fault", "write acknowledged", "write failed", "step failed"] {
            let (_, y, _) = all
                .iter()
                .find(|(_, _, t)| t == item)
                .unwrap_or_else(|| panic!("no legend item {item}"));
            assert!(*y < f64::from(LEGEND), "{item} at y {y}");
        }
        let plot_top = all
            .iter()
            .filter(|(_, y, _)| *y > f64::from(LEGEND))
            .count();
        assert!(plot_top > labels.len(), "the chart is below the legend");
    }

    #[test]
    fn the_events_list_numbers_events_as_the_chart_does() {
        let r = crowded();
        let html = r.html();
        for (n, m) in numbered(&r.timeline) {
            assert!(
                html.contains(&format!("<tr><td>{n}</td>")) && html.contains(&label(n, m)),
                "event {n} ({}) missing",
                m.what
            );
        }
    }
}
