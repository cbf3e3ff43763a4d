//! Where wall-clock time comes from, outside `core` (which never reads a clock).
//!
//! Production reads the system clock. Tests on tokio's paused clock use an anchored
//! clock: a fixed wall time plus tokio's elapsed time, so journaled timestamps and
//! the controller's clock-jump check follow `tokio::time::advance` exactly.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::time::{Ts, millis};

/// A source of wall-clock timestamps.
#[derive(Clone)]
pub struct WallClock(Arc<dyn Fn() -> Ts + Send + Sync>);

impl std::fmt::Debug for WallClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WallClock({})", self.now())
    }
}

impl WallClock {
    /// The system's wall clock (it may jump; the controller's tick notices when it does).
    pub fn system() -> WallClock {
        WallClock(Arc::new(|| {
            Ts(SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(millis)
                .unwrap_or(0))
        }))
    }

    /// `start` now, then advancing with tokio's clock (pausable in tests).
    pub fn anchored(start: Ts) -> WallClock {
        let t0 = tokio::time::Instant::now();
        WallClock(Arc::new(move || start.plus(t0.elapsed())))
    }

    /// A clock from any function (tests that script time).
    pub fn from_fn(f: impl Fn() -> Ts + Send + Sync + 'static) -> WallClock {
        WallClock(Arc::new(f))
    }

    pub fn now(&self) -> Ts {
        (self.0)()
    }
}
