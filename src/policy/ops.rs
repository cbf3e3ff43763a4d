//! `[readiness]` (how often the daemon checks every step, and whose permissions) and
//! `[reports]` (the bucket for run reports and journal backups, and how often the
//! journal is backed up).

use std::time::Duration;

use toml::Spanned;

use super::diag::{Diagnostic, Report};
use super::limits;
use super::raw::{RawDuration, RawReadiness, RawReports};
use crate::core::model::{ReadinessSettings, ReportSettings, S3Location};
use crate::core::time::fmt_duration;

pub fn readiness(report: &mut Report, raw: RawReadiness) -> ReadinessSettings {
    let default = ReadinessSettings::default();
    let every = positive(
        report,
        "every",
        raw.every.as_ref(),
        limits::READINESS_EVERY,
        "how often the daemon checks that every step would work; minutes (the default is 5m)",
    )
    .unwrap_or(default.every);
    let role_arn = raw.role_arn.and_then(|r| {
        let arn = r.get_ref();
        let ok = arn.starts_with("arn:")
            && arn.split(':').nth(2) == Some("iam")
            && (arn.contains(":role/") || arn.contains(":user/"));
        if ok {
            Some(r.into_inner())
        } else {
            report.push(
                Diagnostic::error(
                    "bad-arn",
                    format!("`role_arn` \"{arn}\" is not the ARN of an IAM role or user"),
                )
                .at(r.span())
                .label("not an IAM role ARN")
                .help("write the role lifeboat acts as, e.g. role_arn = \"arn:aws:iam::123456789012:role/orders-lifeboat\""),
            );
            None
        }
    });
    ReadinessSettings { every, role_arn }
}

pub fn reports(report: &mut Report, raw: RawReports) -> ReportSettings {
    let default = ReportSettings::default();
    let s3 = raw
        .s3
        .and_then(|u| match S3Location::parse(u.get_ref()) {
            Ok(l) => Some(l),
            Err(why) => {
                report.push(
                    Diagnostic::error("bad-url", format!("`s3`: {why}"))
                        .at(u.span())
                        .label("not a bucket URL")
                        .help("name the reports bucket, e.g. s3 = \"s3://orders-lifeboat-reports/lifeboat/\" (the Terraform module's reports_bucket output)"),
                );
                None
            }
        });
    let backup_every = positive(
        report,
        "backup_every",
        raw.backup_every.as_ref(),
        limits::BACKUP_EVERY,
        "how often the journal is backed up besides after every run; hours (the default is 1h)",
    )
    .unwrap_or(default.backup_every);
    let region = raw.region.and_then(|r| {
        let ok = !r.get_ref().is_empty()
            && r.get_ref()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Some(r.into_inner())
        } else {
            report.push(
                Diagnostic::error(
                    "bad-region",
                    format!("`region` \"{}\" is not an AWS region name", r.get_ref()),
                )
                .at(r.span())
                .label("not a region")
                .help("the reports bucket's region, e.g. region = \"us-east-2\""),
            );
            None
        }
    });
    ReportSettings {
        s3,
        region,
        backup_every,
    }
}

/// A duration that must be above zero and at most `max`; `None` when absent or wrong
/// (the error is reported).
fn positive(
    report: &mut Report,
    field: &str,
    value: Option<&Spanned<RawDuration>>,
    max: Duration,
    why: &str,
) -> Option<Duration> {
    let v = value?;
    let d = v.get_ref().0;
    if d < Duration::from_secs(1) {
        report.push(
            Diagnostic::error(
                "out-of-range",
                format!("`{field}` is {}, shorter than a second", fmt_duration(d)),
            )
            .at(v.span())
            .label("below 1s")
            .help(why.to_string()),
        );
        return None;
    }
    limits::at_most(report, field, Some(v), max, why).then_some(d)
}
