//! lifeboat's HTTP clients follow no redirect, and what a server says is trimmed and
//! cleaned before it is echoed. A real HTTP server answers here: a redirect towards a
//! healthy page (which a following client would have reported healthy), a redirected
//! webhook, and a failing page whose body carries terminal escapes, invisible
//! characters and a lot of text.

#[path = "support/action_helpers.rs"]
mod actions;
#[path = "support/probe_helpers.rs"]
mod probes;
mod support;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use lifeboat::action::notify::{Notify, Via, http_client};
use lifeboat::clients::secret::Secret;
use lifeboat::core::model::{Endpoint, ProbeCheck};
use lifeboat::core::step::ErrorClass;
use lifeboat::runbook::Step;

/// Serves the pages on a free port; returns its base URL.
async fn server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let to_healthy = format!("{base}/healthy");
    let app = Router::new()
        .route("/healthy", get(|| async { "ok" }))
        .route(
            "/moved",
            get(move || {
                let to = to_healthy.clone();
                async move {
                    let mut h = HeaderMap::new();
                    h.insert(header::LOCATION, to.parse().expect("header"));
                    (StatusCode::FOUND, h)
                }
            }),
        )
        .route(
            "/hook",
            post(|| async {
                let mut h = HeaderMap::new();
                h.insert(
                    header::LOCATION,
                    "https://hooks.example.com/services/T000/B000/secret-hook-token"
                        .parse()
                        .expect("header"),
                );
                (StatusCode::MOVED_PERMANENTLY, h)
            }),
        )
        .route(
            "/noisy",
            get(|| async {
                let body = format!(
                    "\x1b[2J\x1b[31mdatabase down\u{202E}gnp.exe\u{200B}\r\n{}",
                    "y".repeat(100_000)
                );
                (StatusCode::INTERNAL_SERVER_ERROR, body)
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

fn http(url: String) -> Option<Endpoint> {
    Some(Endpoint::Http { url })
}

fn check() -> ProbeCheck {
    ProbeCheck::Http {
        expect_status: vec![200],
        body_contains: None,
        json_field: None,
        json_equals: None,
        max_latency: None,
    }
}

#[tokio::test]
async fn a_probe_answered_with_a_redirect_fails_naming_the_location_instead_of_following_it() {
    let base = server().await;
    let c = probes::ctx(Duration::from_secs(2), None);
    probes::ok(&probes::round(check(), http(format!("{base}/healthy")), &c).await);
    let moved = probes::round(check(), http(format!("{base}/moved")), &c).await;
    let why = probes::failed(&moved);
    assert!(
        why.contains(&format!("HTTP 302 redirect to {base}/healthy")),
        "{why}"
    );
    assert!(why.contains("follows no redirects"), "{why}");
}

#[tokio::test]
async fn what_a_failing_server_says_is_echoed_trimmed_and_without_control_characters() {
    let base = server().await;
    let c = probes::ctx(Duration::from_secs(2), None);
    let noisy = probes::round(check(), http(format!("{base}/noisy")), &c).await;
    let why = probes::failed(&noisy);
    assert!(why.contains("HTTP 500"), "{why}");
    assert!(why.contains("database down"), "{why}");
    assert!(
        !why.chars()
            .any(|c| c.is_control() || matches!(c, '\u{202E}' | '\u{200B}')),
        "{why:?}"
    );
    assert!(
        why.chars().count() < 400,
        "{} characters",
        why.chars().count()
    );
}

#[tokio::test]
async fn a_redirected_webhook_fails_without_following_or_showing_where_the_token_went() {
    let base = server().await;
    let step = Notify::new(
        "chat",
        Via::Webhook {
            client: http_client(),
            url: Secret::new(format!("{base}/hook")),
        },
        None,
        "primary region down".into(),
    );
    let c = actions::ctx("tell-chat", actions::SECONDARY);
    let e = step.apply(&c).await.expect_err("redirected");
    assert_eq!(e.class, ErrorClass::Fatal, "{}", e.message);
    assert!(
        e.message
            .contains("redirected (HTTP 301 to https://hooks.example.com/…)"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("secret-hook-token"), "{}", e.message);
}
