//! `[guardrails] witnesses`, `witness_key` and `quorum`: each witness URL is normalized
//! (`http://W:7300/` and `http://w:7300` are one witness) and listed once, so the quorum
//! counts distinct observers and a duplicate cannot make it silently unreachable; a
//! policy that lists witnesses names the key their votes are signed with.

use std::ops::Range;

use toml::Spanned;

use super::checks;
use super::diag::{Diagnostic, Report};
use super::raw::RawSecret;
use crate::core::model::SecretRef;

/// The checked witnesses (normalized URLs, each once) and the key reference.
pub fn check(
    report: &mut Report,
    urls: Option<&Spanned<Vec<Spanned<String>>>>,
    key: Option<Spanned<RawSecret>>,
    quorum: u32,
    quorum_at: Range<usize>,
) -> (Vec<String>, Option<SecretRef>) {
    let mut witnesses: Vec<(String, Range<usize>)> = Vec::new();
    // Reported where they are; still counted below, so the quorum is not called
    // unreachable for a mistake already shown.
    let mut broken = 0;
    for w in urls.map(|l| l.get_ref().as_slice()).unwrap_or_default() {
        let raw = w.get_ref();
        if checks::inline_credentials(report, raw, w.span()) {
            broken += 1;
            continue;
        }
        let url = match normalize(raw) {
            Ok(u) => u,
            Err(why) => {
                report.push(
                    Diagnostic::error("bad-url", format!("witness \"{raw}\" {why}"))
                        .at(w.span())
                        .label("not a witness URL")
                        .help(
                            "name the witness daemon's API, e.g. \"http://witness.internal:7300\"",
                        ),
                );
                broken += 1;
                continue;
            }
        };
        if let Some((_, first)) = witnesses.iter().find(|(u, _)| *u == url) {
            let (line, col) = report.line_col(first.start);
            let same = if raw.trim() == url {
                String::new()
            } else {
                format!(" (both are {url})")
            };
            report.push(
                Diagnostic::error(
                    "duplicate-witness",
                    format!("witness \"{raw}\" is already listed at {line}:{col}{same}"),
                )
                .at(w.span())
                .label("listed twice")
                .help("each witness votes once: list it once, and count distinct witnesses in the quorum"),
            );
            continue;
        }
        witnesses.push((url, w.span()));
    }
    if quorum as usize > witnesses.len() + broken + 1 {
        report.push(
            Diagnostic::error(
                "quorum-unreachable",
                format!(
                    "a quorum of {quorum} needs at least {} witness(es), the policy lists {}",
                    quorum - 1,
                    witnesses.len()
                ),
            )
            .at(quorum_at)
            .label("too many votes needed")
            .help("list the other observers under [guardrails] witnesses = [\"http://…\"], or lower the quorum"),
        );
    }
    let key_span = key.as_ref().map(|k| k.span());
    let key = key.and_then(|k| checks::secret(report, "witness_key", k));
    if key.is_none()
        && key_span.is_none()
        && let Some((_, first)) = witnesses.first()
    {
        report.push(
            Diagnostic::error(
                "witness-key-missing",
                "witnesses are listed but no witness_key signs their votes",
            )
            .at(first.clone())
            .label("votes from here could be forged")
            .help("add witness_key = { env = \"LIFEBOAT_WITNESS_KEY\" } (or { file = \"…\" }) to [guardrails], the same key the witness reads; make one with `openssl rand -hex 32`"),
        );
    }
    (witnesses.into_iter().map(|(u, _)| u).collect(), key)
}

/// `scheme://host[:port][/path]`, lowercase host, no default port, no trailing slash.
///
/// Errors: the reason, to follow the URL in a sentence.
pub fn normalize(raw: &str) -> Result<String, &'static str> {
    let u = url::Url::parse(raw.trim()).map_err(|_| "is not a URL")?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err("is not an http(s) URL");
    }
    let Some(host) = u.host_str() else {
        return Err("names no host");
    };
    if !u.username().is_empty() {
        return Err("holds a user name; witnesses are reached without one");
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err("has a query or fragment; name only the witness's address");
    }
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path = u.path().trim_end_matches('/');
    Ok(format!("{}://{host}{port}{path}", u.scheme()))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn one_witness_has_one_spelling() {
        for (a, b) in [
            ("http://w:7300", "http://w:7300/"),
            ("http://W.Internal:7300", "http://w.internal:7300"),
            ("http://w:80/", "http://w"),
            ("https://w/lifeboat/", "https://w/lifeboat"),
        ] {
            assert_eq!(normalize(a), normalize(b), "{a} {b}");
        }
        assert_eq!(normalize("http://w:7300/").as_deref(), Ok("http://w:7300"));
        assert_ne!(normalize("http://w:7300"), normalize("http://w:7301"));
        assert_ne!(normalize("http://w"), normalize("https://w"));
        for bad in [
            "w:7300",
            "ftp://w",
            "http://",
            "http://u@w",
            "http://w/?x=1",
            "http://w/#f",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }
}
