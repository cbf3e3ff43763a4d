//! Crash points for tests: the process exits abruptly just before or after a step's
//! `apply` or `verify`, so a test can prove that a restart finishes the run with every
//! effect applied once.
//!
//! Compiled in only with the `failpoints` cargo feature; without it `hit` is an empty
//! inline function and the environment variable is never read. Armed with
//! `LIFEBOAT_FAILPOINT=<step>:<point>`, e.g. `LIFEBOAT_FAILPOINT=move-dns:after_apply`.

/// The environment variable that arms a failpoint.
pub const ENV: &str = "LIFEBOAT_FAILPOINT";

/// The exit status of a process stopped by a failpoint, so a test can tell it from a
/// real failure.
pub const EXIT_CODE: i32 = 86;

/// Where, around a step's side effects, the process can be stopped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Point {
    /// The apply attempt is journaled as begun; `apply` has not been called.
    BeforeApply,
    /// `apply` returned success; the journal does not know yet.
    AfterApply,
    /// The step is journaled `applied`; `verify` has not been called.
    BeforeVerify,
    /// `verify` observed the effect; the journal does not know yet.
    AfterVerify,
}

impl Point {
    pub const ALL: [Point; 4] = [
        Point::BeforeApply,
        Point::AfterApply,
        Point::BeforeVerify,
        Point::AfterVerify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Point::BeforeApply => "before_apply",
            Point::AfterApply => "after_apply",
            Point::BeforeVerify => "before_verify",
            Point::AfterVerify => "after_verify",
        }
    }

    /// The value of `LIFEBOAT_FAILPOINT` that arms this point for `step`.
    pub fn arm(self, step: &str) -> String {
        format!("{step}:{}", self.as_str())
    }
}

/// Exits the process at once when `LIFEBOAT_FAILPOINT` names this step and point.
///
/// `std::process::exit` runs no destructors and flushes nothing lifeboat holds: what the
/// journal committed is on disk, everything else is lost, as in a crash. (It is not
/// `abort`, to keep core dumps out of test runs.)
#[cfg(feature = "failpoints")]
pub fn hit(step: &str, point: Point) {
    if std::env::var(ENV).is_ok_and(|v| v == point.arm(step)) {
        eprintln!("failpoint {} hit: exiting", point.arm(step));
        std::process::exit(EXIT_CODE);
    }
}

/// Without the `failpoints` feature there is nothing to hit.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_step: &str, _point: Point) {}
