//! Who may call the daemon's API: named bearer tokens, each for control (which includes
//! reading) or for reading only, checked in constant time; and the Host header check
//! that keeps a web page from reading a loopback API through DNS rebinding.
//!
//! A token file holds one bare token (named `default`), or `name: token` lines, one per
//! person or system, so the audit trail can say which token made a call whatever name
//! the caller claims (`by`).

use std::net::IpAddr;
use std::path::Path;

use thiserror::Error;

use crate::clients::secret::Secret;

/// What a token lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// The views: status, runs, decisions, metrics.
    Read,
    /// The views and the control calls (failover, failback, pause, resume, approve, abort).
    Control,
}

/// One named token.
#[derive(Clone, Debug)]
pub struct Token {
    pub name: String,
    pub secret: Secret,
    pub access: Access,
}

/// The name a lone bare token (a file with one line, `$LIFEBOAT_API_TOKEN`, a generated
/// token) is recorded under.
pub const DEFAULT_NAME: &str = "default";

/// Shorter tokens can be guessed by anyone who can reach the port.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenFileError {
    #[error("{origin} holds no token; write one token, or `name: token` lines")]
    Empty { origin: String },
    #[error("{origin}:{line}: expected `name: token` (a file with several lines names each token)")]
    Unnamed { origin: String, line: usize },
    #[error(
        "{origin}:{line}: the token name `{name}` may use only letters, digits, `.`, `_`, `-` and `@`"
    )]
    BadName {
        origin: String,
        line: usize,
        name: String,
    },
    #[error(
        "{origin}:{line}: the token named `{name}` is shorter than {MIN_TOKEN_LEN} characters; make one with `openssl rand -hex 32`"
    )]
    Short {
        origin: String,
        line: usize,
        name: String,
    },
    #[error("{origin}:{line}: the name `{name}` is given twice; each token needs its own name")]
    DuplicateName {
        origin: String,
        line: usize,
        name: String,
    },
    #[error(
        "{origin}:{line}: the token named `{name}` is the same as another; give each holder its own token"
    )]
    DuplicateToken {
        origin: String,
        line: usize,
        name: String,
    },
}

/// Parses a token file's text: `#` comments and blank lines are skipped; one bare token
/// is named `default`; otherwise every line is `name: token`. `origin` names the file in
/// messages; no message ever repeats a token.
pub fn parse(text: &str, origin: &str, access: Access) -> Result<Vec<Token>, TokenFileError> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let o = || origin.to_string();
    let mut tokens: Vec<Token> = Vec::new();
    let lone = lines.len() == 1 && !lines[0].1.contains(':');
    for (line, l) in lines {
        let (name, value) = if lone {
            (DEFAULT_NAME, l)
        } else {
            match l.split_once(':') {
                Some((n, v)) => (n.trim(), v.trim()),
                None => return Err(TokenFileError::Unnamed { origin: o(), line }),
            }
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        {
            return Err(TokenFileError::BadName {
                origin: o(),
                line,
                name: name.chars().take(40).collect(),
            });
        }
        let name = name.to_string();
        if value.chars().count() < MIN_TOKEN_LEN {
            return Err(TokenFileError::Short {
                origin: o(),
                line,
                name,
            });
        }
        if tokens.iter().any(|t| t.name == name) {
            return Err(TokenFileError::DuplicateName {
                origin: o(),
                line,
                name,
            });
        }
        if tokens.iter().any(|t| t.secret.expose() == value) {
            return Err(TokenFileError::DuplicateToken {
                origin: o(),
                line,
                name,
            });
        }
        tokens.push(Token {
            name,
            secret: Secret::new(value),
            access,
        });
    }
    if tokens.is_empty() {
        return Err(TokenFileError::Empty { origin: o() });
    }
    Ok(tokens)
}

/// Reads a token file.
///
/// Errors: the file cannot be read, or its text is refused by `parse`.
pub fn read(path: &Path, access: Access) -> anyhow::Result<Vec<Token>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the token file {}: {}; check that it exists and lifeboat may read it",
            path.display(),
            e.kind()
        )
    })?;
    Ok(parse(&text, &path.display().to_string(), access)?)
}

/// Every token the API accepts, and whether reads need one.
#[derive(Clone, Debug)]
pub struct Tokens {
    tokens: Vec<Token>,
    /// Reads without a token: the default on loopback, refused elsewhere unless asked for.
    pub open_reads: bool,
    /// Host names (beside IP literals and `localhost`) a request without a token may
    /// name in its Host header.
    pub hosts: Vec<String>,
}

/// Why a call was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// No token, or not one of ours.
    Unknown,
    /// A read token on a control call.
    ReadOnly { name: String },
}

impl Tokens {
    /// Errors: two tokens share a name or a value (across the control and read files).
    pub fn new(
        control: Vec<Token>,
        read: Vec<Token>,
        open_reads: bool,
        hosts: Vec<String>,
    ) -> anyhow::Result<Tokens> {
        let tokens: Vec<Token> = control.into_iter().chain(read).collect();
        for (i, t) in tokens.iter().enumerate() {
            for u in &tokens[..i] {
                if u.name == t.name {
                    anyhow::bail!(
                        "the token name `{}` is used twice across the control and read token files; give each token its own name",
                        t.name
                    );
                }
                if u.secret.expose() == t.secret.expose() {
                    anyhow::bail!(
                        "the tokens named `{}` and `{}` are the same; a read token must differ from every control token",
                        u.name,
                        t.name
                    );
                }
            }
        }
        Ok(Tokens {
            tokens,
            open_reads,
            hosts: hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
        })
    }

    /// The token an `Authorization: Bearer …` value names. Every known token is compared
    /// in full, in constant time, whichever matches, so the timing says nothing of how
    /// close a guess came or which token it was near.
    pub fn identify(&self, authorization: Option<&str>) -> Result<&Token, Denied> {
        let given = authorization
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("")
            .trim()
            .as_bytes();
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(t.secret.expose().as_bytes(), given) && !given.is_empty() {
                found = Some(t);
            }
        }
        found.ok_or(Denied::Unknown)
    }

    /// Whether a caller holding `token` (or none) may make a call that needs `need`.
    pub fn allows(&self, token: Option<&Token>, need: Access) -> Result<(), Denied> {
        match (token, need) {
            (Some(t), need) if t.access >= need => Ok(()),
            (Some(t), _) => Err(Denied::ReadOnly {
                name: t.name.clone(),
            }),
            (None, Access::Read) if self.open_reads => Ok(()),
            (None, _) => Err(Denied::Unknown),
        }
    }

    /// Whether a Host header may be served without a token: an IP literal, `localhost`,
    /// or a configured name. A page that rebinds its own DNS name to this address sends
    /// its own name, so it is refused. No Host header (HTTP/1.0) passes: browsers always
    /// send one.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        let name = host_name(host);
        name.parse::<IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
    }
}

/// The name part of a Host header: `[::1]:80` → `::1`, `w.internal:7300` → `w.internal`.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
    .trim_end_matches('.')
}

/// Compares two byte strings without an early exit on the first difference.
pub fn constant_time_eq(want: &[u8], given: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != want.len());
    for (i, w) in want.iter().enumerate() {
        diff |= w ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// The name recorded in the journal for a call: what the caller claims, and in brackets
/// the token that made it, which the caller cannot choose. A claim may not hold brackets
/// or control characters (so the bracket is always the token's), and is bounded.
///
/// Errors: a message for a 400 answer.
pub fn attributed(claimed: &str, token: &str) -> Result<String, String> {
    const MAX_BY: usize = 128;
    let claimed = claimed.trim();
    if claimed.chars().count() > MAX_BY {
        return Err(format!(
            "`by` is longer than {MAX_BY} characters; give a person's or system's name"
        ));
    }
    if claimed
        .chars()
        .any(|c| c.is_control() || c == '[' || c == ']')
    {
        return Err(
            "`by` may not hold control characters or brackets: the token's name is recorded beside it in brackets"
                .to_string(),
        );
    }
    let claimed = if claimed.is_empty() { "api" } else { claimed };
    Ok(format!("{claimed} [token {token}]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn a_lone_bare_token_is_named_default() {
        let t = parse(&format!("# made by hand\n\n{A}\n"), "t", Access::Control).expect("ok");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].name, "default");
        assert_eq!(t[0].secret.expose(), A);
    }

    #[test]
    fn named_tokens_are_read_line_by_line() {
        let t = parse(&format!("alice: {A}\nci-bot:{B}\n"), "t", Access::Read).expect("ok");
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["alice", "ci-bot"]);
        assert!(t.iter().all(|t| t.access == Access::Read));
    }

    #[test]
    fn bad_token_files_are_refused_by_line_without_repeating_a_token() {
        let cases = [
            ("", "holds no token"),
            (
                &format!("{A}\n{B}\n") as &str,
                "t:1: expected `name: token`",
            ),
            (&format!("al ice: {A}\n"), "t:1: the token name `al ice`"),
            ("alice: short\n", "t:1: the token named `alice` is shorter"),
            (
                &format!("alice: {A}\nalice: {B}\n"),
                "t:2: the name `alice` is given twice",
            ),
            (
                &format!("alice: {A}\nbob: {A}\n"),
                "t:2: the token named `bob` is the same as another",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text, "t", Access::Control)
                .expect_err(text)
                .to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains(A) && !e.contains(B), "{e}");
        }
    }

    fn tokens(open_reads: bool) -> Tokens {
        let control = parse(&format!("alice: {A}"), "c", Access::Control).expect("c");
        let read = parse(&format!("grafana: {B}"), "r", Access::Read).expect("r");
        Tokens::new(control, read, open_reads, vec!["Witness.Internal".into()]).expect("tokens")
    }

    #[test]
    fn a_read_token_reads_and_never_controls() {
        let t = tokens(false);
        let read = t.identify(Some(&format!("Bearer {B}"))).expect("known");
        assert_eq!(read.name, "grafana");
        assert_eq!(t.allows(Some(read), Access::Read), Ok(()));
        assert_eq!(
            t.allows(Some(read), Access::Control),
            Err(Denied::ReadOnly {
                name: "grafana".into()
            })
        );
        let control = t.identify(Some(&format!("Bearer {A}"))).expect("known");
        assert_eq!(t.allows(Some(control), Access::Read), Ok(()));
        assert_eq!(t.allows(None, Access::Read), Err(Denied::Unknown));
        assert!(tokens(true).allows(None, Access::Read).is_ok());
        assert!(t.identify(Some(&format!("Bearer {A}x"))).is_err());
        assert!(t.identify(Some("Bearer ")).is_err());
        assert!(t.identify(None).is_err());
    }

    #[test]
    fn a_host_header_must_be_an_address_localhost_or_a_configured_name() {
        let t = tokens(true);
        for ok in [
            None,
            Some("127.0.0.1:7300"),
            Some("[::1]:7300"),
            Some("10.0.3.5"),
            Some("localhost:80"),
            Some("witness.internal:7300"),
            Some("WITNESS.INTERNAL."),
        ] {
            assert!(t.host_allowed(ok), "{ok:?}");
        }
        for bad in [Some("evil.example:7300"), Some("127.0.0.1.evil.example")] {
            assert!(!t.host_allowed(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_token_name_is_recorded_beside_the_claim_and_cannot_be_forged() {
        assert_eq!(attributed("alice", "ops"), Ok("alice [token ops]".into()));
        assert_eq!(attributed(" ", "ops"), Ok("api [token ops]".into()));
        assert!(attributed("mallory [token admin]", "ops").is_err());
        assert!(attributed("line\nbreak", "ops").is_err());
        assert!(attributed(&"x".repeat(200), "ops").is_err());
    }

    #[test]
    fn the_same_token_may_not_be_both_a_read_and_a_control_token() {
        let control = parse(&format!("alice: {A}"), "c", Access::Control).expect("c");
        let read = parse(&format!("grafana: {A}"), "r", Access::Read).expect("r");
        assert!(Tokens::new(control, read, false, vec![]).is_err());
    }
}
