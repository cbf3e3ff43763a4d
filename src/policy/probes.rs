//! `[[probes]]`: what to watch in each region, and what counts as healthy.

use std::collections::BTreeSet;
use std::ops::Range;
use toml::Spanned;

use super::build::{Broken, check_name, count};
use super::diag::{Diagnostic, Report};
use super::limits;
use super::raw::{self, PROBE_COMMON_FIELDS, RawComponent, probe as rp};
use super::spans::{self, Value, closest, de, split, table_value};
use crate::core::model::{
    Component, ProbeCheck, ProbeSpec, RegionName, Regions, Target, TargetKind,
};

pub(super) const KINDS: &[&str] = &[
    "http",
    "postgres",
    "tcp",
    "redis",
    "s3",
    "rds",
    "heartbeat",
    "command",
];

/// The target kinds a probe kind can watch.
fn watches(kind: &str) -> &'static [TargetKind] {
    match kind {
        "http" => &[TargetKind::Http],
        "postgres" => &[TargetKind::Postgres],
        "tcp" => &[TargetKind::Tcp],
        "redis" => &[TargetKind::Redis],
        "s3" => &[TargetKind::S3],
        "rds" => &[TargetKind::RdsInstance, TargetKind::AuroraCluster],
        "heartbeat" => &[
            TargetKind::Http,
            TargetKind::Redis,
            TargetKind::S3,
            TargetKind::Asg,
            TargetKind::Ecs,
        ],
        _ => &[],
    }
}

pub fn build(
    report: &mut Report,
    section: Option<(Range<usize>, Value<'_>)>,
    regions: Option<&Regions>,
    targets: &[Target],
    broken: &mut Broken,
) -> Vec<ProbeSpec> {
    let Some((_, value)) = section else {
        // Reported by the coverage check, which knows which region is left unwatched.
        return Vec::new();
    };
    let hint = "write each probe as a [[probes]] table";
    let Some(items) = spans::as_array(report, value, "`probes`", hint) else {
        return Vec::new();
    };
    let mut out: Vec<ProbeSpec> = Vec::new();
    let mut names: Vec<(String, Range<usize>)> = Vec::new();
    for item in items {
        let Some((span, table)) = spans::as_table(report, item, "a probe") else {
            continue;
        };
        let (common, params) = split(table, PROBE_COMMON_FIELDS);
        let Some(c) = de::<raw::RawProbeCommon>(report, table_value(span.clone(), common), None)
        else {
            continue;
        };
        let name = c.name.get_ref().clone();
        if !check_name(report, "probe name", &name, c.name.span()) {
            continue;
        }
        if let Some((_, first)) = names.iter().find(|(n, _)| *n == name) {
            let (line, _) = report.line_col(first.start);
            report.push(
                Diagnostic::error("duplicate-name", format!("two probes are named `{name}`"))
                    .at(c.name.span())
                    .label("second probe with this name")
                    .help(format!(
                        "probe names must be unique; the first is on line {line}"
                    )),
            );
            continue;
        }
        names.push((name.clone(), c.name.span()));
        match probe(
            report,
            c,
            table_value(span, params),
            regions,
            targets,
            broken,
        ) {
            Some(p) => out.push(p),
            None => {
                broken.probes.insert(name);
            }
        }
    }
    out
}

fn probe(
    report: &mut Report,
    c: raw::RawProbeCommon,
    params: Value<'_>,
    regions: Option<&Regions>,
    targets: &[Target],
    broken: &Broken,
) -> Option<ProbeSpec> {
    let kind = c.kind.get_ref().as_str();
    if !KINDS.contains(&kind) {
        let mut d = Diagnostic::error(
            "unknown-kind",
            format!("probe `{}` has unknown kind `{kind}`", c.name.get_ref()),
        )
        .at(c.kind.span())
        .label("unknown probe kind");
        d.help = Some(match closest(kind, KINDS.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("one of: {}", KINDS.join(", ")),
        });
        report.push(d);
        return None;
    }
    let name = c.name.get_ref().clone();
    let target = resolve_target(report, &c, kind, targets, &broken.targets)?;
    let probe_regions = probe_regions(report, &c, kind, target, regions)?;
    let check = check(report, kind, params, target, c.kind.span())?;
    Some(ProbeSpec {
        name,
        component: match c.component {
            RawComponent::Database => Component::Database,
            RawComponent::Api => Component::Api,
            RawComponent::Workers => Component::Workers,
            RawComponent::Storage => Component::Storage,
        },
        critical: c.critical.unwrap_or(true),
        target: target.map(|t| t.name.clone()),
        regions: probe_regions,
        check,
    })
}

/// The probe's target: required, existing and of a fitting kind, except for `command`.
fn resolve_target<'t>(
    report: &mut Report,
    c: &raw::RawProbeCommon,
    kind: &str,
    targets: &'t [Target],
    broken: &BTreeSet<String>,
) -> Option<Option<&'t Target>> {
    let name = c.name.get_ref();
    if kind == "command" {
        if let Some(t) = &c.target {
            report.push(
                Diagnostic::error(
                    "target-kind",
                    format!("command probe `{name}` takes no target"),
                )
                .at(t.span())
                .label("not used by command probes")
                .help(
                    "remove `target`; list the regions to run the command for with regions = [...]",
                ),
            );
            return None;
        }
        return Some(None);
    }
    let Some(t) = &c.target else {
        report.push(
            Diagnostic::error("missing-field", format!("probe `{name}` has no `target`"))
                .at(c.name.span())
                .label("this probe")
                .help("name the target it watches: target = \"…\" (defined under [targets.NAME])"),
        );
        return None;
    };
    let found = lookup_target(report, t, targets, broken, "probe", name)?;
    let fits = watches(kind);
    if !fits.contains(&found.kind) {
        let kinds: Vec<&str> = fits.iter().map(|k| k.as_str()).collect();
        report.push(
            Diagnostic::error(
                "target-kind",
                format!(
                    "a `{kind}` probe cannot watch target `{}`, which is a `{}`",
                    found.name, found.kind
                ),
            )
            .at(t.span())
            .label(format!("a {} target", found.kind))
            .help(format!(
                "a `{kind}` probe watches targets of kind {}",
                kinds.join(" or ")
            )),
        );
        return None;
    }
    Some(Some(found))
}

/// Looks a target up by name, reporting an unknown name with a suggestion.
pub fn lookup_target<'t>(
    report: &mut Report,
    t: &Spanned<String>,
    targets: &'t [Target],
    broken: &BTreeSet<String>,
    what: &str,
    name: &str,
) -> Option<&'t Target> {
    if broken.contains(t.get_ref()) {
        // Its own definition's error is already reported.
        return None;
    }
    if let Some(found) = targets.iter().find(|x| x.name == *t.get_ref()) {
        return Some(found);
    }
    let mut d = Diagnostic::error(
        "unknown-target",
        format!(
            "{what} `{name}` names target `{}`, which is not defined",
            t.get_ref()
        ),
    )
    .at(t.span())
    .label("no such target");
    d.help = Some(
        match closest(t.get_ref(), targets.iter().map(|x| x.name.as_str())) {
            Some(s) => format!("did you mean `{s}`?"),
            None if targets.is_empty() => format!("define it in a [targets.{}] table", t.get_ref()),
            None => {
                let names: Vec<&str> = targets.iter().map(|x| x.name.as_str()).collect();
                format!("defined targets: {}", names.join(", "))
            }
        },
    );
    report.push(d);
    None
}

fn probe_regions(
    report: &mut Report,
    c: &raw::RawProbeCommon,
    kind: &str,
    target: Option<&Target>,
    regions: Option<&Regions>,
) -> Option<Vec<RegionName>> {
    let regions = regions?;
    let name = c.name.get_ref();
    let Some(listed) = &c.regions else {
        if kind == "command" {
            report.push(
                Diagnostic::error("missing-field", format!("command probe `{name}` does not say which regions it checks"))
                    .at(c.name.span())
                    .label("this probe")
                    .help("add regions = [\"us-east-1\", \"us-west-2\"]; the command sees LIFEBOAT_REGION"),
            );
            return None;
        }
        // Default: every serving region the target is defined in, primary first.
        let t = target?;
        return Some(
            regions
                .serving()
                .filter(|r| t.regions.contains_key(*r))
                .cloned()
                .collect(),
        );
    };
    let mut out = Vec::new();
    let mut ok = true;
    for r in listed.get_ref() {
        let region = RegionName(r.get_ref().clone());
        if !regions.is_serving(&region) {
            let serving: Vec<&str> = regions.serving().map(|r| r.as_str()).collect();
            let mut d = Diagnostic::error(
                "unknown-region",
                format!("probe `{name}` lists `{region}`, which is not a serving region"),
            )
            .at(r.span())
            .label("unknown region");
            d.help = Some(match closest(region.as_str(), serving.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("the service's regions are: {}", serving.join(", ")),
            });
            report.push(d);
            ok = false;
            continue;
        }
        if let Some(t) = target
            && !t.regions.contains_key(&region)
        {
            report.push(
                Diagnostic::error(
                    "no-endpoint",
                    format!(
                        "probe `{name}` checks `{region}`, but target `{}` has no settings there",
                        t.name
                    ),
                )
                .at(r.span())
                .label("no settings for this region")
                .help(format!(
                    "add [targets.{}.regions.{region}] or drop the region from the probe",
                    t.name
                )),
            );
            ok = false;
            continue;
        }
        out.push(region);
    }
    ok.then_some(out)
}

fn check(
    report: &mut Report,
    kind: &str,
    params: Value<'_>,
    target: Option<&Target>,
    kind_span: Range<usize>,
) -> Option<ProbeCheck> {
    let extra = format!(
        "settings of a `{kind}` probe; every probe also takes {}",
        PROBE_COMMON_FIELDS.join(", ")
    );
    let extra = Some(extra.as_str());
    let dur = |d: Option<Spanned<raw::RawDuration>>| d.map(|d| d.into_inner().0);
    Some(match kind {
        "http" => {
            let h: rp::Http = de(report, params, extra)?;
            let mut expect_status = Vec::new();
            for s in h.expect_status.map(|s| s.into_inner()).unwrap_or_default() {
                let code = *s.get_ref();
                if !(100..=599).contains(&code) {
                    report.push(
                        Diagnostic::error("out-of-range", format!("{code} is not an HTTP status"))
                            .at(s.span())
                            .label("not 100..=599")
                            .help("list healthy statuses, e.g. expect_status = [200, 204]"),
                    );
                    return None;
                }
                expect_status.push(code as u16);
            }
            if expect_status.is_empty() {
                expect_status.push(200);
            }
            if let (Some(f), None) | (None, Some(f)) = (&h.json_field, &h.json_equals) {
                report.push(
                    Diagnostic::error(
                        "incomplete-check",
                        "`json_field` and `json_equals` go together",
                    )
                    .at(f.span())
                    .label("needs its partner")
                    .help("e.g. json_field = \"checks.database\" and json_equals = \"healthy\""),
                );
                return None;
            }
            if !limits::at_most(
                report,
                "max_latency",
                h.max_latency.as_ref(),
                limits::MAX_LATENCY,
                "a latency budget of seconds; a round cannot outlast detection.timeout anyway",
            ) {
                return None;
            }
            ProbeCheck::Http {
                expect_status,
                body_contains: h.body_contains,
                json_field: h.json_field.map(|s| s.into_inner()),
                json_equals: h.json_equals.map(|s| s.into_inner()),
                max_latency: dur(h.max_latency),
            }
        }
        "heartbeat" => {
            let h: rp::Heartbeat = de(report, params, extra)?;
            let target = target?;
            let needs_age = matches!(
                target.kind,
                TargetKind::Http | TargetKind::Redis | TargetKind::S3
            );
            let needs_key = matches!(target.kind, TargetKind::Redis | TargetKind::S3);
            let mut missing = Vec::new();
            if !limits::at_most(
                report,
                "max_age",
                h.max_age.as_ref(),
                limits::HEARTBEAT_MAX_AGE,
                "how old the newest heartbeat may be: a few times the workers' beat",
            ) {
                return None;
            }
            if needs_age && h.max_age.is_none() {
                missing.push("max_age = \"30s\" (how old the newest heartbeat may be)");
            }
            if needs_key && h.key.is_none() {
                missing.push("key = \"…\" (the Redis key or S3 object holding the heartbeat)");
            }
            if !missing.is_empty() {
                report.push(
                    Diagnostic::error(
                        "incomplete-check",
                        format!(
                            "a heartbeat probe on a {} target needs more settings",
                            target.kind
                        ),
                    )
                    .at(kind_span)
                    .label("this heartbeat probe")
                    .help(format!("add {}", missing.join(" and "))),
                );
                return None;
            }
            let why =
                "min_count is the fewest in-service instances or running tasks that count as alive";
            let min_count = match (&target.kind, h.min_count) {
                (TargetKind::Asg | TargetKind::Ecs, v) => {
                    Some(count(report, "min_count", v, 1, 1, 100_000, why)?)
                }
                (_, Some(v)) => {
                    report.push(
                        Diagnostic::error(
                            "target-kind",
                            format!(
                                "`min_count` applies to asg and ecs targets, not {}",
                                target.kind
                            ),
                        )
                        .at(v.span())
                        .label("not used here")
                        .help(
                            "remove it, or use max_age for heartbeats read from HTTP, Redis or S3",
                        ),
                    );
                    return None;
                }
                (_, None) => None,
            };
            ProbeCheck::Heartbeat {
                max_age: dur(h.max_age),
                key: h.key.map(|k| k.into_inner()),
                min_count,
            }
        }
        "command" => {
            let c: rp::Command = de(report, params, extra)?;
            if c.run.get_ref().is_empty() || c.run.get_ref()[0].trim().is_empty() {
                report.push(
                    Diagnostic::error("empty-command", "the command probe has nothing to run")
                        .at(c.run.span())
                        .label("empty")
                        .help("give the program and its arguments: run = [\"/usr/local/bin/check\", \"--fast\"]"),
                );
                return None;
            }
            ProbeCheck::Command {
                run: c.run.into_inner(),
            }
        }
        other => {
            let _: rp::Plain = de(report, params, extra)?;
            match other {
                "postgres" => ProbeCheck::Postgres,
                "tcp" => ProbeCheck::Tcp,
                "redis" => ProbeCheck::Redis,
                "s3" => ProbeCheck::S3,
                _ => ProbeCheck::Rds,
            }
        }
    })
}
