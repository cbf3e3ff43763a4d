//! `[[failover.steps]]` and `[[failback.steps]]`: the runbooks, their steps, and the
//! ordering rules (promote before DNS; verify health before moving DNS back).

use std::ops::Range;

use toml::Spanned;

use super::build::{Broken, check_name, count};
use super::diag::{Diagnostic, Report};
use super::probes::lookup_target;
use super::raw::{self, STEP_COMMON_FIELDS, step as rs};
use super::spans::{self, Value, closest, de, split, table_value, take};
use crate::core::kind::StepKind;
use crate::core::model::{
    Action, CacheScope, Channel, Direction, DnsStyle, Endpoint, ProbeSpec, RegionName, RegionRef,
    Regions, Runbook, StepSpec, Target, TargetKind,
};
use crate::core::time::fmt_duration;

/// What the runbooks may refer to, built from the sections before them.
pub struct Known<'a> {
    pub regions: Option<&'a Regions>,
    pub targets: &'a [Target],
    pub channels: &'a [Channel],
    pub probes: &'a [ProbeSpec],
    /// Names whose definitions had errors; references to them are not reported again.
    pub broken: &'a Broken,
    pub recovery_threshold: u32,
}

/// A step as parsed, with the spans the ordering checks point at.
struct Parsed {
    spec: StepSpec,
    kind_span: Range<usize>,
}

pub fn build(
    report: &mut Report,
    section: Option<(Range<usize>, Value<'_>)>,
    direction: Direction,
    known: &Known,
) -> Option<Runbook> {
    let name = direction.as_str();
    let Some((_, value)) = section else {
        report.push(
            Diagnostic::error(
                "missing-section",
                format!("the policy has no {name} runbook"),
            )
            .help(format!(
                "add the steps as [[{name}.steps]] tables, each with name, kind and region"
            )),
        );
        return None;
    };
    let (span, mut table) = spans::as_table(report, value, &format!("`{name}`"))?;
    let Some((_, steps)) = take(&mut table, "steps") else {
        report.push(
            Diagnostic::error("empty-runbook", format!("the {name} runbook has no steps"))
                .at(span)
                .label("no steps")
                .help(format!("add the steps as [[{name}.steps]] tables")),
        );
        return None;
    };
    if let Some((k, _)) = table.iter().next() {
        report.push(
            Diagnostic::error(
                "unknown-field",
                format!(
                    "unknown field `{}` in the {name} runbook",
                    spans::key_str(k)
                ),
            )
            .at(k.span())
            .label("unknown field")
            .help(format!(
                "a runbook has only `steps`, written as [[{name}.steps]] tables"
            )),
        );
    }
    let items = spans::as_array(
        report,
        steps,
        &format!("`{name}.steps`"),
        &format!("write each step as a [[{name}.steps]] table"),
    )?;
    if items.is_empty() {
        report.push(
            Diagnostic::error("empty-runbook", format!("the {name} runbook has no steps"))
                .at(span)
                .label("empty")
                .help(format!("add the steps as [[{name}.steps]] tables")),
        );
        return None;
    }
    let mut parsed: Vec<Parsed> = Vec::new();
    let mut complete = true;
    for item in items {
        match step(report, item, direction, known, &parsed) {
            Some(p) => parsed.push(p),
            None => complete = false,
        }
    }
    if !complete {
        return None;
    }
    check_stages(report, &parsed);
    check_order(report, &parsed, direction, known);
    Some(Runbook {
        steps: parsed.into_iter().map(|p| p.spec).collect(),
    })
}

fn step(
    report: &mut Report,
    item: Value<'_>,
    direction: Direction,
    known: &Known,
    before: &[Parsed],
) -> Option<Parsed> {
    let (span, table) = spans::as_table(report, item, "a step")?;
    let (common, params) = split(table, STEP_COMMON_FIELDS);
    let c: raw::RawStepCommon = de(report, table_value(span.clone(), common), None)?;
    let name = c.name.get_ref().clone();
    if !check_name(report, "step name", &name, c.name.span()) {
        return None;
    }
    if let Some(first) = before.iter().find(|p| p.spec.name == name) {
        let (line, _) = report.line_col(first.kind_span.start);
        report.push(
            Diagnostic::error(
                "duplicate-name",
                format!("two {direction} steps are named `{name}`"),
            )
            .at(c.name.span())
            .label("second step with this name")
            .help(format!(
                "step names must be unique within a runbook; the first is near line {line}"
            )),
        );
        return None;
    }
    let written = c.kind.get_ref().as_str();
    let Some(kind) = StepKind::from_name(written) else {
        let mut d = Diagnostic::error(
            "unknown-kind",
            format!("step `{name}` has unknown kind `{written}`"),
        )
        .at(c.kind.span())
        .label("unknown step kind");
        d.help = Some(match closest(written, StepKind::names()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!(
                "one of: {}",
                StepKind::names().collect::<Vec<_>>().join(", ")
            ),
        });
        report.push(d);
        return None;
    };
    let region = region_ref(report, &c, kind, known)?;
    let extra = format!(
        "parameters of a `{kind}` step; every step also takes {}",
        STEP_COMMON_FIELDS.join(", ")
    );
    let action = action(
        report,
        kind,
        table_value(span, params),
        &extra,
        known,
        &name,
        &region,
        direction,
    )?;
    let timeout = match &c.timeout {
        Some(t) if t.get_ref().0.is_zero() => {
            report.push(
                Diagnostic::error("out-of-range", format!("step `{name}` has a timeout of 0s"))
                    .at(t.span())
                    .label("zero")
                    .help(format!(
                        "leave it out for the default of {}",
                        fmt_duration(kind.info().default_timeout)
                    )),
            );
            return None;
        }
        Some(t) => {
            let why = format!(
                "leave it out for the default of {}",
                fmt_duration(kind.info().default_timeout)
            );
            if !super::limits::at_most(
                report,
                "timeout",
                Some(t),
                super::limits::STEP_TIMEOUT,
                &why,
            ) {
                return None;
            }
            t.get_ref().0
        }
        None => kind.info().default_timeout,
    };
    let continue_on_error = if kind == StepKind::Notify {
        // A notification never blocks a failover, whatever the policy says.
        true
    } else {
        c.continue_on_error.unwrap_or(false)
    };
    Some(Parsed {
        spec: StepSpec {
            name,
            region,
            stage: c.stage.as_ref().map(|s| s.get_ref().clone()),
            timeout,
            continue_on_error,
            action,
        },
        kind_span: c.kind.span(),
    })
}

fn region_ref(
    report: &mut Report,
    c: &raw::RawStepCommon,
    kind: StepKind,
    known: &Known,
) -> Option<RegionRef> {
    let Some(r) = &c.region else {
        // Fencing acts on the region being left; everything else on the one being joined.
        return Some(if kind == StepKind::PostgresFence {
            RegionRef::From
        } else {
            RegionRef::To
        });
    };
    match r.get_ref().as_str() {
        "@to" => Some(RegionRef::To),
        "@from" => Some(RegionRef::From),
        name => {
            let regions = known.regions?;
            let region = RegionName(name.to_string());
            if regions.is_serving(&region) {
                return Some(RegionRef::Named(region));
            }
            let mut options: Vec<&str> = vec!["@to", "@from"];
            options.extend(regions.serving().map(|r| r.as_str()));
            let mut d = Diagnostic::error(
                "unknown-region",
                format!(
                    "step `{}` acts in `{name}`, which is not a region of this service",
                    c.name.get_ref()
                ),
            )
            .at(r.span())
            .label("unknown region");
            d.help = Some(match closest(name, options.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("use one of: {}", options.join(", ")),
            });
            report.push(d);
            None
        }
    }
}

/// The regions a step's region can resolve to in runs of this direction.
fn possible_regions(
    region: &RegionRef,
    direction: Direction,
    regions: &Regions,
) -> Vec<RegionName> {
    match (region, direction) {
        (RegionRef::Named(r), _) => vec![r.clone()],
        (RegionRef::To, Direction::Failover) => regions.secondaries.clone(),
        (RegionRef::From, Direction::Failover) => regions.serving().cloned().collect(),
        (RegionRef::To, Direction::Failback) => vec![regions.primary.clone()],
        (RegionRef::From, Direction::Failback) => regions.secondaries.clone(),
    }
}

/// Resolves the step's target, checks its kind, and that it exists wherever the step may act.
fn step_target(
    report: &mut Report,
    t: &Spanned<String>,
    kind: StepKind,
    step: &str,
    region: &RegionRef,
    direction: Direction,
    known: &Known,
) -> Option<String> {
    let found = lookup_target(
        report,
        t,
        known.targets,
        &known.broken.targets,
        "step",
        step,
    )?;
    let want = kind.info().target?;
    if found.kind != want {
        report.push(
            Diagnostic::error(
                "target-kind",
                format!(
                    "a `{kind}` step acts on a {want} target, but `{}` is a {}",
                    found.name, found.kind
                ),
            )
            .at(t.span())
            .label(format!("a {} target", found.kind))
            .help(format!("name a target defined with kind = \"{want}\"")),
        );
        return None;
    }
    let regions = known.regions?;
    let missing: Vec<String> = possible_regions(region, direction, regions)
        .into_iter()
        .filter(|r| !found.regions.contains_key(r))
        .map(|r| r.0)
        .collect();
    if !missing.is_empty() {
        report.push(
            Diagnostic::error(
                "no-endpoint",
                format!(
                    "step `{step}` acts on `{}` in {region}, but the target has no settings for {}",
                    found.name,
                    missing.join(", ")
                ),
            )
            .at(t.span())
            .label("missing region settings")
            .help(format!(
                "add [targets.{}.regions.{}]",
                found.name, missing[0]
            )),
        );
        return None;
    }
    Some(found.name.clone())
}

#[allow(clippy::too_many_arguments)]
fn action(
    report: &mut Report,
    kind: StepKind,
    params: Value<'_>,
    extra: &str,
    known: &Known,
    step: &str,
    region: &RegionRef,
    direction: Direction,
) -> Option<Action> {
    let extra = Some(extra);
    let target = |report: &mut Report, t: &Spanned<String>| {
        step_target(report, t, kind, step, region, direction, known)
    };
    // Kinds whose only parameter is the target.
    let on_target = |report: &mut Report, params: Value<'_>| -> Option<String> {
        let p: rs::OnTarget = de(report, params, extra)?;
        target(report, &p.target)
    };
    Some(match kind {
        StepKind::AsgScale => {
            let p: rs::AsgScale = de(report, params, extra)?;
            let why = "instance counts of an Auto Scaling group";
            let min = count(report, "min", Some(p.min.clone()), 0, 0, 100_000, why)?;
            let desired = count(
                report,
                "desired",
                Some(p.desired.clone()),
                0,
                0,
                100_000,
                why,
            )?;
            let max = count(report, "max", Some(p.max.clone()), 0, 0, 100_000, why)?;
            if !(min <= desired && desired <= max) {
                report.push(
                    Diagnostic::error(
                        "out-of-range",
                        format!("step `{step}` asks for min {min}, desired {desired}, max {max}"),
                    )
                    .at(p.desired.span())
                    .label("not between min and max")
                    .help("Auto Scaling needs min <= desired <= max"),
                );
                return None;
            }
            Action::AsgScale {
                target: target(report, &p.target)?,
                min,
                desired,
                max,
            }
        }
        StepKind::EcsScale => {
            let p: rs::EcsScale = de(report, params, extra)?;
            let desired = count(
                report,
                "desired",
                Some(p.desired.clone()),
                0,
                0,
                100_000,
                "the ECS service's task count",
            )?;
            Action::EcsScale {
                target: target(report, &p.target)?,
                desired,
            }
        }
        StepKind::RedisInvalidate => {
            let p: rs::RedisInvalidate = de(report, params, extra)?;
            let flush = p.flush.as_ref().is_some_and(|f| *f.get_ref());
            match (&p.pattern, flush) {
                (None, false) | (Some(_), true) => {
                    let at = p
                        .pattern
                        .as_ref()
                        .map(|s| s.span())
                        .unwrap_or(p.target.span());
                    report.push(
                        Diagnostic::error("incomplete-check", format!("step `{step}` must give either `pattern` or `flush = true`"))
                            .at(at)
                            .label("choose one")
                            .help("pattern = \"cache:*\" deletes matching keys; flush = true empties the whole database"),
                    );
                    return None;
                }
                _ => {}
            }
            let scope = match p.pattern {
                Some(pattern) => CacheScope::Pattern(pattern.into_inner()),
                None => CacheScope::FlushDb,
            };
            Action::RedisInvalidate {
                target: target(report, &p.target)?,
                scope,
            }
        }
        StepKind::CloudfrontInvalidate => {
            let p: rs::CloudfrontInvalidate = de(report, params, extra)?;
            let paths = p
                .paths
                .map(|s| s.into_inner())
                .unwrap_or_else(|| vec!["/*".to_string()]);
            Action::CloudfrontInvalidate {
                target: target(report, &p.target)?,
                paths,
            }
        }
        StepKind::Notify => {
            let p: rs::Notify = de(report, params, extra)?;
            if known.broken.channels.contains(p.channel.get_ref()) {
                return None;
            }
            if !known
                .channels
                .iter()
                .any(|c| c.name == *p.channel.get_ref())
            {
                let mut d = Diagnostic::error(
                    "unknown-channel",
                    format!(
                        "step `{step}` notifies `{}`, which is not a channel",
                        p.channel.get_ref()
                    ),
                )
                .at(p.channel.span())
                .label("no such channel");
                d.help = Some(
                    match closest(
                        p.channel.get_ref(),
                        known.channels.iter().map(|c| c.name.as_str()),
                    ) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!(
                            "define it as [channels.{}] with kind = \"sns\" or \"webhook\"",
                            p.channel.get_ref()
                        ),
                    },
                );
                report.push(d);
                return None;
            }
            Action::Notify {
                channel: p.channel.into_inner(),
                message: p.message,
            }
        }
        StepKind::S3SyncCheck => {
            let p: rs::S3SyncCheck = de(report, params, extra)?;
            Action::S3SyncCheck {
                target: target(report, &p.target)?,
                copy_missing: p.copy_missing.unwrap_or(false),
                prefix: p.prefix.unwrap_or_default(),
            }
        }
        StepKind::WaitHealthy => {
            let p: rs::WaitHealthy = de(report, params, extra)?;
            let mut probes = Vec::new();
            for pr in p.probes.unwrap_or_default() {
                if known.broken.probes.contains(pr.get_ref()) {
                    return None;
                }
                if !known.probes.iter().any(|x| x.name == *pr.get_ref()) {
                    let mut d = Diagnostic::error(
                        "unknown-probe",
                        format!(
                            "step `{step}` waits for probe `{}`, which is not defined",
                            pr.get_ref()
                        ),
                    )
                    .at(pr.span())
                    .label("no such probe");
                    d.help = closest(pr.get_ref(), known.probes.iter().map(|x| x.name.as_str()))
                        .map(|s| format!("did you mean `{s}`?"));
                    report.push(d);
                    return None;
                }
                probes.push(pr.into_inner());
            }
            let successes = count(
                report,
                "successes",
                p.successes,
                known.recovery_threshold,
                1,
                1000,
                "consecutive healthy rounds to wait for",
            )?;
            Action::WaitHealthy { probes, successes }
        }
        StepKind::ManualApproval => {
            let p: rs::ManualApproval = de(report, params, extra)?;
            if p.prompt.get_ref().trim().is_empty() {
                report.push(
                    Diagnostic::error("empty-prompt", format!("step `{step}` asks the operator nothing"))
                        .at(p.prompt.span())
                        .label("empty")
                        .help("say what the operator must confirm, e.g. prompt = \"Confirm the primary is really down\""),
                );
                return None;
            }
            Action::ManualApproval {
                prompt: p.prompt.into_inner(),
            }
        }
        StepKind::Command => {
            let p: rs::Command = de(report, params, extra)?;
            if p.run.get_ref().first().is_none_or(|c| c.trim().is_empty()) {
                report.push(
                    Diagnostic::error("empty-command", format!("step `{step}` has nothing to run"))
                        .at(p.run.span())
                        .label("empty")
                        .help("give the program and its arguments: run = [\"/usr/local/bin/warm-cache\", \"--all\"]"),
                );
                return None;
            }
            Action::Command {
                run: p.run.into_inner(),
            }
        }
        StepKind::RdsPromoteReplica => Action::RdsPromoteReplica {
            target: on_target(report, params)?,
        },
        StepKind::AuroraGlobalFailover => Action::AuroraGlobalFailover {
            target: on_target(report, params)?,
        },
        StepKind::AuroraGlobalSwitchover => Action::AuroraGlobalSwitchover {
            target: on_target(report, params)?,
        },
        StepKind::PostgresPromote => Action::PostgresPromote {
            target: on_target(report, params)?,
        },
        StepKind::PostgresFence => Action::PostgresFence {
            target: on_target(report, params)?,
        },
        StepKind::PostgresCatchUp => Action::PostgresCatchUp {
            target: on_target(report, params)?,
        },
        StepKind::Route53Switch => Action::Route53Switch {
            target: on_target(report, params)?,
        },
    })
}

/// The stage index of each step, as the planner will group them.
fn stage_indexes(parsed: &[Parsed]) -> Vec<usize> {
    let mut out = Vec::with_capacity(parsed.len());
    let mut index = 0;
    for (i, p) in parsed.iter().enumerate() {
        let joins = i > 0 && p.spec.stage.is_some() && p.spec.stage == parsed[i - 1].spec.stage;
        if i > 0 && !joins {
            index += 1;
        }
        out.push(index);
    }
    out
}

/// A stage label used again after another stage would silently split into two stages.
fn check_stages(report: &mut Report, parsed: &[Parsed]) {
    for (i, p) in parsed.iter().enumerate() {
        let Some(label) = &p.spec.stage else { continue };
        let adjacent = i > 0 && parsed[i - 1].spec.stage.as_ref() == Some(label);
        if !adjacent
            && parsed[..i]
                .iter()
                .any(|q| q.spec.stage.as_ref() == Some(label))
        {
            report.push(
                Diagnostic::error(
                    "stage-not-adjacent",
                    format!("stage `{label}` is used again after other steps"),
                )
                .at(p.kind_span.clone())
                .label("not next to the rest of its stage")
                .help("steps of one stage run in parallel and must be written next to each other"),
            );
        }
    }
}

fn check_order(report: &mut Report, parsed: &[Parsed], direction: Direction, known: &Known) {
    let stages = stage_indexes(parsed);
    let is_dns = |p: &Parsed| p.spec.action.kind().moves_dns();
    match direction {
        Direction::Failover => {
            let promote = parsed
                .iter()
                .zip(&stages)
                .filter(|(p, _)| p.spec.action.kind().promotes_database())
                .map(|(_, s)| *s)
                .min();
            for (p, s) in parsed.iter().zip(&stages) {
                if !is_dns(p) {
                    continue;
                }
                match promote {
                    Some(ps) if ps < *s => {}
                    Some(_) => report.push(
                        Diagnostic::error("dns-before-promote", format!("step `{}` moves DNS before the database is promoted", p.spec.name))
                            .at(p.kind_span.clone())
                            .label("DNS moves here")
                            .help("traffic sent to a region whose database is still a read-only replica fails; put the promote step in an earlier stage than the DNS switch"),
                    ),
                    None if has_database(known) => report.push(
                        Diagnostic::error("dns-before-promote", format!("step `{}` moves DNS, but the failover runbook promotes no database", p.spec.name))
                            .at(p.kind_span.clone())
                            .label("DNS moves here")
                            .help("add a promote step (postgres_promote, rds_promote_replica, aurora_global_failover) before the DNS switch"),
                    ),
                    None => {}
                }
            }
            for p in parsed {
                if let Action::Route53Switch { target } = &p.spec.action {
                    warn_control_plane(report, p, target, known);
                }
            }
        }
        Direction::Failback => {
            let primary = known.regions.map(|r| r.primary.clone());
            let verifies_primary = |p: &Parsed| {
                matches!(p.spec.action, Action::WaitHealthy { .. })
                    && match &p.spec.region {
                        RegionRef::To => true,
                        RegionRef::Named(r) => Some(r) == primary.as_ref(),
                        RegionRef::From => false,
                    }
            };
            let verified = parsed
                .iter()
                .zip(&stages)
                .filter(|(p, _)| verifies_primary(p))
                .map(|(_, s)| *s)
                .min();
            for (p, s) in parsed.iter().zip(&stages) {
                if is_dns(p) && verified.is_none_or(|v| v >= *s) {
                    report.push(
                        Diagnostic::error("failback-unverified", format!("failback step `{}` moves DNS before the primary's health is verified", p.spec.name))
                            .at(p.kind_span.clone())
                            .label("DNS moves back here")
                            .help("add a wait_healthy step with region = \"@to\" in an earlier stage, so traffic returns only to a primary that passes its probes"),
                    );
                }
            }
        }
    }
}

fn has_database(known: &Known) -> bool {
    known.targets.iter().any(|t| {
        matches!(
            t.kind,
            TargetKind::Postgres | TargetKind::RdsInstance | TargetKind::AuroraCluster
        )
    })
}

/// Editing records goes through Route 53's control plane (in us-east-1), which may be
/// impaired during a regional event; flipping a pre-created pair does not edit records.
fn warn_control_plane(report: &mut Report, p: &Parsed, target: &str, known: &Known) {
    let Some(t) = known.targets.iter().find(|t| t.name == target) else {
        return;
    };
    let style = t.regions.values().find_map(|e| match e {
        Endpoint::Route53(r) => Some(r.style()),
        _ => None,
    });
    if let Some(style @ (DnsStyle::Weighted | DnsStyle::Simple)) = style {
        report.push(
            Diagnostic::warning(
                "control-plane",
                format!("step `{}` edits {} records through the Route 53 control plane during a failover", p.spec.name, style.as_str()),
            )
            .at(p.kind_span.clone())
            .label("record edit")
            .help("pre-create a PRIMARY/SECONDARY failover record pair and use style = \"failover_pair\": the switch then changes a health check and Route 53's data plane moves traffic"),
        );
    }
}
