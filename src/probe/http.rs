//! `http` probes: GET a URL; healthy when the status is expected, the body says what it
//! should (a substring, or a JSON field's value), and the answer came within budget.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{Facts, Failure, Probe, chain, redact_url, snippet};
use crate::core::time::fmt_duration;

/// Bodies are read up to this size: health reports are small, and a probe must not
/// buffer whatever a broken server streams at it.
const MAX_BODY: usize = 256 * 1024;

/// What a healthy answer looks like.
#[derive(Clone, Debug, Default)]
pub struct HttpExpect {
    /// Healthy statuses (the policy defaults to `[200]`).
    pub status: Vec<u16>,
    pub body_contains: Option<String>,
    /// A dotted path into the JSON body (`checks.database`, `items.0.state`) and the
    /// value it must have, compared as text.
    pub json: Option<(String, String)>,
    /// Slower answers fail even when they are otherwise healthy.
    pub max_latency: Option<Duration>,
}

pub struct HttpProbe {
    client: reqwest::Client,
    url: String,
    expect: HttpExpect,
}

impl HttpProbe {
    /// `client` is shared by every HTTP probe, so connections are reused.
    pub fn new(client: reqwest::Client, url: &str, expect: HttpExpect) -> HttpProbe {
        HttpProbe {
            client,
            url: url.to_string(),
            expect,
        }
    }
}

#[async_trait]
impl Probe for HttpProbe {
    fn endpoint(&self) -> String {
        format!("GET {}", redact_url(&self.url))
    }

    async fn check(&self) -> Result<Facts, Failure> {
        let started = tokio::time::Instant::now();
        let (status, body) = get(&self.client, &self.url).await?;
        let took = started.elapsed();
        let e = &self.expect;
        if !e.status.contains(&status) {
            let want: Vec<String> = e.status.iter().map(u16::to_string).collect();
            return Err(Failure::new(format!(
                "HTTP {status}, expected {}: {}",
                want.join(" or "),
                snippet(&body, 120)
            )));
        }
        if let Some(needle) = &e.body_contains
            && !body.contains(needle.as_str())
        {
            return Err(Failure::new(format!(
                "HTTP {status} but the body does not contain {needle:?}: {}",
                snippet(&body, 120)
            )));
        }
        if let Some((field, want)) = &e.json {
            let doc: Value = serde_json::from_str(&body).map_err(|err| {
                Failure::new(format!(
                    "HTTP {status} but the body is not JSON ({err}): {}",
                    snippet(&body, 80)
                ))
            })?;
            match lookup(&doc, field) {
                None => {
                    return Err(Failure::new(format!(
                        "HTTP {status} but the JSON has no field `{field}`"
                    )));
                }
                Some(v) if render(v) != *want => {
                    return Err(Failure::new(format!(
                        "HTTP {status} but JSON field `{field}` is {}, expected {want:?}",
                        snippet(&v.to_string(), 80)
                    )));
                }
                Some(_) => {}
            }
        }
        if let Some(max) = e.max_latency
            && took > max
        {
            return Err(Failure::new(format!(
                "HTTP {status}, but slower than the {} latency budget",
                fmt_duration(max)
            )));
        }
        Ok(Facts::detail(format!("HTTP {status}")))
    }
}

/// GETs `url` and returns the status and (up to `MAX_BODY` of) the body as text.
pub(crate) async fn get(client: &reqwest::Client, url: &str) -> Result<(u16, String), Failure> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| Failure::new(describe(&e)))?;
    let status = resp.status().as_u16();
    if resp.status().is_redirection() {
        let to = crate::clients::http::location(&resp)
            .map(|l| snippet(&redact_url(&l), 200))
            .unwrap_or_else(|| "no Location".to_string());
        return Err(Failure::new(format!(
            "HTTP {status} redirect to {to}; lifeboat follows no redirects: point the probe at the final URL"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Failure::new(format!("HTTP {status}, then {}", describe(&e))))?
    {
        let room = MAX_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A reqwest error without its URL (which the endpoint already names) and with its
/// causes, e.g. "could not connect: tcp connect error: Connection refused (os error 111)".
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_connect() {
        "could not connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "the body could not be read"
    } else if e.is_redirect() {
        "too many redirects"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(cause) => format!("{what}: {}", chain(cause)),
        None => what.to_string(),
    }
}

/// The value at a dotted path; numeric segments index arrays.
pub(crate) fn lookup<'v>(doc: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(doc, |v, seg| match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// A JSON value as the text a policy compares it with: strings without quotes, numbers
/// and booleans as written, anything else as compact JSON.
pub(crate) fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields_are_found_by_dotted_path_and_compared_as_text() {
        let doc: Value = serde_json::from_str(
            r#"{"checks":{"database":"healthy","replicas":2,"ok":true},"items":[{"state":"up"}]}"#,
        )
        .expect("json");
        assert_eq!(
            lookup(&doc, "checks.database").map(render).as_deref(),
            Some("healthy")
        );
        assert_eq!(
            lookup(&doc, "checks.replicas").map(render).as_deref(),
            Some("2")
        );
        assert_eq!(
            lookup(&doc, "checks.ok").map(render).as_deref(),
            Some("true")
        );
        assert_eq!(
            lookup(&doc, "items.0.state").map(render).as_deref(),
            Some("up")
        );
        assert!(lookup(&doc, "checks.redis").is_none());
        assert!(lookup(&doc, "checks.database.deeper").is_none());
    }
}
