//! HTTP clients for probes, witnesses and webhooks. None follows a redirect: a health
//! endpoint that answers 3xx is misconfigured or hijacked, and following it would let
//! whoever controls the answer aim lifeboat at anything it can reach (the instance
//! metadata service, an internal admin API). A 3xx is a failure that names where it
//! pointed.

/// A client builder with lifeboat's user agent for `purpose` and redirects off.
pub fn builder(purpose: &str) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(format!(
            "lifeboat/{} ({purpose})",
            env!("CARGO_PKG_VERSION")
        ))
        .redirect(reqwest::redirect::Policy::none())
}

/// Builds `b`. That fails only when the TLS backend cannot initialise, a broken
/// installation nothing could handle; `Client::new()` then panics as reqwest documents,
/// so the fallback never yields a client that follows redirects.
pub fn build(b: reqwest::ClientBuilder) -> reqwest::Client {
    b.build().unwrap_or_else(|_| reqwest::Client::new())
}

/// Where a 3xx answer pointed, as sent (the caller decides how much of it to show).
pub fn location(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(reqwest::header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Text a server sent, fit to quote in a status, a log line or a journal entry: control
/// and invisible formatting characters (terminal escapes, bidirectional overrides,
/// zero-width characters) removed, whitespace runs collapsed, at most `max` characters.
pub fn sanitize(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in s.chars() {
        if invisible(c) {
            continue;
        }
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if c.is_control() {
            continue;
        }
        if count >= max {
            out.push('…');
            return out;
        }
        if space {
            out.push(' ');
            count += 1;
            space = false;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// Unicode format characters that change how text displays without being seen.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2069}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_text_loses_escapes_and_invisible_characters_and_is_trimmed() {
        assert_eq!(
            sanitize(
                "  \x1b[31mdown\x1b[0m\r\n\tsee\u{202E}txt.exe\u{200B} ",
                100
            ),
            "[31mdown[0m seetxt.exe"
        );
        let long = "x".repeat(10_000);
        assert_eq!(sanitize(&long, 300).chars().count(), 301);
        assert!(sanitize(&long, 300).ends_with('…'));
        assert_eq!(sanitize("", 10), "");
    }
}
