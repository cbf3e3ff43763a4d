//! `[targets.NAME]`: resources that exist once per region. Shared fields sit in the
//! target's table; each region's own fields in `[targets.NAME.regions.REGION]`. Without a
//! `regions` table the target is the same in every serving region (CloudFront, say).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::de::DeserializeOwned;

use super::build::check_name;
use super::channels::kind_of;
use super::checks::{inline_credentials, secret};
use super::diag::{Diagnostic, Report};
use super::raw::target as rt;
use super::spans::{self, Table, Value, closest, de, key_str, table_value, take};
use super::tls;
use crate::core::model::{
    AuroraEndpoint, DnsRecord, DnsStyle, Endpoint, PostgresEndpoint, RegionName, Regions,
    Route53Endpoint, Target, TargetKind,
};

pub fn build(
    report: &mut Report,
    section: Option<(Range<usize>, Value<'_>)>,
    regions: Option<&Regions>,
    broken: &mut BTreeSet<String>,
) -> Vec<Target> {
    let Some((_, value)) = section else {
        return Vec::new();
    };
    let Some((_, table)) = spans::as_table(report, value, "`targets`") else {
        return Vec::new();
    };
    let kinds: Vec<&str> = TargetKind::ALL.iter().map(|k| k.as_str()).collect();
    let mut out = Vec::new();
    for (key, value) in table {
        let name = key_str(&key).to_string();
        if !check_name(report, "target name", &name, key.span()) {
            continue;
        }
        let what = format!("target `{name}`");
        // Until proven whole, a target is broken: references to it stay quiet rather
        // than repeating its error as "unknown target" or "no settings".
        broken.insert(name.clone());
        let errors_before = report.errors().count();
        let Some((span, mut t)) = spans::as_table(report, value, &what) else {
            continue;
        };
        let Some(kind) = kind_of(report, &mut t, span.clone(), &what, &kinds) else {
            continue;
        };
        let Some(kind) = TargetKind::ALL.iter().copied().find(|k| k.as_str() == kind) else {
            continue;
        };
        let per_region = per_region_tables(report, &mut t, span.clone(), regions, &name);
        let mut endpoints = BTreeMap::new();
        for (region, region_span, own) in per_region {
            let mut merged = t.clone();
            for (k, v) in own {
                merged.insert(k, v);
            }
            let aws_region = region.0.clone();
            if let Some(ep) = endpoint(report, kind, table_value(region_span, merged), aws_region) {
                endpoints.insert(region, ep);
            }
        }
        if report.errors().count() == errors_before {
            broken.remove(&name);
        }
        out.push(Target {
            name,
            kind,
            regions: endpoints,
        });
    }
    out
}

/// The `regions` table split into (region, span, its own fields); without one, every
/// serving region with no fields of its own.
fn per_region_tables<'i>(
    report: &mut Report,
    t: &mut Table<'i>,
    span: Range<usize>,
    regions: Option<&Regions>,
    target: &str,
) -> Vec<(RegionName, Range<usize>, Table<'i>)> {
    let serving: Vec<String> = regions
        .map(|r| r.serving().map(|n| n.0.clone()).collect())
        .unwrap_or_default();
    let Some((_, value)) = take(t, "regions") else {
        return serving
            .into_iter()
            .map(|r| (RegionName(r), span.clone(), Table::new()))
            .collect();
    };
    let Some((_, table)) =
        spans::as_table(report, value, &format!("`regions` of target `{target}`"))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in table {
        let region = key_str(&key).to_string();
        if regions.is_some() && !serving.contains(&region) {
            let mut d = Diagnostic::error(
                "unknown-region",
                format!("target `{target}` has settings for `{region}`, which is not a region of this service"),
            )
            .at(key.span())
            .label("unknown region");
            d.help = Some(match closest(&region, serving.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("the service's regions are: {}", serving.join(", ")),
            });
            report.push(d);
            continue;
        }
        let Some((rspan, rt)) = spans::as_table(
            report,
            value,
            &format!("region `{region}` of target `{target}`"),
        ) else {
            continue;
        };
        out.push((RegionName(region), rspan, rt));
    }
    out
}

fn endpoint(
    report: &mut Report,
    kind: TargetKind,
    v: Value<'_>,
    aws_region: String,
) -> Option<Endpoint> {
    let r = |o: Option<String>| o.unwrap_or_else(|| aws_region.clone());
    Some(match kind {
        TargetKind::Postgres => {
            let p: rt::Postgres = get(report, v, kind)?;
            let port = port(report, p.port, 5432)?;
            let password = match p.password {
                Some(s) => Some(secret(report, "password", s)?),
                None => None,
            };
            let (sslmode, ca_file) =
                tls::postgres(report, &p.host, p.sslmode.as_ref(), p.ca_file.as_ref())?;
            Endpoint::Postgres(PostgresEndpoint {
                host: p.host.into_inner(),
                port,
                user: p.user.into_inner(),
                database: p.database.into_inner(),
                password,
                sslmode,
                ca_file,
            })
        }
        TargetKind::Http => {
            let h: rt::Http = get(report, v, kind)?;
            let url = h.url.get_ref();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                report.push(
                    Diagnostic::error("bad-url", format!("\"{url}\" is not an http(s) URL"))
                        .at(h.url.span())
                        .label("not a URL")
                        .help("write the full URL, e.g. url = \"https://api.example.com/health\""),
                );
                return None;
            }
            if inline_credentials(report, url, h.url.span()) {
                return None;
            }
            Endpoint::Http {
                url: h.url.into_inner(),
            }
        }
        TargetKind::Tcp => {
            let t: rt::Tcp = get(report, v, kind)?;
            let port = port(report, Some(t.port), 0)?;
            Endpoint::Tcp {
                host: t.host.into_inner(),
                port,
            }
        }
        TargetKind::Redis => {
            let t: rt::Redis = get(report, v, kind)?;
            let url = t.url.get_ref();
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                report.push(
                    Diagnostic::error("bad-url", format!("\"{url}\" is not a redis:// URL"))
                        .at(t.url.span())
                        .label("not a Redis URL")
                        .help("write it as url = \"redis://host:6379/0\" (rediss:// for TLS)"),
                );
                return None;
            }
            if inline_credentials(report, url, t.url.span()) {
                return None;
            }
            let password = match t.password {
                Some(s) => Some(secret(report, "password", s)?),
                None => None,
            };
            let ca_file = tls::redis(report, &t.url, t.ca_file.as_ref())?;
            Endpoint::Redis {
                url: t.url.into_inner(),
                password,
                ca_file,
            }
        }
        TargetKind::S3 => {
            let t: rt::S3 = get(report, v, kind)?;
            Endpoint::S3 {
                bucket: t.bucket.into_inner(),
                prefix: t.prefix.unwrap_or_else(|| "lifeboat/".to_string()),
                aws_region: r(t.aws_region),
            }
        }
        TargetKind::RdsInstance => {
            let t: rt::RdsInstance = get(report, v, kind)?;
            Endpoint::RdsInstance {
                instance_id: t.instance_id.into_inner(),
                aws_region: r(t.aws_region),
            }
        }
        TargetKind::AuroraCluster => {
            let t: rt::AuroraCluster = get(report, v, kind)?;
            Endpoint::AuroraCluster(AuroraEndpoint {
                cluster_id: t.cluster_id.into_inner(),
                global_cluster_id: t.global_cluster_id.into_inner(),
                aws_region: r(t.aws_region),
            })
        }
        TargetKind::Route53 => {
            let t: rt::Route53 = get(report, v, kind)?;
            route53(report, t)?
        }
        TargetKind::Asg => {
            let t: rt::Asg = get(report, v, kind)?;
            Endpoint::Asg {
                group: t.group.into_inner(),
                aws_region: r(t.aws_region),
            }
        }
        TargetKind::Ecs => {
            let t: rt::Ecs = get(report, v, kind)?;
            Endpoint::Ecs {
                cluster: t.cluster.into_inner(),
                service: t.service.into_inner(),
                aws_region: r(t.aws_region),
            }
        }
        TargetKind::Cloudfront => {
            let t: rt::Cloudfront = get(report, v, kind)?;
            Endpoint::Cloudfront {
                distribution_id: t.distribution_id.into_inner(),
            }
        }
    })
}

fn get<T: DeserializeOwned>(report: &mut Report, v: Value<'_>, kind: TargetKind) -> Option<T> {
    let help = format!(
        "a `{kind}` target; fields shared by all regions go in its [targets.NAME] table, per-region ones in [targets.NAME.regions.REGION]"
    );
    de(report, v, Some(&help))
}

fn port(report: &mut Report, v: Option<toml::Spanned<i64>>, default: u16) -> Option<u16> {
    let Some(v) = v else { return Some(default) };
    match u16::try_from(*v.get_ref()) {
        Ok(p) if p > 0 => Some(p),
        _ => {
            report.push(
                Diagnostic::error(
                    "out-of-range",
                    format!("port {} is not a TCP port", v.get_ref()),
                )
                .at(v.span())
                .label("not in 1..=65535")
                .help("ports are 1 to 65535"),
            );
            None
        }
    }
}

fn route53(report: &mut Report, t: rt::Route53) -> Option<Endpoint> {
    let style = match *t.style.get_ref() {
        rt::DnsStyle::FailoverPair => DnsStyle::FailoverPair,
        rt::DnsStyle::Weighted => DnsStyle::Weighted,
        rt::DnsStyle::Simple => DnsStyle::Simple,
    };
    let needs: &[(&str, bool)] = match style {
        // The health check is read from the PRIMARY record when the policy names none.
        DnsStyle::FailoverPair => &[("set_identifier", t.set_identifier.is_some())],
        DnsStyle::Weighted => &[("set_identifier", t.set_identifier.is_some())],
        DnsStyle::Simple => &[("value", t.value.is_some())],
    };
    let mut ok = true;
    for (field, present) in needs {
        if !present {
            report.push(
                Diagnostic::error(
                    "missing-field",
                    format!("a `{}` Route 53 target needs `{field}`", style.as_str()),
                )
                .at(t.style.span())
                .label(format!("style {}", style.as_str()))
                .help(format!(
                    "add `{field} = …` to the target or to each of its regions"
                )),
            );
            ok = false;
        }
    }
    let ttl = match &t.ttl {
        Some(v) if !(1..=86_400).contains(v.get_ref()) => {
            report.push(
                Diagnostic::error(
                    "out-of-range",
                    format!("ttl {} is not between 1 and 86400 seconds", v.get_ref()),
                )
                .at(v.span())
                .label("out of range")
                .help("failover records usually use a TTL of 60 seconds or less"),
            );
            ok = false;
            0
        }
        Some(v) => *v.get_ref() as u32,
        None => 60,
    };
    if !ok {
        return None;
    }
    let record = match (style, t.set_identifier, t.value) {
        (DnsStyle::FailoverPair, Some(set_identifier), _) => DnsRecord::FailoverPair {
            set_identifier: set_identifier.into_inner(),
            health_check_id: t.health_check_id.map(|s| s.into_inner()),
        },
        (DnsStyle::Weighted, Some(set_identifier), _) => DnsRecord::Weighted {
            set_identifier: set_identifier.into_inner(),
        },
        (DnsStyle::Simple, _, Some(value)) => DnsRecord::Simple {
            value: value.into_inner(),
        },
        // Reported above as missing fields.
        _ => return None,
    };
    let mut record_name = t.record_name.into_inner();
    if !record_name.ends_with('.') {
        record_name.push('.');
    }
    Some(Endpoint::Route53(Route53Endpoint {
        zone_id: t.zone_id.into_inner(),
        record_name,
        record_type: t
            .record_type
            .map(|r| r.into_inner())
            .unwrap_or_else(|| "A".to_string()),
        ttl,
        record,
    }))
}
