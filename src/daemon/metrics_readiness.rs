//! The readiness metrics: per step of each runbook (and for the IAM permissions),
//! whether the latest round found it ready.
//!
//! `lifeboat_readiness_ok{direction,step}` is 1 for ready and 0 for not ready; a step
//! whose check could not tell has no `ok` series but `lifeboat_readiness_cannot_tell`
//! at 1, so an alert on `lifeboat_readiness_ok == 0` fires only on a real finding.
//! The permissions check goes by `direction="all", step="permissions"`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::core::readiness::{ReadinessReport, ReadyState};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadinessLabels {
    pub direction: String,
    pub step: String,
}

#[derive(Debug)]
pub struct ReadinessMetrics {
    ok: Family<ReadinessLabels, Gauge>,
    cannot_tell: Family<ReadinessLabels, Gauge>,
    last_round: Gauge<f64, AtomicU64>,
}

impl ReadinessMetrics {
    pub fn register(registry: &mut Registry) -> ReadinessMetrics {
        let m = ReadinessMetrics {
            ok: Family::default(),
            cannot_tell: Family::default(),
            last_round: Gauge::default(),
        };
        registry.register(
            "readiness_ok",
            "1 when the latest readiness round found the step ready, 0 when not ready (absent when it could not tell)",
            m.ok.clone(),
        );
        registry.register(
            "readiness_cannot_tell",
            "1 when the latest readiness round could not tell whether the step would work",
            m.cannot_tell.clone(),
        );
        registry.register(
            "readiness_last_round_timestamp_seconds",
            "When the latest readiness round finished (Unix time)",
            m.last_round.clone(),
        );
        m
    }

    pub fn round(&self, r: &ReadinessReport) {
        for ((direction, step), found) in r.findings() {
            let l = ReadinessLabels {
                direction: direction.map_or("all", |d| d.as_str()).to_string(),
                step,
            };
            match found.state() {
                ReadyState::Ready | ReadyState::NotReady => {
                    let ok = i64::from(found.state() == ReadyState::Ready);
                    self.ok.get_or_create(&l).set(ok);
                    self.cannot_tell.remove(&l);
                }
                ReadyState::CannotTell => {
                    self.ok.remove(&l);
                    self.cannot_tell.get_or_create(&l).set(1);
                }
            }
        }
        self.last_round.set(r.at.as_millis() as f64 / 1000.0);
    }
}
