//! The RPO comparison: is a replica's lag within the budget, or has someone accepted the
//! loss? One function, used by the controller's guardrail before a run starts and by the
//! promotion steps (PostgreSQL, RDS) just before they promote, so the two can never
//! disagree on what "over budget" means.

use std::time::Duration;

use super::time::fmt_duration;

/// The lag exceeds the budget and nobody accepted losing the writes behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverBudget {
    pub lag: Duration,
    pub budget: Duration,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replica lag {} exceeds the RPO budget {}",
            fmt_duration(self.lag),
            fmt_duration(self.budget)
        )
    }
}

/// `Ok` when the lag is unknown (nothing measures replication), within the budget
/// (equal counts as within), or the loss was accepted.
pub fn check(
    lag: Option<Duration>,
    budget: Duration,
    allow_data_loss: bool,
) -> Result<(), OverBudget> {
    match lag {
        Some(lag) if lag > budget && !allow_data_loss => Err(OverBudget { lag, budget }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_over_the_budget_is_refused_unless_the_loss_is_accepted() {
        let s = Duration::from_secs;
        assert_eq!(check(None, s(5), false), Ok(()));
        assert_eq!(check(Some(s(5)), s(5), false), Ok(()), "equal is within");
        assert_eq!(
            check(Some(s(6)), s(5), false),
            Err(OverBudget {
                lag: s(6),
                budget: s(5)
            })
        );
        assert_eq!(check(Some(s(600)), s(5), true), Ok(()));
    }
}
