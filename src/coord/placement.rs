//! "The leader must not live with the patient": a controller in the service's primary
//! region campaigns only when no healthy controller elsewhere is registered (an observer,
//! which never campaigns, does not count). Pure: the
//! registry and the time are passed in.

use std::time::Duration;

use crate::core::model::RegionName;
use crate::core::time::Ts;

use super::records::NodeRecord;

/// Whether this controller should campaign for a service now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Campaign: this controller is outside the primary region, or nobody outside is
    /// healthy.
    Campaign,
    /// Stand back: `node` in `region`, outside the primary region, is healthy and should
    /// lead instead.
    Defer { node: String, region: RegionName },
}

/// Decides for controller `me` in `my_region`, for a service whose primary region is
/// `primary`. A registered node counts as healthy while its last loop is no older than
/// `stale_after` (its registry key vanishes with its lease when it dies; a stuck loop
/// keeps the key alive, which is why the loop time is checked too).
pub fn placement(
    me: &str,
    my_region: &RegionName,
    primary: &RegionName,
    nodes: &[NodeRecord],
    now: Ts,
    stale_after: Duration,
) -> Placement {
    if my_region != primary {
        return Placement::Campaign;
    }
    nodes
        .iter()
        .filter(|n| n.node != me && n.campaigns && &n.region != primary)
        .filter(|n| now.since(n.last_loop) <= stale_after)
        .min_by(|a, b| a.node.cmp(&b.node))
        .map_or(Placement::Campaign, |n| Placement::Defer {
            node: n.node.clone(),
            region: n.region.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, region: &str, last_loop: u64) -> NodeRecord {
        NodeRecord {
            node: name.to_string(),
            region: RegionName::new(region),
            version: "test".to_string(),
            last_loop: Ts(last_loop),
            campaigns: true,
        }
    }

    #[test]
    fn a_controller_in_the_primary_region_defers_to_a_healthy_one_elsewhere() {
        let (east, west) = (RegionName::new("us-east-1"), RegionName::new("us-west-2"));
        let stale = Duration::from_secs(10);
        let nodes = [
            node("a", "us-east-1", 100_000),
            node("b", "us-west-2", 99_000),
        ];
        assert_eq!(
            placement("a", &east, &east, &nodes, Ts(100_000), stale),
            Placement::Defer {
                node: "b".into(),
                region: west.clone()
            }
        );
        assert_eq!(
            placement("b", &west, &east, &nodes, Ts(100_000), stale),
            Placement::Campaign,
            "outside the primary region always campaigns"
        );
        // b's loop is stuck: a campaigns rather than leave the service unled.
        assert_eq!(
            placement("a", &east, &east, &nodes, Ts(120_000), stale),
            Placement::Campaign
        );
        // Another controller in the primary region is no reason to defer.
        let same = [
            node("a", "us-east-1", 100_000),
            node("c", "us-east-1", 100_000),
        ];
        assert_eq!(
            placement("a", &east, &east, &same, Ts(100_000), stale),
            Placement::Campaign
        );
    }

    #[test]
    fn an_observer_elsewhere_is_no_reason_to_defer_because_it_never_leads() {
        let east = RegionName::new("us-east-1");
        let stale = Duration::from_secs(10);
        let mut observer = node("obs", "eu-west-1", 100_000);
        observer.campaigns = false;
        let nodes = [node("a", "us-east-1", 100_000), observer];
        assert_eq!(
            placement("a", &east, &east, &nodes, Ts(100_000), stale),
            Placement::Campaign,
            "with only an observer elsewhere, the controller in the primary region leads"
        );
    }
}
