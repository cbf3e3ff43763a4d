//! One `etcd_client::Client` per endpoint, and the rule for choosing one: the endpoint
//! that last answered first, endpoints that failed lately last. `etcd-client`'s own
//! balancer keeps sending calls to a dead member, which is why it is not used. Each
//! client logs in (when the policy names an etcd user) on its first call, not when it is
//! built, so a member that is down at start-up costs nothing until it is asked.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use tokio::time::Instant;

use super::EtcdSettings;
use super::access::{Access, LoginSlot, Refusal};
use crate::coord::error::CoordError;

/// An endpoint and whether it is in its cool-down after a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointHealth {
    pub endpoint: String,
    pub cooling_down: bool,
    pub failures: u64,
}

pub(super) struct Pool {
    members: Vec<(String, Client)>,
    /// Per member: whether its client has logged in (or found authentication off).
    logins: Vec<Arc<LoginSlot>>,
    access: Access,
    state: Mutex<State>,
    deadline: Duration,
    cooldown: Duration,
}

struct State {
    preferred: usize,
    failed_at: Vec<Option<Instant>>,
    failures: Vec<u64>,
}

/// What an error from etcd says about the endpoint that returned it.
pub(super) enum Fault {
    /// The member is unreachable, slow, or cannot serve (no raft leader): try another.
    Endpoint(String),
    /// The member refused lifeboat's TLS or login (its certificate, a forgotten token):
    /// try another, and tell this reason rather than another member's silence.
    Access(String),
    /// etcd refused the request itself; another member would refuse it too.
    Request(String),
    /// The lease does not exist any more.
    LeaseNotFound,
    /// The member forgot lifeboat's login, or turned authentication on since lifeboat
    /// found it off: log in and send the call again, once, to the same member.
    LoggedOut(String),
}

/// What an error says, before anything is known of the access settings.
pub(super) fn classify(e: &etcd_client::Error) -> Fault {
    use etcd_client::Error as E;
    use tonic::Code;
    match e {
        E::GRpcStatus(s) if s.message().contains("lease not found") => Fault::LeaseNotFound,
        E::LeaseKeepAliveError(m) if m.contains("lease not found") => Fault::LeaseNotFound,
        E::GRpcStatus(s) => match s.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Internal
            | Code::Aborted
            | Code::ResourceExhausted => {
                Fault::Endpoint(format!("{}: {}", code_name(s.code()), s.message()))
            }
            code => Fault::Request(format!("{}: {}", code_name(code), s.message())),
        },
        E::InvalidArgs(_) | E::InvalidUri(_) | E::InvalidMetadataValue(_) | E::Utf8Error(_) => {
            Fault::Request(e.to_string())
        }
        _ => Fault::Endpoint(e.to_string()),
    }
}

fn code_name(code: tonic::Code) -> String {
    format!("{code:?}").to_lowercase()
}

impl Pool {
    /// Builds the clients; reads the TLS files and the password (see [`Access::load`]).
    pub(super) async fn connect(settings: &EtcdSettings, prefix: &str) -> Result<Pool, CoordError> {
        let access = Access::load(settings, prefix)?;
        let mut members = Vec::new();
        for endpoint in &settings.endpoints {
            let options = ConnectOptions::new()
                .with_connect_timeout(settings.call_deadline / 2)
                // HTTP/2 pings notice a silently dead connection (a blackholed member)
                // without waiting for the kernel.
                .with_keep_alive(settings.keep_alive, settings.call_deadline)
                // A member cut off from the raft quorum answers "no leader" at once
                // instead of holding the call until its deadline.
                .with_require_leader(true);
            let options = access.options(endpoint, options);
            let connect = Client::connect([endpoint.as_str()], Some(options));
            let client = match tokio::time::timeout(settings.call_deadline, connect).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    return Err(CoordError::Config {
                        field: "endpoints",
                        problem: format!("{endpoint}: {e}"),
                    });
                }
                Err(_) => {
                    return Err(CoordError::Unavailable {
                        call: "connect",
                        tried: endpoint.clone(),
                        deadline_ms: settings.call_deadline.as_millis() as u64,
                        detail: "timed out".to_string(),
                    });
                }
            };
            members.push((endpoint.clone(), client));
        }
        let n = members.len();
        Ok(Pool {
            members,
            logins: (0..n).map(|_| Arc::default()).collect(),
            access,
            state: Mutex::new(State {
                preferred: 0,
                failed_at: vec![None; n],
                failures: vec![0; n],
            }),
            deadline: settings.call_deadline,
            cooldown: settings.endpoint_cooldown,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn endpoint(&self, i: usize) -> &str {
        &self.members[i].0
    }

    /// Member `i`'s client, logged in. Errors: the login's, to [`Self::classify`].
    pub(super) async fn client(&self, i: usize) -> Result<Client, etcd_client::Error> {
        let (endpoint, client) = &self.members[i];
        self.access
            .log_in(endpoint, client, &self.logins[i])
            .await?;
        Ok(client.clone())
    }

    /// What an error from member `i` means, in words that say what to change when it is
    /// about access. A member that forgot the login is logged in again on its next call.
    pub(super) fn classify(&self, i: usize, e: &etcd_client::Error) -> Fault {
        match self.access.explain(self.endpoint(i), e) {
            Some(Refusal::Request(d)) if self.logins[i].without_auth() => {
                self.logins[i].forget();
                Fault::LoggedOut(format!(
                    "{d} (authentication was off when lifeboat connected; logging in)"
                ))
            }
            Some(Refusal::Request(d)) => Fault::Request(d),
            Some(Refusal::Guess(d)) => Fault::Endpoint(d),
            Some(Refusal::Endpoint(d)) => Fault::Access(d),
            Some(Refusal::LoggedOut(d)) => {
                self.logins[i].forget();
                Fault::LoggedOut(d)
            }
            None => classify(e),
        }
    }

    pub(super) fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Endpoints in the order to try them: the preferred one, then the others that have
    /// not failed within the cool-down, then those that have (oldest failure first), so
    /// a call still goes somewhere when every endpoint failed lately.
    pub(super) fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let s = self.state();
        let n = self.members.len();
        let cooling = |i: usize| s.failed_at[i].is_some_and(|t| now < t + self.cooldown);
        let rotated: Vec<usize> = (0..n).map(|k| (s.preferred + k) % n).collect();
        let mut order: Vec<usize> = rotated.iter().copied().filter(|&i| !cooling(i)).collect();
        let mut cold: Vec<usize> = rotated.into_iter().filter(|&i| cooling(i)).collect();
        cold.sort_by_key(|&i| s.failed_at[i]);
        order.extend(cold);
        order
    }

    pub(super) fn mark_ok(&self, i: usize) {
        let mut s = self.state();
        s.failed_at[i] = None;
        s.preferred = i;
    }

    pub(super) fn mark_failed(&self, i: usize) {
        let mut s = self.state();
        s.failed_at[i] = Some(Instant::now());
        s.failures[i] += 1;
        if s.preferred == i {
            s.preferred = (i + 1) % self.members.len();
        }
    }

    pub(super) fn health(&self) -> Vec<EndpointHealth> {
        let now = Instant::now();
        let s = self.state();
        self.members
            .iter()
            .enumerate()
            .map(|(i, (endpoint, _))| EndpointHealth {
                endpoint: endpoint.clone(),
                cooling_down: s.failed_at[i].is_some_and(|t| now < t + self.cooldown),
                failures: s.failures[i],
            })
            .collect()
    }

    /// Runs `f` against one endpoint after another until one answers, all within the
    /// call deadline. Each attempt gets half of the time left (the last one all of it),
    /// so a blackholed first endpoint leaves time for the next.
    ///
    /// Retrying a write is safe here: every write lifeboat makes is either idempotent or
    /// guarded by a compare, and a guarded write whose first attempt was applied comes
    /// back as a refusal that says it found its own value (`Conflict::same_value`).
    ///
    /// Errors: `Unavailable` when no endpoint answered in time; `Rejected` when etcd
    /// refused the request; `LeaseLost` when the request's lease is gone.
    pub(super) async fn call<T, F, Fut>(&self, call: &'static str, f: F) -> Result<T, CoordError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + self.deadline;
        let order = self.order();
        let mut tried = Vec::new();
        let mut detail = String::from("no endpoint tried");
        // A member that refused lifeboat's certificate or login says what to fix; another
        // member's silence after it must not hide that.
        let mut refused = None;
        for (k, &i) in order.iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let budget = if k + 1 == order.len() { left } else { left / 2 };
            tried.push(self.endpoint(i).to_string());
            let attempt = self.attempt(i, &f);
            match tokio::time::timeout(budget, attempt).await {
                Ok(Ok(v)) => {
                    self.mark_ok(i);
                    return Ok(v);
                }
                Ok(Err(fault)) => match fault {
                    Fault::Endpoint(d) => {
                        self.mark_failed(i);
                        detail = format!("{}: {d}", self.endpoint(i));
                    }
                    Fault::Access(d) | Fault::LoggedOut(d) => {
                        self.mark_failed(i);
                        refused = Some(format!("{}: {d}", self.endpoint(i)));
                    }
                    Fault::Request(d) => {
                        return Err(CoordError::Rejected {
                            call,
                            endpoint: self.endpoint(i).to_string(),
                            detail: d,
                        });
                    }
                    Fault::LeaseNotFound => return Err(CoordError::LeaseLost { lease: 0 }),
                },
                Err(_) => {
                    self.mark_failed(i);
                    detail = format!(
                        "{}: no answer within {} ms",
                        self.endpoint(i),
                        budget.as_millis()
                    );
                }
            }
        }
        Err(CoordError::Unavailable {
            call,
            tried: tried.join(", "),
            deadline_ms: self.deadline.as_millis() as u64,
            detail: refused.unwrap_or(detail),
        })
    }

    /// One call to member `i`: log in if needed and send it; when the member has forgotten
    /// the login, log in again and send it once more.
    async fn attempt<T, F, Fut>(&self, i: usize, f: &F) -> Result<T, Fault>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut again = true;
        loop {
            let sent = async { f(self.client(i).await?).await }.await;
            let e = match sent {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            match self.classify(i, &e) {
                Fault::LoggedOut(_) if again => again = false,
                Fault::LoggedOut(d) => return Err(Fault::Access(d)),
                other => return Err(other),
            }
        }
    }

    /// Asks every member for its raft term and leader, each within the call deadline.
    pub(super) async fn member_status(&self) -> Vec<(String, Result<(u64, u64), CoordError>)> {
        let mut out = Vec::new();
        for (i, (endpoint, _)) in self.members.iter().enumerate() {
            let status = async { self.client(i).await?.status().await };
            let r = match tokio::time::timeout(self.deadline, status).await {
                Ok(Ok(s)) => Ok((s.raft_term(), s.leader())),
                Ok(Err(e)) => Err(CoordError::Unavailable {
                    call: "status",
                    tried: endpoint.clone(),
                    deadline_ms: self.deadline.as_millis() as u64,
                    detail: match self.classify(i, &e) {
                        Fault::Endpoint(d)
                        | Fault::Access(d)
                        | Fault::Request(d)
                        | Fault::LoggedOut(d) => d,
                        Fault::LeaseNotFound => e.to_string(),
                    },
                }),
                Err(_) => Err(CoordError::Unavailable {
                    call: "status",
                    tried: endpoint.clone(),
                    deadline_ms: self.deadline.as_millis() as u64,
                    detail: "timed out".to_string(),
                }),
            };
            out.push((endpoint.clone(), r));
        }
        out
    }
}
