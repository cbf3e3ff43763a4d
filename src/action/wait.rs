//! `wait_healthy`: wait until a region's probes pass N rounds in a row (before a
//! failback moves anything back, for example).

use std::sync::Mutex;

use async_trait::async_trait;

use crate::core::model::{Policy, RegionName};
use crate::probe::{self, Clock, RegionProbe};
use crate::runbook::{Applied, Check, Step, StepCtx, StepError, Verify};

/// Runs the region's probes once per `verify` and counts consecutive rounds where
/// every probe passed; a failed round resets the count.
///
/// Guarantees: no side effect at all (`apply` does nothing). Rounds are spaced by the
/// executor's verification backoff, each bounded by the policy's `detection.timeout`.
/// The count lives in this step instance, so a resumed run counts again from zero,
/// which only makes it stricter.
pub struct WaitHealthy {
    probes: Vec<RegionProbe>,
    successes: u32,
    region: RegionName,
    streak: Mutex<u32>,
}

impl WaitHealthy {
    /// The named probes in `region` (each must probe it), or when `names` is empty every
    /// critical probe that probes `region`.
    ///
    /// Errors: fatal when a named probe does not exist or does not probe the region,
    /// when no probe is left, or when a probe cannot be built.
    pub fn build(
        policy: &Policy,
        ctx: &probe::Context,
        step: &str,
        region: &RegionName,
        names: &[String],
        successes: u32,
    ) -> Result<WaitHealthy, StepError> {
        let specs: Vec<_> = if names.is_empty() {
            policy
                .probes
                .iter()
                .filter(|p| p.critical && p.regions.contains(region))
                .collect()
        } else {
            names
                .iter()
                .map(|n| {
                    let p = policy.probe(n).ok_or_else(|| {
                        StepError::fatal(format!(
                            "step `{step}` waits for probe `{n}`, which the policy does not define"
                        ))
                    })?;
                    if p.regions.contains(region) {
                        Ok(p)
                    } else {
                        Err(StepError::fatal(format!(
                            "step `{step}` waits for probe `{n}` in {region}, but that probe does not watch {region}: add the region to its target"
                        )))
                    }
                })
                .collect::<Result<_, _>>()?
        };
        if specs.is_empty() {
            return Err(StepError::fatal(format!(
                "step `{step}` has nothing to wait for: no critical probe watches {region}; name probes with `probes = [...]`"
            )));
        }
        let probes = specs
            .into_iter()
            .map(|spec| {
                let target = spec.target.as_deref().and_then(|t| policy.target(t));
                probe::build(spec, target, region, &ctx.for_policy(policy))
                    .map_err(|e| StepError::fatal(format!("step `{step}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(WaitHealthy {
            probes,
            successes: successes.max(1),
            region: region.clone(),
            streak: Mutex::new(0),
        })
    }

    fn names(&self) -> String {
        self.probes
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[async_trait]
impl Step for WaitHealthy {
    async fn check(&self, _ctx: &StepCtx) -> Result<Check, StepError> {
        Ok(Check::NotDone(format!(
            "health is observed, not remembered: waiting for {} round(s) of {} in {}",
            self.successes,
            self.names(),
            self.region
        )))
    }

    async fn apply(&self, _ctx: &StepCtx) -> Result<Applied, StepError> {
        Ok(Applied::new(format!(
            "nothing to change; waiting until {} in {} pass {} round(s) in a row",
            self.names(),
            self.region,
            self.successes
        )))
    }

    async fn verify(&self, _ctx: &StepCtx) -> Result<Verify, StepError> {
        let clock = Clock::system();
        let mut failures = Vec::new();
        for p in &self.probes {
            let obs = p.run(&clock).await;
            if let Some(reason) = obs.reason() {
                failures.push(format!("{}: {reason}", p.name));
            }
        }
        let mut streak = self.streak.lock().map_err(|_| {
            StepError::fatal("the step's round counter was poisoned (a bug: report it)")
        })?;
        if !failures.is_empty() {
            *streak = 0;
            return Ok(Verify::NotYet(format!(
                "{} in {} failed; the count starts again: {}",
                if failures.len() == 1 {
                    "a probe"
                } else {
                    "probes"
                },
                self.region,
                failures.join("; ")
            )));
        }
        *streak += 1;
        let n = *streak;
        Ok(if n >= self.successes {
            Verify::Done(format!(
                "{} in {} passed {n} round(s) in a row",
                self.names(),
                self.region
            ))
        } else {
            Verify::NotYet(format!(
                "{} in {} passed {n} of {} round(s) in a row",
                self.names(),
                self.region,
                self.successes
            ))
        })
    }
}
