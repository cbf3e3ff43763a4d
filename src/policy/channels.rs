//! `[channels.NAME]`: where notifications and alerts go (SNS topics, webhooks).

use std::collections::BTreeSet;
use std::ops::Range;

use super::build::check_name;
use super::checks::secret;
use super::diag::{Diagnostic, Report};
use super::raw;
use super::spans::{self, Value, closest, de, key_str, table_value, take};
use crate::core::model::{Channel, ChannelKind};

const KINDS: &[&str] = &["sns", "webhook"];

pub fn build(
    report: &mut Report,
    section: Option<(Range<usize>, Value<'_>)>,
    broken: &mut BTreeSet<String>,
) -> Vec<Channel> {
    let Some((_, value)) = section else {
        return Vec::new();
    };
    let Some((_, table)) = spans::as_table(report, value, "`channels`") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in table {
        let name = key_str(&key).to_string();
        if !check_name(report, "channel name", &name, key.span()) {
            continue;
        }
        // Broken until built: notify steps naming it then stay quiet.
        broken.insert(name.clone());
        let Some((span, mut t)) = spans::as_table(report, value, &format!("channel `{name}`"))
        else {
            continue;
        };
        let Some(kind) = kind_of(
            report,
            &mut t,
            span.clone(),
            &format!("channel `{name}`"),
            KINDS,
        ) else {
            continue;
        };
        let rest = table_value(span, t);
        let kind = match kind.as_str() {
            "sns" => de::<raw::RawSnsChannel>(report, rest, None).map(|c| {
                (
                    ChannelKind::Sns {
                        topic_arn: c.topic_arn.into_inner(),
                    },
                    c.alerts,
                )
            }),
            _ => de::<raw::RawWebhookChannel>(report, rest, None).and_then(|c| {
                secret(report, "url", c.url).map(|url| (ChannelKind::Webhook { url }, c.alerts))
            }),
        };
        if let Some((kind, alerts)) = kind {
            broken.remove(&name);
            out.push(Channel { name, kind, alerts });
        }
    }
    out
}

/// Takes the `kind` field out of a table and checks it is one of `kinds`.
pub fn kind_of(
    report: &mut Report,
    table: &mut spans::Table<'_>,
    span: Range<usize>,
    what: &str,
    kinds: &[&str],
) -> Option<String> {
    let Some((_, v)) = take(table, "kind") else {
        report.push(
            Diagnostic::error("missing-field", format!("{what} has no `kind`"))
                .at(span)
                .label("in this table")
                .help(format!("add `kind = \"…\"`, one of: {}", kinds.join(", "))),
        );
        return None;
    };
    let Some(kind) = spans::as_str(&v).map(str::to_string) else {
        report.push(
            Diagnostic::error(
                "wrong-type",
                format!("the `kind` of {what} must be a string"),
            )
            .at(v.span())
            .label("not a string")
            .help(format!("one of: {}", kinds.join(", "))),
        );
        return None;
    };
    if !kinds.contains(&kind.as_str()) {
        let mut d = Diagnostic::error("unknown-kind", format!("{what} has unknown kind `{kind}`"))
            .at(v.span())
            .label("unknown kind");
        d.help = Some(match closest(&kind, kinds.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("one of: {}", kinds.join(", ")),
        });
        report.push(d);
        return None;
    }
    Some(kind)
}
