//! The API's HTTP server: hyper's HTTP/1 under limits, so no client, slow or many, can
//! keep `/healthz` from answering or take the file descriptors the probes need.
//!
//! - A request's head must arrive within `header_timeout` (slowloris dribbles it).
//! - At most `max_connections` connections; when one more arrives, the connection idle
//!   the longest (between requests, or still sending its head) is closed to make room.
//!   A connection whose request is being answered is never closed for a newer one, so
//!   a flood of slow clients only ever displaces itself. Without this cap, enough slow
//!   clients exhaust the process's descriptors, and then the probes fail too and the
//!   controller sees an outage that is not there.
//! - Every request is answered within `request_timeout` (503 after it).
//! - The head is at most `max_header_bytes`; bodies are capped by the router.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::ServiceExt;
use tracing::{debug, warn};

#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_header_bytes: usize,
}

impl Default for Limits {
    /// Sized for a handful of operators, a scraper and a controller's polls, far below a
    /// default descriptor limit of 1024.
    fn default() -> Limits {
        Limits {
            max_connections: 128,
            header_timeout: Duration::from_secs(5),
            // Control calls wait up to 30 s for the control loop's answer.
            request_timeout: Duration::from_secs(40),
            max_header_bytes: 16 * 1024,
        }
    }
}

/// One open connection, as the eviction sees it.
struct Conn {
    /// A request is being answered.
    busy: AtomicBool,
    /// Since when it has had no request in hand (its accept, or its last answer).
    idle_since: Mutex<Instant>,
    evict: Notify,
}

type Table = Arc<Mutex<BTreeMap<u64, Arc<Conn>>>>;

fn table(t: &Table) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes room for one more connection: closes the one idle the longest. Returns false
/// when every connection is answering a request (the newcomer is refused).
fn make_room(conns: &mut BTreeMap<u64, Arc<Conn>>, max: usize) -> bool {
    if conns.len() < max {
        return true;
    }
    let oldest = conns
        .iter()
        .filter(|(_, c)| !c.busy.load(Ordering::Acquire))
        .min_by_key(|(_, c)| *c.idle_since.lock().unwrap_or_else(|e| e.into_inner()))
        .map(|(id, _)| *id);
    match oldest {
        Some(id) => {
            if let Some(c) = conns.remove(&id) {
                c.evict.notify_one();
            }
            true
        }
        None => false,
    }
}

/// Serves `router` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits) {
    let conns: Table = Arc::default();
    let mut next_id: u64 = 0;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors, or a connection reset before it was accepted: wait a
                // moment rather than spin, and go on.
                warn!("the API could not accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let conn = Arc::new(Conn {
            busy: AtomicBool::new(false),
            idle_since: Mutex::new(Instant::now()),
            evict: Notify::new(),
        });
        {
            let mut t = table(&conns);
            if !make_room(&mut t, limits.max_connections) {
                debug!(%peer, "refused a connection: every one of {} is answering a request", limits.max_connections);
                continue;
            }
            next_id += 1;
            t.insert(next_id, conn.clone());
        }
        let id = next_id;
        let (router, conns, http) = (router.clone(), conns.clone(), http.clone());
        let timeout = limits.request_timeout;
        tokio::spawn(async move {
            let watched = conn.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (router, conn) = (router.clone(), watched.clone());
                async move {
                    conn.busy.store(true, Ordering::Release);
                    let answer =
                        tokio::time::timeout(timeout, router.oneshot(req.map(Body::new))).await;
                    *conn.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                    conn.busy.store(false, Ordering::Release);
                    Ok::<_, Infallible>(match answer {
                        Ok(Ok(r)) => r,
                        Ok(Err(never)) => match never {},
                        Err(_) => too_slow(timeout),
                    })
                }
            });
            let serving = http.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = serving => {
                    if let Err(e) = r {
                        debug!(%peer, "API connection ended: {e}");
                    }
                }
                _ = conn.evict.notified() => {
                    debug!(%peer, "closed an idle API connection to make room");
                }
            }
            table(&conns).remove(&id);
        });
    }
}

fn too_slow(after: Duration) -> Response<Body> {
    let body = crate::contract::ErrorBody {
        error: format!("no answer within {}s", after.as_secs()),
    };
    let mut r = Response::new(Body::from(
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec()),
    ));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(busy: bool, idle_for: u64, now: Instant) -> Arc<Conn> {
        Arc::new(Conn {
            busy: AtomicBool::new(busy),
            idle_since: Mutex::new(now - Duration::from_secs(idle_for)),
            evict: Notify::new(),
        })
    }

    #[test]
    fn the_connection_idle_longest_makes_room_and_a_busy_one_never_does() {
        let now = Instant::now() + Duration::from_secs(100);
        let mut t = BTreeMap::new();
        t.insert(1, conn(true, 50, now));
        t.insert(2, conn(false, 10, now));
        t.insert(3, conn(false, 30, now));
        assert!(make_room(&mut t, 3));
        assert_eq!(t.keys().copied().collect::<Vec<_>>(), [1, 2]);
        assert!(make_room(&mut t, 3), "below the cap: nothing closed");
        assert_eq!(t.len(), 2);
        let mut busy = BTreeMap::new();
        busy.insert(1, conn(true, 50, now));
        assert!(!make_room(&mut busy, 1));
        assert_eq!(busy.len(), 1);
    }
}
