//! The `[coordination]` section: how the controllers of a service agree on who acts.
//! `embedded` (the default) is one controller and its SQLite journal; `etcd` is several
//! controllers and observers sharing an etcd cluster, one leader per service.

use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::build::check_name;
use super::diag::{Diagnostic, Report};
use super::etcd_access;
use super::raw::{NAME_PATTERN, RawDuration, RawSecret};
use crate::core::model::{Coordination, EtcdCoordination, Guardrails, Mode, Observer};

#[derive(Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RawBackend {
    /// One controller; its SQLite journal is the only record (the default).
    #[default]
    Embedded,
    /// Several controllers and observers on an etcd v3 cluster (etcd ≥ 3.5.13, pre-vote on).
    Etcd,
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCoordination {
    /// `embedded` (default) or `etcd`.
    #[schemars(with = "Option<RawBackend>")]
    pub backend: Option<Spanned<RawBackend>>,
    /// Names this deployment's keys: `/lifeboat/v1/<cluster>/…` (default: the service's name).
    #[schemars(with = "Option<String>", pattern(NAME_PATTERN))]
    pub cluster: Option<Spanned<String>>,
    /// The etcd members, each with the region it runs in.
    #[schemars(with = "Option<Vec<RawMember>>")]
    pub members: Option<Spanned<Vec<RawMember>>>,
    /// Every controller and observer that votes on regions, with the region it probes from.
    #[schemars(with = "Option<Vec<RawObserver>>")]
    pub observers: Option<Spanned<Vec<RawObserver>>>,
    /// The leader's lease, in whole seconds (default 5s). A dead leader is replaced after about this long.
    #[schemars(with = "Option<RawDuration>")]
    pub lease_ttl: Option<Spanned<RawDuration>>,
    /// A leader stops acting this long before its lease could expire (default 2s).
    #[schemars(with = "Option<RawDuration>")]
    pub safety_margin: Option<Spanned<RawDuration>>,
    /// The CA (PEM) that signed the https:// members' certificates (default: the system's
    /// roots). Relative to the policy file.
    #[schemars(with = "Option<String>")]
    pub ca_file: Option<Spanned<String>>,
    /// lifeboat's client certificate (PEM), for members started with `--client-cert-auth`;
    /// needs `key_file`.
    #[schemars(with = "Option<String>")]
    pub cert_file: Option<Spanned<String>>,
    /// The client certificate's private key (PEM). A path, never the key itself; keep the
    /// file readable by lifeboat alone.
    #[schemars(with = "Option<String>")]
    pub key_file: Option<Spanned<String>>,
    /// The etcd user lifeboat logs in as, when the cluster has `auth enable`; needs `password`.
    #[schemars(with = "Option<String>")]
    pub user: Option<Spanned<String>>,
    /// The etcd user's password, by reference: `{ env = "VAR" }` or `{ file = "/path" }`.
    #[schemars(with = "Option<RawSecret>")]
    pub password: Option<Spanned<RawSecret>>,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawMember {
    /// The member's client URL, `https://host:2379` (or `http://`, without TLS).
    #[schemars(with = "String")]
    pub url: Spanned<String>,
    /// Where it runs, e.g. `eu-west-1`.
    #[schemars(with = "String")]
    pub region: Spanned<String>,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawObserver {
    /// The name it runs under (`lifeboat run --node NAME`).
    #[schemars(with = "String", pattern(NAME_PATTERN))]
    pub name: Spanned<String>,
    /// Where it probes from.
    #[schemars(with = "String")]
    pub region: Spanned<String>,
}

const ETCD_EXAMPLE: &str = "[coordination]\nbackend = \"etcd\"\nmembers = [\n  { url = \"http://etcd-a.use1.internal:2379\", region = \"us-east-1\" },\n  { url = \"http://etcd-b.usw2.internal:2379\", region = \"us-west-2\" },\n  { url = \"http://etcd-c.euw1.internal:2379\", region = \"eu-west-1\" },\n]\nobservers = [\n  { name = \"ctl-use1\", region = \"us-east-1\" },\n  { name = \"ctl-usw2\", region = \"us-west-2\" },\n  { name = \"obs-euw1\", region = \"eu-west-1\" },\n]";

/// Checks the section. `mode` and `guardrails` are what the rest of the policy says;
/// the three-region rule and the HTTP witnesses depend on them.
pub fn check(
    report: &mut Report,
    mut raw: RawCoordination,
    service: Option<&str>,
    mode: Option<Mode>,
    guardrails: &Guardrails,
    witnesses_at: Range<usize>,
) -> Coordination {
    let backend = raw
        .backend
        .as_ref()
        .map(|b| *b.get_ref())
        .unwrap_or_default();
    if backend == RawBackend::Embedded {
        for (field, span) in [
            ("cluster", raw.cluster.as_ref().map(|s| s.span())),
            ("members", raw.members.as_ref().map(|s| s.span())),
            ("observers", raw.observers.as_ref().map(|s| s.span())),
            ("lease_ttl", raw.lease_ttl.as_ref().map(|s| s.span())),
            (
                "safety_margin",
                raw.safety_margin.as_ref().map(|s| s.span()),
            ),
            ("ca_file", raw.ca_file.as_ref().map(|s| s.span())),
            ("cert_file", raw.cert_file.as_ref().map(|s| s.span())),
            ("key_file", raw.key_file.as_ref().map(|s| s.span())),
            ("user", raw.user.as_ref().map(|s| s.span())),
            ("password", raw.password.as_ref().map(|s| s.span())),
        ] {
            if let Some(span) = span {
                report.push(
                    Diagnostic::error(
                        "embedded-has-no-cluster",
                        format!("`{field}` means nothing with the embedded backend"),
                    )
                    .at(span)
                    .label("only for backend = \"etcd\"")
                    .help("add backend = \"etcd\" to [coordination], or remove this field"),
                );
            }
        }
        return Coordination::Embedded;
    }

    let cluster = match &raw.cluster {
        Some(c) => {
            check_name(report, "cluster", c.get_ref(), c.span());
            c.get_ref().clone()
        }
        None => service.unwrap_or("lifeboat").to_string(),
    };
    let mut members = Vec::new();
    match &raw.members {
        Some(list) if !list.get_ref().is_empty() => {
            for m in list.get_ref() {
                let url = m.url.get_ref();
                if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains('@')
                {
                    report.push(
                        Diagnostic::error("bad-url", format!("etcd member \"{url}\" is not an http(s) URL"))
                            .at(m.url.span())
                            .label("not a member URL")
                            .help("give the member's client URL, e.g. \"http://etcd-a.internal:2379\" (no credentials in it)"),
                    );
                }
                members.push((url.clone(), m.region.get_ref().clone()));
            }
        }
        other => {
            report.push(
                Diagnostic::error("no-etcd-members", "the etcd backend needs its members")
                    .at(other.as_ref().map(|s| s.span()).unwrap_or(0..0))
                    .label("no members")
                    .help(format!("list them with their regions:\n{ETCD_EXAMPLE}")),
            );
        }
    }
    let access = etcd_access::RawAccess {
        ca_file: raw.ca_file.take(),
        cert_file: raw.cert_file.take(),
        key_file: raw.key_file.take(),
        user: raw.user.take(),
        password: raw.password.take(),
    };
    let (tls, auth) = etcd_access::check(
        report,
        access,
        raw.members.as_ref().map_or(&[][..], |m| m.get_ref()),
    );
    let mut observers = Vec::new();
    let mut names = BTreeSet::new();
    for o in raw
        .observers
        .as_ref()
        .map(|l| l.get_ref().as_slice())
        .unwrap_or_default()
    {
        let name = o.name.get_ref();
        check_name(report, "observer", name, o.name.span());
        if !names.insert(name.clone()) {
            report.push(
                Diagnostic::error(
                    "duplicate-observer",
                    format!("observer `{name}` is listed twice"),
                )
                .at(o.name.span())
                .label("listed before")
                .help("each controller and observer votes once; give each its own name"),
            );
        }
        observers.push(Observer {
            name: name.clone(),
            region: o.region.get_ref().clone(),
        });
    }
    let observers_at = raw.observers.as_ref().map(|s| s.span()).unwrap_or(0..0);
    if observers.is_empty() {
        report.push(
            Diagnostic::error(
                "no-observers",
                "the etcd backend needs the list of observers whose votes count",
            )
            .at(observers_at.clone())
            .label("no observers")
            .help(format!(
                "list every controller and observer with its region:\n{ETCD_EXAMPLE}"
            )),
        );
    }
    if !guardrails.witnesses.is_empty() {
        report.push(
            Diagnostic::error(
                "witnesses-with-etcd",
                "HTTP witnesses are for the embedded backend; with etcd the observers vote through etcd",
            )
            .at(witnesses_at)
            .label("not used with etcd")
            .help("remove [guardrails] witnesses and run each observer as `lifeboat run --observer --node NAME`"),
        );
    }
    let lease_ttl = raw
        .lease_ttl
        .as_ref()
        .map(|d| d.get_ref().0)
        .unwrap_or(Duration::from_secs(5));
    if let Some(t) = &raw.lease_ttl
        && (lease_ttl < Duration::from_secs(2)
            || lease_ttl > Duration::from_secs(60)
            || lease_ttl.subsec_nanos() != 0)
    {
        report.push(
            Diagnostic::error("out-of-range", format!("lease_ttl {} ms is not whole seconds between 2s and 60s", lease_ttl.as_millis()))
                .at(t.span())
                .label("out of range")
                .help("etcd grants leases in whole seconds; 5s replaces a dead leader quickly without needless handovers"),
        );
    }
    let safety_margin = raw
        .safety_margin
        .as_ref()
        .map(|d| d.get_ref().0)
        .unwrap_or(Duration::from_secs(2).min(lease_ttl / 2));
    if let Some(m) = &raw.safety_margin
        && (safety_margin.is_zero() || safety_margin >= lease_ttl)
    {
        report.push(
            Diagnostic::error("out-of-range", "safety_margin must be above zero and below lease_ttl")
                .at(m.span())
                .label("out of range")
                .help("about 40% of the TTL: a leader stops acting that long before its lease could run out"),
        );
    }

    // One region's word is never enough: with the members and observers in only two
    // regions, losing the one that holds the majority looks the same as a partition.
    let regions: BTreeSet<&str> = members
        .iter()
        .map(|(_, r)| r.as_str())
        .chain(observers.iter().map(|o| o.region.as_str()))
        .collect();
    if mode == Some(Mode::Auto) && !observers.is_empty() && !members.is_empty() && regions.len() < 3
    {
        report.push(
            Diagnostic::error(
                "needs-three-regions",
                format!(
                    "mode = \"auto\" with etcd needs members and observers in at least three regions; they are in {}: {}",
                    regions.len(),
                    regions.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            )
            .at(observers_at.clone())
            .label("too few regions")
            .help("with two regions neither side can tell an outage from a partition, so only manual failover is safe: set mode = \"manual\", or put an etcd member and an observer in a third region"),
        );
    }
    let majority = observers.len() / 2 + 1;
    if !observers.is_empty() && (guardrails.quorum as usize) > observers.len() {
        report.push(
            Diagnostic::error(
                "quorum-unreachable",
                format!("a quorum of {} needs that many observers, the policy lists {}", guardrails.quorum, observers.len()),
            )
            .at(observers_at)
            .label("too few observers")
            .help(format!("with etcd the leader counts a majority of the observers ({majority}); drop [guardrails] quorum or list more observers")),
        );
    }
    Coordination::Etcd(EtcdCoordination {
        cluster,
        members: members.into_iter().map(|(url, _)| url).collect(),
        member_regions: raw
            .members
            .as_ref()
            .map(|l| {
                l.get_ref()
                    .iter()
                    .map(|m| m.region.get_ref().clone())
                    .collect()
            })
            .unwrap_or_default(),
        observers,
        lease_ttl,
        safety_margin,
        quorum: (guardrails.quorum as usize).max(majority) as u32,
        tls,
        auth,
    })
}
