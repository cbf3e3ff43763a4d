//! The acting rule (Patroni's `retry_timeout` rule): a leader acts on the outside world
//! only while its last confirmed keep-alive is younger than the lease TTL minus a safety
//! margin. Pure: the caller passes the instants in.

use std::time::Duration;

use tokio::time::Instant;

use super::error::CoordError;

/// The lease TTL and the margin kept below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActingRule {
    ttl: Duration,
    margin: Duration,
}

impl ActingRule {
    /// Errors: `Config` unless `0 < margin < ttl`.
    pub fn new(ttl: Duration, margin: Duration) -> Result<ActingRule, CoordError> {
        if margin.is_zero() || margin >= ttl {
            return Err(CoordError::Config {
                field: "safety_margin",
                problem: format!(
                    "must be above zero and below the lease TTL ({} ms), got {} ms",
                    ttl.as_millis(),
                    margin.as_millis()
                ),
            });
        }
        Ok(ActingRule { ttl, margin })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn margin(&self) -> Duration {
        self.margin
    }

    /// How long after a confirmation the leader may act.
    pub fn window(&self) -> Duration {
        self.ttl - self.margin
    }

    /// Whether a leader whose last keep-alive etcd confirmed was *sent* at `confirmed`
    /// may act at `now`. `granted` is the TTL etcd reported for the lease; the shorter of
    /// it and the configured TTL counts, so a lease etcd granted longer (its minimum TTL)
    /// never lengthens the window.
    pub fn acting(&self, confirmed: Option<Instant>, granted: Duration, now: Instant) -> bool {
        let ttl = self.ttl.min(granted);
        let Some(window) = ttl.checked_sub(self.margin) else {
            return false;
        };
        confirmed.is_some_and(|at| now < at + window)
    }

    /// When acting ends, for a confirmation at `confirmed` (the caller sleeps until then).
    pub fn acting_until(&self, confirmed: Instant, granted: Duration) -> Instant {
        confirmed + self.ttl.min(granted).saturating_sub(self.margin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn acting_ends_a_margin_before_the_ttl_runs_out_from_the_send() {
        let rule = ActingRule::new(5 * S, 2 * S).expect("rule");
        let sent = Instant::now();
        assert!(!rule.acting(None, 5 * S, sent), "never confirmed");
        assert!(rule.acting(Some(sent), 5 * S, sent));
        tokio::time::advance(2999 * S / 1000).await;
        assert!(rule.acting(Some(sent), 5 * S, Instant::now()));
        tokio::time::advance(S / 1000).await;
        assert!(
            !rule.acting(Some(sent), 5 * S, Instant::now()),
            "3 s = TTL − margin"
        );
        assert_eq!(rule.acting_until(sent, 5 * S), sent + 3 * S);
    }

    #[test]
    fn a_shorter_granted_ttl_shortens_the_window_and_a_longer_one_does_not_lengthen_it() {
        let rule = ActingRule::new(5 * S, 2 * S).expect("rule");
        let t = Instant::now();
        assert!(
            !rule.acting(Some(t), 2 * S, t),
            "granted 2 s is below the margin"
        );
        assert!(rule.acting(Some(t), 4 * S, t + S + S / 2));
        assert!(!rule.acting(Some(t), 4 * S, t + 2 * S));
        assert!(!rule.acting(Some(t), 60 * S, t + 3 * S));
    }

    #[test]
    fn a_margin_not_below_the_ttl_is_a_configuration_error() {
        let err = ActingRule::new(5 * S, 5 * S).expect_err("margin = ttl");
        assert!(err.to_string().contains("safety_margin"), "{err}");
        assert!(ActingRule::new(5 * S, Duration::ZERO).is_err());
    }
}
