//! Stage two of loading: the raw sections become a typed `Policy`, and every semantic rule
//! is checked. Errors are collected, never returned early, so one run of `validate` shows
//! everything that is wrong with a file.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::de::DeTable;

use super::diag::{Diagnostic, Report};
use super::raw::{self, RawDuration, RawMode};
use super::spans::{self, Value, closest, de, key_str};
use super::{
    channels, checks, commands, coordination, limits, ops, probes, runbooks, targets, vars,
    witnesses,
};
use crate::core::model::{
    AwsSettings, Coordination, Detection, Direction, Guardrails, JournalSettings, Mode, Policy,
    RegionName, Regions, SecretRef,
};
use crate::core::time::fmt_duration;

const SECTIONS: &[&str] = &[
    "vars",
    "service",
    "regions",
    "detection",
    "guardrails",
    "journal",
    "aws",
    "commands",
    "coordination",
    "readiness",
    "reports",
    "channels",
    "targets",
    "probes",
    "failover",
    "failback",
];

/// Detection defaults, from the reference FailoverManager (30 s, 3 failures).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
pub const DEFAULT_RECOVERY_THRESHOLD: u32 = 3;
pub const DEFAULT_TIMEOUT_CAP: Duration = Duration::from_secs(5);

type Sections<'i> = BTreeMap<String, (Range<usize>, Value<'i>)>;

/// Names defined with errors. Their own diagnostics explain them; references to them
/// are not reported a second time.
#[derive(Debug, Default)]
pub struct Broken {
    pub targets: BTreeSet<String>,
    pub probes: BTreeSet<String>,
    pub channels: BTreeSet<String>,
}

/// Builds the policy from `report.source`, pushing every finding into `report`.
/// Returns `None` when there is any error.
pub fn build(report: &mut Report, base_dir: &Path, vars_file: Option<&Path>) -> Option<Policy> {
    let text = report.source.clone();
    let vars = vars::collect(report, &text, base_dir, vars_file);
    let (doc, syntax) = DeTable::parse_recoverable(&text);
    if !syntax.is_empty() {
        for e in &syntax {
            report.push(spans::syntax_error(e, text.len()));
        }
        return None;
    }
    let mut doc = doc.into_inner();
    let _ = spans::take(&mut doc, "vars");
    vars::substitute(report, &mut doc, &vars);
    let mut sections: Sections = BTreeMap::new();
    for (k, v) in doc {
        let name = key_str(&k).to_string();
        if SECTIONS.contains(&name.as_str()) {
            sections.insert(name, (k.span(), v));
        } else {
            let mut d = Diagnostic::error("unknown-section", format!("unknown section `{name}`"))
                .at(k.span())
                .label("not a policy section");
            d.help = Some(match closest(&name, SECTIONS.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("a policy has these sections: {}", SECTIONS.join(", ")),
            });
            report.push(d);
        }
    }

    let service: Option<raw::RawService> =
        required(report, &mut sections, "service", SERVICE_EXAMPLE);
    let regions: Option<raw::RawRegions> =
        required(report, &mut sections, "regions", REGIONS_EXAMPLE);
    let detection: Option<raw::RawDetection> =
        required(report, &mut sections, "detection", DETECTION_EXAMPLE);
    let guardrails: raw::RawGuardrails =
        optional(report, &mut sections, "guardrails").unwrap_or_default();
    let journal: raw::RawJournal = optional(report, &mut sections, "journal").unwrap_or_default();
    let aws: raw::RawAws = optional(report, &mut sections, "aws").unwrap_or_default();
    let raw_commands: raw::RawCommands =
        optional(report, &mut sections, "commands").unwrap_or_default();
    let raw_coordination: coordination::RawCoordination =
        optional(report, &mut sections, "coordination").unwrap_or_default();
    let raw_readiness: raw::RawReadiness =
        optional(report, &mut sections, "readiness").unwrap_or_default();
    let raw_reports: raw::RawReports =
        optional(report, &mut sections, "reports").unwrap_or_default();

    let service = service.and_then(|s| check_service(report, s));
    let region_spans: Vec<(String, Range<usize>)> = regions
        .as_ref()
        .map(|r| {
            std::iter::once(&r.primary)
                .chain(r.secondaries.get_ref().iter())
                .map(|n| (n.get_ref().clone(), n.span()))
                .collect()
        })
        .unwrap_or_default();
    let regions = regions.and_then(|r| check_regions(report, r));
    let detection = detection.and_then(|d| check_detection(report, d));
    let witnesses_at = guardrails
        .witnesses
        .as_ref()
        .map(|w| w.span())
        .unwrap_or(0..0);
    let guardrails = check_guardrails(report, guardrails, detection.as_ref());
    let coordination = coordination::check(
        report,
        raw_coordination,
        service.as_ref().map(|(s, _)| s.as_str()),
        detection.as_ref().map(|d| d.mode),
        &guardrails,
        witnesses_at,
    );
    let journal = check_journal(journal, base_dir);
    let aws = check_aws(report, aws);
    let readiness = ops::readiness(report, raw_readiness);
    let reports = ops::reports(report, raw_reports);

    let mut broken = Broken::default();
    let channels = channels::build(report, sections.remove("channels"), &mut broken.channels);
    let targets = targets::build(
        report,
        sections.remove("targets"),
        regions.as_ref(),
        &mut broken.targets,
    );
    let probes = probes::build(
        report,
        sections.remove("probes"),
        regions.as_ref(),
        &targets,
        &mut broken,
    );
    let known = runbooks::Known {
        regions: regions.as_ref(),
        targets: &targets,
        channels: &channels,
        probes: &probes,
        broken: &broken,
        recovery_threshold: detection
            .as_ref()
            .map(|d| d.recovery_threshold)
            .unwrap_or(DEFAULT_RECOVERY_THRESHOLD),
    };
    let failover = runbooks::build(
        report,
        sections.remove("failover"),
        Direction::Failover,
        &known,
    );
    let failback = runbooks::build(
        report,
        sections.remove("failback"),
        Direction::Failback,
        &known,
    );

    if let (Some(regions), Some(detection)) = (&regions, &detection) {
        // With a broken probe, "nothing watches X" would only repeat its error.
        if broken.probes.is_empty() {
            checks::coverage(
                report,
                regions,
                &region_spans,
                detection,
                &guardrails,
                &probes,
            );
        }
    }

    // The witness key and etcd's password are secrets too: no command may be handed them.
    let mut secrets: Vec<&SecretRef> = guardrails.witness_key.iter().collect();
    if let Coordination::Etcd(c) = &coordination {
        secrets.extend(c.auth.as_ref().map(|a| &a.password));
    }
    let commands = commands::build(report, raw_commands, &targets, &channels, &secrets);
    if report.has_errors() {
        return None;
    }
    let (service, description) = service?;
    let (mut targets, mut channels, mut guardrails) = (targets, channels, guardrails);
    resolve_secret_files(&mut targets, &mut channels, base_dir);
    if let Some(SecretRef::File(p)) = &mut guardrails.witness_key
        && p.is_relative()
    {
        *p = base_dir.join(&*p);
    }
    // On etcd the observers' votes decide, and a majority of them is the quorum every
    // reader of `guardrails.quorum` (the controller, status, metrics) must see.
    if let Coordination::Etcd(c) = &coordination {
        guardrails.quorum = c.quorum;
    }
    Some(Policy {
        service,
        description,
        regions: regions?,
        detection: detection?,
        guardrails,
        journal,
        aws,
        commands,
        coordination,
        readiness,
        reports,
        channels,
        targets,
        probes,
        failover: failover?,
        failback: failback?,
    })
}

const SERVICE_EXAMPLE: &str = "[service]\nname = \"orders\"";
const REGIONS_EXAMPLE: &str = "[regions]\nprimary = \"us-east-1\"\nsecondaries = [\"us-west-2\"]";
const DETECTION_EXAMPLE: &str =
    "[detection]\ninterval = \"30s\"\nfailure_threshold = 3\nmode = \"manual\"";

fn required<T: DeserializeOwned>(
    report: &mut Report,
    sections: &mut Sections,
    name: &str,
    example: &str,
) -> Option<T> {
    match sections.remove(name) {
        Some((_, v)) => de(report, v, None),
        None => {
            report.push(
                Diagnostic::error(
                    "missing-section",
                    format!("the policy has no `[{name}]` section"),
                )
                .help(format!("add it, for example:\n{example}")),
            );
            None
        }
    }
}

fn optional<T: DeserializeOwned>(
    report: &mut Report,
    sections: &mut Sections,
    name: &str,
) -> Option<T> {
    sections.remove(name).and_then(|(_, v)| de(report, v, None))
}

/// A name used in file names, metric labels and run ids.
pub fn check_name(report: &mut Report, what: &str, name: &str, span: Range<usize>) -> bool {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok {
        report.push(
            Diagnostic::error("bad-name", format!("{what} `{name}` is not a valid name"))
                .at(span)
                .label("invalid name")
                .help("use 1 to 63 lowercase letters, digits, `-` or `_`, starting with a letter or digit"),
        );
    }
    ok
}

fn check_service(report: &mut Report, s: raw::RawService) -> Option<(String, Option<String>)> {
    let span = s.name.span();
    let name = s.name.into_inner();
    check_name(report, "service name", &name, span).then_some((name, s.description))
}

fn check_regions(report: &mut Report, r: raw::RawRegions) -> Option<Regions> {
    let mut ok = true;
    let mut seen: Vec<(String, Range<usize>)> = Vec::new();
    let mut all = vec![r.primary.clone()];
    all.extend(r.secondaries.get_ref().iter().cloned());
    for name in &all {
        ok &= check_name(report, "region", name.get_ref(), name.span());
        if let Some((_, first)) = seen.iter().find(|(n, _)| n == name.get_ref()) {
            let (line, _) = report.line_col(first.start);
            report.push(
                Diagnostic::error(
                    "duplicate-region",
                    format!("region `{}` is listed twice", name.get_ref()),
                )
                .at(name.span())
                .label("listed again here")
                .help(format!(
                    "the primary and the secondaries must all differ (first listed on line {line})"
                )),
            );
            ok = false;
        }
        seen.push((name.get_ref().clone(), name.span()));
    }
    if r.secondaries.get_ref().is_empty() {
        report.push(
            Diagnostic::error("no-secondary", "no secondary region to fail over to")
                .at(r.secondaries.span())
                .label("empty")
                .help(
                    "list at least one region, most preferred first: secondaries = [\"us-west-2\"]",
                ),
        );
        ok = false;
    }
    if let Some(w) = &r.witness {
        ok &= check_name(report, "region", w.get_ref(), w.span());
        if seen.iter().any(|(n, _)| n == w.get_ref()) {
            report.push(
                Diagnostic::error("duplicate-region", format!("the witness `{}` is also a serving region", w.get_ref()))
                    .at(w.span())
                    .label("serving region")
                    .help("a witness is a third location that only observes; pick a region that serves no traffic"),
            );
            ok = false;
        }
    }
    ok.then(|| Regions {
        primary: RegionName(r.primary.into_inner()),
        secondaries: r
            .secondaries
            .into_inner()
            .into_iter()
            .map(|s| RegionName(s.into_inner()))
            .collect(),
        witness: r.witness.map(|w| RegionName(w.into_inner())),
    })
}

/// An integer field that must be in `min..=max`.
pub fn count(
    report: &mut Report,
    field: &str,
    value: Option<toml::Spanned<i64>>,
    default: u32,
    min: i64,
    max: i64,
    why: &str,
) -> Option<u32> {
    let Some(v) = value else { return Some(default) };
    let n = *v.get_ref();
    if n < min || n > max {
        let (problem, label) = if n < min {
            (
                format!("`{field}` is {n}, but it must be at least {min}"),
                format!("below {min}"),
            )
        } else {
            (
                format!("`{field}` is {n}, which is absurdly large (at most {max})"),
                format!("above {max}"),
            )
        };
        report.push(
            Diagnostic::error("out-of-range", problem)
                .at(v.span())
                .label(label)
                .help(why.to_string()),
        );
        return None;
    }
    u32::try_from(n).ok()
}

fn dur(v: &Option<toml::Spanned<RawDuration>>) -> Option<Duration> {
    v.as_ref().map(|s| s.get_ref().0)
}

fn check_detection(report: &mut Report, d: raw::RawDetection) -> Option<Detection> {
    let mut ok = true;
    let interval = dur(&d.interval).unwrap_or(DEFAULT_INTERVAL);
    if let Some(s) = &d.interval {
        if interval < Duration::from_millis(100) {
            report.push(
                Diagnostic::error(
                    "out-of-range",
                    format!(
                        "`interval` is {}, too short to probe anything",
                        fmt_duration(interval)
                    ),
                )
                .at(s.span())
                .label("below 100ms")
                .help("probe every 1s to 60s; the default is 30s"),
            );
            ok = false;
        } else if !limits::at_most(
            report,
            "interval",
            Some(s),
            limits::INTERVAL,
            "probe every 1s to 60s; the default is 30s",
        ) {
            ok = false;
        } else if interval > limits::INTERVAL_WARN {
            report.push(
                Diagnostic::warning(
                    "slow-detection",
                    format!(
                        "`interval` is {}: an outage would go unnoticed for that long, times failure_threshold",
                        fmt_duration(interval)
                    ),
                )
                .at(s.span())
                .label("very long")
                .help("probe every 1s to 60s; the default is 30s"),
            );
        }
    }
    let timeout = dur(&d.timeout).unwrap_or_else(|| DEFAULT_TIMEOUT_CAP.min(interval / 2));
    if let Some(s) = &d.timeout {
        if timeout.is_zero() {
            report.push(
                Diagnostic::error("out-of-range", "`timeout` is 0s: every probe would fail")
                    .at(s.span())
                    .label("zero")
                    .help("give probes time to answer, e.g. timeout = \"5s\""),
            );
            ok = false;
        } else if timeout >= interval {
            report.push(
                Diagnostic::error(
                    "timeout-not-below-interval",
                    format!(
                        "`timeout` ({}) must be shorter than `interval` ({})",
                        fmt_duration(timeout),
                        fmt_duration(interval)
                    ),
                )
                .at(s.span())
                .label("not below the interval")
                .help("a probe must finish before the next round of the same probe starts; lower the timeout or raise the interval"),
            );
            ok = false;
        }
    }
    let why_f = "failure_threshold counts consecutive failed rounds before a region is declared down; 3 is the usual value";
    let failure_threshold = count(
        report,
        "failure_threshold",
        d.failure_threshold,
        DEFAULT_FAILURE_THRESHOLD,
        1,
        100,
        why_f,
    );
    let why_r = "recovery_threshold counts consecutive successful rounds before a region is declared recovered";
    let recovery_threshold = count(
        report,
        "recovery_threshold",
        d.recovery_threshold,
        DEFAULT_RECOVERY_THRESHOLD,
        1,
        1000,
        why_r,
    );
    let mode = match d.mode {
        RawMode::Auto => Mode::Auto,
        RawMode::Manual => Mode::Manual,
        RawMode::Shadow => Mode::Shadow,
    };
    if !ok {
        return None;
    }
    let (failure_threshold, recovery_threshold) = (failure_threshold?, recovery_threshold?);
    let confirm_interval = check_confirm(report, &d.confirm_interval, interval, timeout);
    let min_failure_span = check_span(
        report,
        "min_failure_span",
        &d.min_failure_span,
        Detection::default_failure_span(confirm_interval.unwrap_or(interval), failure_threshold),
        interval.saturating_mul(failure_threshold),
        "the failures",
    );
    let min_recovery_span = check_span(
        report,
        "min_recovery_span",
        &d.min_recovery_span,
        Detection::default_recovery_span(interval, recovery_threshold),
        interval.saturating_mul(recovery_threshold),
        "the passes",
    );
    Some(Detection {
        interval,
        timeout,
        failure_threshold,
        recovery_threshold,
        confirm_interval: confirm_interval?,
        min_failure_span,
        min_recovery_span,
        mode,
    })
}

/// `confirm_interval`: between the timeout (a confirmation round must end before the next
/// is due) and the interval (it is meant to be faster). Defaults to the interval: no fast
/// confirmation unless the policy asks for it.
fn check_confirm(
    report: &mut Report,
    value: &Option<toml::Spanned<RawDuration>>,
    interval: Duration,
    timeout: Duration,
) -> Option<Duration> {
    let Some(s) = value else {
        return Some(interval);
    };
    let confirm = s.get_ref().0;
    if confirm < timeout {
        report.push(
            Diagnostic::error(
                "confirm-below-timeout",
                format!(
                    "`confirm_interval` ({}) is shorter than `timeout` ({})",
                    fmt_duration(confirm),
                    fmt_duration(timeout)
                ),
            )
            .at(s.span())
            .label("below the probe timeout")
            .help("a confirmation round may take the whole timeout before the next is due; raise confirm_interval to at least the timeout, or lower the timeout"),
        );
        return None;
    }
    if confirm > interval {
        report.push(
            Diagnostic::error(
                "confirm-above-interval",
                format!(
                    "`confirm_interval` ({}) is longer than `interval` ({})",
                    fmt_duration(confirm),
                    fmt_duration(interval)
                ),
            )
            .at(s.span())
            .label("slower than the normal rounds")
            .help("confirm_interval re-checks a failed probe sooner than usual; set it between the timeout and the interval (e.g. a quarter of the interval), or leave it out to keep the interval"),
        );
        return None;
    }
    Some(confirm)
}

/// A minimum span: any length is valid; one longer than `threshold` whole intervals makes
/// the span, not the rounds, decide how long detection takes, which deserves a word.
fn check_span(
    report: &mut Report,
    field: &str,
    value: &Option<toml::Spanned<RawDuration>>,
    default: Duration,
    rounds_take: Duration,
    what: &str,
) -> Duration {
    let Some(s) = value else { return default };
    let span = s.get_ref().0;
    if span > rounds_take {
        report.push(
            Diagnostic::warning(
                "span-dominates",
                format!(
                    "`{field}` ({}) is longer than the rounds it counts take at the normal interval ({})",
                    fmt_duration(span),
                    fmt_duration(rounds_take)
                ),
            )
            .at(s.span())
            .label("longer than the rounds")
            .help(format!("{what} must span this long, so this, not the threshold, sets the pace; the default ({}) only discounts rounds that bunch up", fmt_duration(default))),
        );
    }
    span
}

fn check_guardrails(
    report: &mut Report,
    g: raw::RawGuardrails,
    detection: Option<&Detection>,
) -> Guardrails {
    let interval = detection.map(|d| d.interval).unwrap_or(DEFAULT_INTERVAL);
    let why_m = "max_failovers limits automatic failovers per failover_window; 0 disables automatic failover";
    let max_failovers =
        count(report, "max_failovers", g.max_failovers, 1, 0, 1000, why_m).unwrap_or(1);
    let why_q = "quorum is how many observers must agree before an automatic failover; 1 when a single controller runs";
    let quorum_at = g.quorum.as_ref().map(|q| q.span()).unwrap_or(0..0);
    let quorum = count(report, "quorum", g.quorum, 1, 1, 9, why_q).unwrap_or(1);
    let (witnesses, witness_key) = witnesses::check(
        report,
        g.witnesses.as_ref(),
        g.witness_key,
        quorum,
        quorum_at,
    );
    // Each ceiling is reported where it is broken; the value itself is still used below
    // (the report has an error, so no policy is built from it).
    for (field, value, max, why) in [
        (
            "cooldown",
            &g.cooldown,
            limits::COOLDOWN,
            "the quiet time after a failover; hours, at most days (the default is 1h)",
        ),
        (
            "failover_window",
            &g.failover_window,
            limits::FAILOVER_WINDOW,
            "the window max_failovers counts in; the default is 24h",
        ),
        (
            "failback_healthy_for",
            &g.failback_healthy_for,
            limits::FAILBACK_HEALTHY_FOR,
            "how long the primary must be healthy before a failback; the default is 10m",
        ),
        (
            "clock_jump_tolerance",
            &g.clock_jump_tolerance,
            limits::CLOCK_JUMP_TOLERANCE,
            "a clock jump larger than a few intervals is a jump; use seconds to minutes",
        ),
        (
            "freeze_for",
            &g.freeze_for,
            limits::FREEZE_FOR,
            "how long automatic decisions stop after a stall or a clock jump; minutes (the default is 2m)",
        ),
        (
            "rpo_budget",
            &g.rpo_budget,
            limits::RPO_BUDGET,
            "keep it to seconds; larger lags should wait for a human to accept the loss",
        ),
    ] {
        limits::at_most(report, field, value.as_ref(), max, why);
    }
    let failover_window = dur(&g.failover_window).unwrap_or(Duration::from_secs(24 * 3600));
    if let Some(s) = &g.failover_window
        && failover_window.is_zero()
    {
        report.push(
            Diagnostic::error(
                "out-of-range",
                "`failover_window` is 0s, so max_failovers would limit nothing",
            )
            .at(s.span())
            .label("zero")
            .help("use a window such as \"24h\""),
        );
    }
    let freeze_for =
        dur(&g.freeze_for).unwrap_or(Duration::from_secs(120).max(interval.saturating_mul(4)));
    let clock_jump_tolerance = dur(&g.clock_jump_tolerance)
        .unwrap_or(Duration::from_secs(10).max(interval.saturating_mul(2)));
    if let Some(s) = &g.clock_jump_tolerance
        && clock_jump_tolerance < interval
    {
        report.push(
                Diagnostic::error(
                    "out-of-range",
                    format!(
                        "`clock_jump_tolerance` ({}) is shorter than the probe interval ({}): every round would look like a stall",
                        fmt_duration(clock_jump_tolerance),
                        fmt_duration(interval)
                    ),
                )
                .at(s.span())
                .label("below the interval")
                .help("use at least twice the interval"),
            );
    }
    let rpo_budget = dur(&g.rpo_budget).unwrap_or(Duration::from_secs(10));
    if let Some(s) = &g.rpo_budget
        && rpo_budget > Duration::from_secs(3600)
        && rpo_budget <= limits::RPO_BUDGET
    {
        report.push(
            Diagnostic::warning(
                "large-rpo-budget",
                format!(
                    "`rpo_budget` is {}: an automatic promotion may lose that much data",
                    fmt_duration(rpo_budget)
                ),
            )
            .at(s.span())
            .label("very large")
            .help("keep it to seconds; larger lags should wait for a human to accept the loss"),
        );
    }
    let auto_failback = g
        .auto_failback
        .as_ref()
        .map(|b| *b.get_ref())
        .unwrap_or(false);
    let failback_healthy_for = dur(&g.failback_healthy_for).unwrap_or(Duration::from_secs(600));
    if auto_failback
        && failback_healthy_for < interval.saturating_mul(10)
        && let Some(s) = &g.auto_failback
    {
        report.push(
                Diagnostic::warning(
                    "flapping-failback",
                    format!(
                        "automatic failback after only {} of health can move traffic back and forth",
                        fmt_duration(failback_healthy_for)
                    ),
                )
                .at(s.span())
                .label("automatic failback")
                .help("set failback_healthy_for to at least ten probe intervals, or leave failback manual"),
            );
    }
    Guardrails {
        rpo_budget,
        cooldown: dur(&g.cooldown).unwrap_or(Duration::from_secs(3600)),
        max_failovers,
        failover_window,
        auto_failback,
        failback_healthy_for,
        clock_jump_tolerance,
        freeze_for,
        quorum,
        witnesses,
        witness_key,
    }
}

fn check_journal(j: raw::RawJournal, base_dir: &Path) -> JournalSettings {
    JournalSettings {
        path: j.path.map(|p| {
            let p = Path::new(p.get_ref());
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base_dir.join(p)
            }
        }),
    }
}

fn check_aws(report: &mut Report, a: raw::RawAws) -> AwsSettings {
    if let Some(url) = &a.endpoint_url {
        let u = url.get_ref();
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            report.push(
                Diagnostic::error(
                    "bad-url",
                    format!("`endpoint_url` \"{u}\" is not an http(s) URL"),
                )
                .at(url.span())
                .label("not a URL")
                .help("write the full URL, e.g. endpoint_url = \"http://127.0.0.1:5000\""),
            );
        }
        checks::inline_credentials(report, u, url.span());
    }
    AwsSettings {
        region: a.region.map(|r| r.into_inner()),
        endpoint_url: a.endpoint_url.map(|u| u.into_inner()),
        profile: a.profile,
    }
}

/// Secret files named by relative paths are relative to the policy's directory, like the
/// journal path: a policy means the same wherever lifeboat is started from.
fn resolve_secret_files(
    targets: &mut [crate::core::model::Target],
    channels: &mut [crate::core::model::Channel],
    base_dir: &Path,
) {
    use crate::core::model::{ChannelKind, Endpoint, SecretRef};
    let fix = |r: &mut SecretRef| {
        if let SecretRef::File(p) = r
            && p.is_relative()
        {
            *p = base_dir.join(&*p);
        }
    };
    for t in targets.iter_mut() {
        for ep in t.regions.values_mut() {
            match ep {
                Endpoint::Postgres(pg) => pg.password.iter_mut().for_each(fix),
                Endpoint::Redis { password, .. } => password.iter_mut().for_each(fix),
                _ => {}
            }
        }
    }
    for c in channels.iter_mut() {
        if let ChannelKind::Webhook { url } = &mut c.kind {
            fix(url);
        }
    }
}
