//! The etcd key layout, in one place: `/lifeboat/v1/<cluster>/…` (see the table in
//! `coord/mod.rs`). Names that become key segments are checked here, so a `/` in a
//! service name cannot reach into another service's keys.

use super::error::CoordError;
use crate::core::ids::Epoch;

/// The version segment: a layout change gets a new prefix rather than a migration in place.
const ROOT: &str = "/lifeboat/v1";

/// The keys of one lifeboat cluster (one etcd prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    root: String,
}

impl Keys {
    /// Errors: `InvalidName` when `cluster` is not a valid key segment.
    pub fn new(cluster: &str) -> Result<Keys, CoordError> {
        check_segment("cluster", cluster)?;
        Ok(Keys {
            root: format!("{ROOT}/{cluster}/"),
        })
    }

    /// `/lifeboat/v1/<cluster>/`, with the trailing slash.
    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn nodes_prefix(&self) -> String {
        format!("{}nodes/", self.root)
    }

    pub fn node(&self, node: &str) -> Result<String, CoordError> {
        check_segment("node", node)?;
        Ok(format!("{}{node}", self.nodes_prefix()))
    }

    pub fn service(&self, service: &str) -> Result<ServiceKeys, CoordError> {
        check_segment("service", service)?;
        Ok(ServiceKeys {
            service: service.to_string(),
            prefix: format!("{}svc/{service}/", self.root),
        })
    }
}

/// The keys of one service, `/lifeboat/v1/<cluster>/svc/<service>/…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceKeys {
    service: String,
    prefix: String,
}

impl ServiceKeys {
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The service's prefix, with the trailing slash. Fenced writes stay under it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn leader(&self) -> String {
        format!("{}leader", self.prefix)
    }

    pub fn votes_prefix(&self) -> String {
        format!("{}votes/", self.prefix)
    }

    pub fn vote(&self, observer: &str) -> Result<String, CoordError> {
        check_segment("observer", observer)?;
        Ok(format!("{}{observer}", self.votes_prefix()))
    }

    pub fn state(&self) -> String {
        format!("{}state", self.prefix)
    }

    pub fn pause(&self) -> String {
        format!("{}pause", self.prefix)
    }

    pub fn cooldown_until(&self) -> String {
        format!("{}cooldown_until", self.prefix)
    }

    pub fn run_current(&self) -> String {
        format!("{}run/current", self.prefix)
    }

    /// `run/<id>/`: everything recorded about one run.
    pub fn run_prefix(&self, run_id: &str) -> Result<String, CoordError> {
        check_segment("run id", run_id)?;
        Ok(format!("{}run/{run_id}/", self.prefix))
    }

    /// `run/<id>/step/<seq>/intent/<epoch>`: an epoch's intent to apply a step, written
    /// once per epoch (a controller that resumes the step records its own intent).
    /// Numbers are zero-padded so the keys list in order.
    pub fn step_intent(&self, run_id: &str, seq: u32, epoch: Epoch) -> Result<String, CoordError> {
        Ok(format!(
            "{}step/{seq:06}/intent/{:020}",
            self.run_prefix(run_id)?,
            epoch.0
        ))
    }

    /// `run/<id>/step/<seq>/done`: the step's outcome (done, adopted or failed), written
    /// once per step whatever the epoch, so no two epochs ever record it.
    pub fn step_done(&self, run_id: &str, seq: u32) -> Result<String, CoordError> {
        Ok(format!("{}step/{seq:06}/done", self.run_prefix(run_id)?))
    }

    /// Whether `key` belongs to this service (fenced writes refuse any other key).
    pub fn owns(&self, key: &str) -> bool {
        key.starts_with(&self.prefix) && key.len() > self.prefix.len()
    }
}

/// A name used as one key segment: 1–128 of `[A-Za-z0-9._-]`, not `.` or `..`.
fn check_segment(what: &'static str, name: &str) -> Result<(), CoordError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CoordError::InvalidName {
            what,
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        let keys = Keys::new("prod").expect("cluster");
        let svc = keys.service("checkout").expect("service");
        assert_eq!(svc.leader(), "/lifeboat/v1/prod/svc/checkout/leader");
        assert_eq!(
            svc.vote("obs-1").expect("observer"),
            "/lifeboat/v1/prod/svc/checkout/votes/obs-1"
        );
        assert_eq!(
            svc.step_intent("fo-20261123-153012-7f3a", 7, Epoch(42))
                .expect("step"),
            "/lifeboat/v1/prod/svc/checkout/run/fo-20261123-153012-7f3a/step/000007/intent/00000000000000000042"
        );
        assert_eq!(
            svc.step_done("fo-20261123-153012-7f3a", 7).expect("step"),
            "/lifeboat/v1/prod/svc/checkout/run/fo-20261123-153012-7f3a/step/000007/done"
        );
        assert_eq!(
            svc.run_current(),
            "/lifeboat/v1/prod/svc/checkout/run/current"
        );
        assert_eq!(
            keys.node("ctl-a").expect("node"),
            "/lifeboat/v1/prod/nodes/ctl-a"
        );
        assert!(svc.owns(&svc.state()));
        assert!(!svc.owns("/lifeboat/v1/prod/svc/checkout2/state"));
        assert!(!svc.owns(svc.prefix()));
    }

    #[test]
    fn a_name_that_would_escape_its_segment_is_refused_with_what_it_names() {
        let keys = Keys::new("prod").expect("cluster");
        for bad in ["", "a/b", "..", "x y", &"n".repeat(129)] {
            let err = keys.service(bad).expect_err(bad);
            assert!(
                err.to_string().contains("service name"),
                "names the field: {err}"
            );
        }
        assert!(Keys::new("a/b").is_err());
    }
}
