//! The largest value each duration in a policy may take. Without a ceiling,
//! `cooldown = "500000000y"` validated and planned, and arithmetic on such a value
//! overflowed inside a step; with one, `validate` points at the value and says what is
//! sane. Counts have their ceilings where they are parsed (`build::count`).

use std::time::Duration;

use toml::Spanned;

use super::diag::{Diagnostic, Report};
use super::raw::RawDuration;
use crate::core::time::fmt_duration;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Probing less often than this is no longer detection.
pub const INTERVAL: Duration = HOUR;
/// Above this, `interval` draws a warning: an outage goes unnoticed for minutes.
pub const INTERVAL_WARN: Duration = Duration::from_secs(300);
pub const RPO_BUDGET: Duration = DAY;
pub const COOLDOWN: Duration = Duration::from_secs(30 * 24 * 3600);
pub const FAILOVER_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);
pub const FAILBACK_HEALTHY_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
pub const CLOCK_JUMP_TOLERANCE: Duration = HOUR;
pub const FREEZE_FOR: Duration = DAY;
/// A manual approval may wait days over a weekend; nothing else should take a week.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
pub const HEARTBEAT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
pub const MAX_LATENCY: Duration = HOUR;

/// Reports `field` when it is longer than `max`; true when it is within.
pub fn at_most(
    report: &mut Report,
    field: &str,
    value: Option<&Spanned<RawDuration>>,
    max: Duration,
    why: &str,
) -> bool {
    let Some(v) = value else { return true };
    let d = v.get_ref().0;
    if d <= max {
        return true;
    }
    report.push(
        Diagnostic::error(
            "out-of-range",
            format!(
                "`{field}` is {}, longer than the {} it may be",
                fmt_duration(d),
                fmt_duration(max)
            ),
        )
        .at(v.span())
        .label(format!("above {}", fmt_duration(max)))
        .help(why.to_string()),
    );
    false
}
