//! Rules that look across sections: secrets, probe coverage of the regions and components.

use std::ops::Range;

use toml::Spanned;

use super::diag::{Diagnostic, Report};
use super::raw::RawSecret;
use crate::core::model::{
    Component, Detection, Guardrails, Mode, ProbeSpec, RegionName, Regions, SecretRef,
};

/// A secret field: references pass, inline values are refused.
pub fn secret(report: &mut Report, field: &str, value: Spanned<RawSecret>) -> Option<SecretRef> {
    let span = value.span();
    match value.into_inner() {
        RawSecret::Env(name) => Some(SecretRef::Env(name)),
        RawSecret::File(path) => Some(SecretRef::File(path.into())),
        RawSecret::Inline => {
            report.push(inline_secret(field, span));
            None
        }
    }
}

fn inline_secret(field: &str, span: Range<usize>) -> Diagnostic {
    Diagnostic::error("inline-secret", format!("`{field}` holds a secret written into the policy"))
        .at(span)
        .label("inline secret")
        .help(format!(
            "policies are shared and committed; reference the secret instead: {field} = {{ env = \"VAR\" }} or {field} = {{ file = \"/run/secrets/name\" }}"
        ))
}

/// Refuses URLs that carry a password (`scheme://user:pass@host`) or a token in the query.
pub fn inline_credentials(report: &mut Report, url: &str, span: Range<usize>) -> bool {
    let after_scheme = url.split_once("://").map(|(_, rest)| rest).unwrap_or(url);
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    let password_in_authority = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    const SECRET_PARAMS: &[&str] = &[
        "password",
        "passwd",
        "pwd",
        "token",
        "access_token",
        "api_key",
        "apikey",
        "key",
        "secret",
        "signature",
        "sig",
        "x-amz-signature",
        "x-amz-credential",
    ];
    let token_in_query = query.split('&').any(|kv| {
        let k = kv.split('=').next().unwrap_or("").to_ascii_lowercase();
        SECRET_PARAMS.contains(&k.as_str())
    });
    if password_in_authority || token_in_query {
        let what = if password_in_authority {
            "a password"
        } else {
            "a token"
        };
        report.push(
            Diagnostic::error("inline-secret", format!("this URL carries {what} written into the policy"))
                .at(span)
                .label("credentials in the URL")
                .help("remove the credentials from the URL and give them as a reference: password = { env = \"VAR\" }"),
        );
        return true;
    }
    false
}

/// Every region must be watched, and the four components should be.
pub fn coverage(
    report: &mut Report,
    regions: &Regions,
    region_spans: &[(String, Range<usize>)],
    detection: &Detection,
    guardrails: &Guardrails,
    probes: &[ProbeSpec],
) {
    let span_of = |r: &RegionName| {
        region_spans
            .iter()
            .find(|(n, _)| n == r.as_str())
            .map(|(_, s)| s.clone())
            .unwrap_or(0..0)
    };
    let primary_span = span_of(&regions.primary);
    let critical_in = |r| probes.iter().any(|p| p.critical && p.regions.contains(r));
    if !critical_in(&regions.primary) {
        report.push(
            Diagnostic::error(
                "primary-unwatched",
                format!("no critical probe watches the primary region `{}`: an outage could never be detected", regions.primary),
            )
            .at(primary_span)
            .label("no critical probe here")
            .help(
                "add a [[probes]] entry with critical = true whose regions include the primary"),
        );
    }
    for s in &regions.secondaries {
        if !critical_in(s) {
            report.push(
                Diagnostic::warning(
                    "secondary-unwatched",
                    format!("no critical probe watches secondary `{s}`: lifeboat cannot tell whether it is healthy enough to fail over to, so automatic failover to it stays blocked"),
                )
                .at(span_of(s))
                .label("no critical probe here")
                .help("include the secondary in the regions of at least one critical probe"),
            );
        }
    }
    for c in Component::ALL {
        if !probes.iter().any(|p| p.component == c) {
            report.push(
                Diagnostic::warning("component-unwatched", format!("no probe watches the {c} component"))
                    .help(format!("add a [[probes]] entry with component = \"{c}\", or accept that its failures go unseen")),
            );
        }
    }
    if detection.mode == Mode::Auto && guardrails.max_failovers == 0 {
        report.push(
            Diagnostic::warning(
                "auto-disabled",
                "mode is auto but max_failovers is 0: no automatic failover can ever start",
            )
            .help("set max_failovers to at least 1, or use mode = \"manual\""),
        );
    }
}
