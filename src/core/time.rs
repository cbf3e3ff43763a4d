//! Time as data: a timestamp type the callers fill in, so nothing in `core` reads a clock.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, as read by whoever calls into `core`.
///
/// `core` never reads the clock itself: the daemon passes the time in, and tests pass
/// whatever time the scenario needs. Arithmetic saturates instead of panicking, because a
/// clock that jumps backwards must not crash the controller.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Ts(pub u64);

impl Ts {
    pub const ZERO: Ts = Ts(0);

    pub fn from_millis(ms: u64) -> Ts {
        Ts(ms)
    }

    pub fn from_secs(s: u64) -> Ts {
        Ts(s.saturating_mul(1000))
    }

    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the largest representable time.
    pub fn plus(self, d: Duration) -> Ts {
        Ts(self.0.saturating_add(millis(d)))
    }

    /// How long after `earlier` this is; zero when `earlier` is in the future.
    pub fn since(self, earlier: Ts) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = std::time::UNIX_EPOCH + Duration::from_millis(self.0);
        write!(f, "{}", humantime_like_rfc3339(d))
    }
}

/// A duration in whole milliseconds, saturating at `u64::MAX`.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Formats a duration the way operators write them in policies: `30s`, `5m`, `1h30m`, `250ms`.
pub fn fmt_duration(d: Duration) -> String {
    let ms = millis(d);
    if ms == 0 {
        return "0s".to_string();
    }
    if !ms.is_multiple_of(1000) {
        if ms < 1000 {
            return format!("{ms}ms");
        }
        return format!("{:.1}s", ms as f64 / 1000.0);
    }
    let mut s = ms / 1000;
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

impl Ts {
    /// `20261123-153012`: the UTC date and time to the second, for identifiers that sort
    /// by time and are safe in file names and shells.
    pub fn compact_utc(self) -> String {
        let secs = self.0 / 1000;
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        format!(
            "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )
    }
}

/// RFC 3339 in UTC with millisecond precision, computed without a clock or a time crate.
fn humantime_like_rfc3339(t: std::time::SystemTime) -> String {
    let total_ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0);
    let secs = total_ms / 1000;
    let ms = total_ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_the_way_policies_write_them() {
        assert_eq!(fmt_duration(Duration::from_secs(30)), "30s");
        assert_eq!(fmt_duration(Duration::from_secs(300)), "5m");
        assert_eq!(fmt_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn timestamps_print_as_utc_rfc3339() {
        assert_eq!(Ts(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Ts(1_795_437_296_123).to_string(),
            "2026-11-23T12:34:56.123Z"
        );
    }

    #[test]
    fn compact_timestamps_sort_like_the_time_they_name() {
        assert_eq!(Ts(1_795_437_296_123).compact_utc(), "20261123-123456");
        assert!(Ts(1_000).compact_utc() < Ts(100_000_000).compact_utc());
    }

    #[test]
    fn arithmetic_saturates_when_the_clock_goes_backwards() {
        assert_eq!(Ts(5).since(Ts(10)), Duration::ZERO);
        assert_eq!(Ts(u64::MAX).plus(Duration::from_secs(1)), Ts(u64::MAX));
    }
}
