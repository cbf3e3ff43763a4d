//! How lifeboat proves who it is to etcd and checks who the members are: the TLS options
//! of https:// members (the policy's CA file or the system's roots, and the client
//! certificate), the etcd user's login, and the failures of both explained in words that
//! say what to change. The password is read when connecting and never leaves a
//! [`Secret`]; no message carries it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, Identity, TlsOptions};
use rustls::CertificateError;

use super::EtcdSettings;
use crate::clients::secret::{Secret, resolve};
use crate::clients::tls::{TlsError, find_rustls_error, read_identity, roots};
use crate::coord::error::CoordError;
use crate::core::model::SecretRef;

/// One member's login: done, or being done by one task at a time.
#[derive(Default)]
pub(super) struct LoginSlot {
    done: AtomicBool,
    /// Done without a token: the member had authentication off.
    without_auth: AtomicBool,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl LoginSlot {
    /// The member forgot the login: the next call logs in again.
    pub(super) fn forget(&self) {
        self.done.store(false, Ordering::SeqCst);
    }

    /// Calls go without a token because the member had authentication off; a refusal
    /// about rights then means it was turned on since.
    pub(super) fn without_auth(&self) -> bool {
        self.done.load(Ordering::SeqCst) && self.without_auth.load(Ordering::SeqCst)
    }
}

/// What every client of one [`super::Etcd`] presents and trusts.
pub(super) struct Access {
    /// The TLS options of https:// endpoints; `None` when there are none.
    tls: Option<TlsOptions>,
    /// The CA file, when the policy names one (else the system's roots are trusted).
    ca_file: Option<PathBuf>,
    /// The client certificate, when lifeboat presents one.
    cert_file: Option<PathBuf>,
    login: Option<Login>,
    /// How long a login may take (the lease TTL: a slower one is of no use).
    login_deadline: Duration,
    /// `/lifeboat/v1/<cluster>/`, the prefix the user needs readwrite on.
    prefix: String,
}

struct Login {
    user: String,
    password: Secret,
    /// Where the password came from, for messages.
    from: SecretRef,
}

/// What an error about access means for the endpoint that returned it.
pub(super) enum Refusal {
    /// Fix the configuration or the cluster's users: any member would refuse the same.
    Request(String),
    /// This member's TLS refused or failed (its certificate, or lifeboat's in its eyes):
    /// another member may not.
    Endpoint(String),
    /// The member forgot the login (a token it no longer knows, or authentication was
    /// enabled since): log in again before the next call to it.
    LoggedOut(String),
    /// The member dropped the connection, which is how it may have refused lifeboat's
    /// certificate: the usual endpoint failure, with what it may mean.
    Guess(String),
}

impl Access {
    /// Reads the CA file, the client certificate and key, and the password. Errors:
    /// `Config` naming the field, with what to do; never with a secret in it.
    pub(super) fn load(settings: &EtcdSettings, prefix: &str) -> Result<Access, CoordError> {
        let config = |field, problem: String| CoordError::Config { field, problem };
        let tls = settings.tls.clone().unwrap_or_default();
        // Plain http:// members need no roots: a machine without any must still reach them.
        let options = if settings.endpoints.iter().any(|e| e.starts_with("https://")) {
            let store =
                roots(tls.ca_file.as_deref()).map_err(|e| config("ca_file", e.to_string()))?;
            let mut options = TlsOptions::new().trust_anchors(store.roots);
            if let Some(c) = &tls.client {
                let id = read_identity(&c.cert_file, &c.key_file).map_err(|e| {
                    let field = match e {
                        TlsError::CertFile { .. } | TlsError::CertEmpty { .. } => "cert_file",
                        _ => "key_file",
                    };
                    config(field, e.to_string())
                })?;
                options = options.identity(Identity::from_pem(id.cert_pem, id.key_pem.expose()));
            }
            Some(options)
        } else {
            None
        };
        let login = match &settings.auth {
            Some(a) => Some(Login {
                user: a.user.clone(),
                password: resolve(&a.password).map_err(|e| config("password", e.to_string()))?,
                from: a.password.clone(),
            }),
            None => None,
        };
        Ok(Access {
            tls: options,
            ca_file: tls.ca_file,
            cert_file: tls.client.map(|c| c.cert_file),
            login,
            login_deadline: settings.lease_ttl,
            prefix: prefix.to_string(),
        })
    }

    /// The connect options of one endpoint: TLS for https://; with a login, tokens that
    /// expire (etcd's `--auth-token-ttl`, 300 s by default) are renewed on the call that
    /// finds them expired, which is then sent again.
    pub(super) fn options(&self, endpoint: &str, base: ConnectOptions) -> ConnectOptions {
        let base = match &self.tls {
            Some(tls) if endpoint.starts_with("https://") => base.with_tls(tls.clone()),
            _ => base,
        };
        base.with_auto_token_refresh(self.login.is_some())
    }

    /// Logs `client` in unless `slot` says it is. A cluster without authentication is
    /// told apart and noted as done: calls then go without a token until a member says
    /// it wants one (`Refusal::LoggedOut`).
    ///
    /// The login runs on its own task, one at a time per member, within the lease TTL: a
    /// call whose deadline passes stops waiting for it but does not cancel it, so a slow
    /// login (etcd checks the password with bcrypt, and in 3.4 puts the token through
    /// raft) is finished for the next call instead of being started again by each.
    pub(super) async fn log_in(
        &self,
        endpoint: &str,
        client: &Client,
        slot: &Arc<LoginSlot>,
    ) -> Result<(), etcd_client::Error> {
        let Some(login) = &self.login else {
            return Ok(());
        };
        if slot.done.load(Ordering::SeqCst) {
            return Ok(());
        }
        let held = slot.lock.clone().lock_owned().await;
        if slot.done.load(Ordering::SeqCst) {
            return Ok(());
        }
        let (slot, mut client, endpoint) = (slot.clone(), client.clone(), endpoint.to_string());
        let (user, password, deadline) = (
            login.user.clone(),
            login.password.clone(),
            self.login_deadline,
        );
        let task = tokio::spawn(async move {
            let _held = held;
            let creds = Some((user.clone(), password.expose().to_string()));
            let off = match tokio::time::timeout(deadline, client.update_user(creds)).await {
                Ok(Ok(())) => false,
                Ok(Err(etcd_client::Error::GRpcStatus(s)))
                    if s.message().contains("authentication is not enabled") =>
                {
                    tracing::info!(
                        endpoint,
                        user,
                        "etcd has authentication off; lifeboat connects without logging in until it is turned on"
                    );
                    true
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(etcd_client::Error::Internal(format!(
                        "no answer to the login within {} ms",
                        deadline.as_millis()
                    )));
                }
            };
            slot.without_auth.store(off, Ordering::SeqCst);
            slot.done.store(true, Ordering::SeqCst);
            Ok(())
        });
        task.await
            .unwrap_or_else(|e| Err(etcd_client::Error::Internal(format!("the login: {e}"))))
    }

    /// What an error says about access, in words; `None` when it is not about access.
    pub(super) fn explain(&self, endpoint: &str, e: &etcd_client::Error) -> Option<Refusal> {
        // etcd-client's error has no `source`; the TLS error hides under its variants.
        let inner: Option<&(dyn std::error::Error + 'static)> = match e {
            etcd_client::Error::GRpcStatus(s) => Some(s),
            etcd_client::Error::TransportError(t) => Some(t),
            etcd_client::Error::IoError(io) => Some(io),
            _ => None,
        };
        if let Some(t) = inner.and_then(find_rustls_error) {
            return Some(Refusal::Endpoint(self.explain_tls(t)));
        }
        // An alert the member sends after the handshake (TLS 1.3 checks the client's
        // certificate then) reaches us as text only: tokio-rustls keeps no error value.
        if let Some(alert) = inner.and_then(received_alert) {
            return Some(Refusal::Endpoint(self.explain_alert(&alert)));
        }
        // Often the alert is lost: the member closes the connection while lifeboat
        // writes its first request. Say what it most likely means, as a likelihood.
        if endpoint.starts_with("https://") && inner.is_some_and(dropped) {
            let why = match &self.cert_file {
                Some(c) => format!(
                    "if the member does not accept lifeboat's client certificate {}, this is how it refuses it: check that it is signed by the CA in the member's --trusted-ca-file",
                    c.display()
                ),
                None => "if the member asks for client certificates (--client-cert-auth), this is how it refuses a client without one: set cert_file and key_file in [coordination]".to_string(),
            };
            return Some(Refusal::Guess(format!(
                "the member closed the TLS connection ({e}); {why}"
            )));
        }
        let etcd_client::Error::GRpcStatus(s) = e else {
            return None;
        };
        let said = s.message();
        let user = self.login.as_ref().map(|l| l.user.as_str());
        Some(if said.contains("invalid user ID or password") {
            let l = self.login.as_ref()?;
            Refusal::Request(format!(
                "etcd user `{}` could not log in with the password from {}: etcd says the user or the password is wrong; check the secret, or set the password with `etcdctl user passwd {}`",
                l.user, l.from, l.user
            ))
        } else if said.contains("user name is empty") || said.contains("invalid auth token") {
            if self.login.is_some() {
                Refusal::LoggedOut(format!("{said}; logging in again"))
            } else {
                Refusal::Request(format!(
                    "etcd has authentication on and lifeboat gave no user ({said}): set user and password in [coordination], or present a client certificate whose common name is an etcd user"
                ))
            }
        } else if said.contains("permission denied") {
            let who = user.map_or(
                "the etcd user of lifeboat's client certificate (its common name)".to_string(),
                |u| format!("etcd user `{u}`"),
            );
            Refusal::Request(format!(
                "{who} may not do this ({said}): grant it a role with readwrite on the prefix {p}, e.g. `etcdctl role grant-permission lifeboat readwrite --prefix=true {p}`",
                p = self.prefix
            ))
        } else if said.contains("user name not found") {
            Refusal::Request(format!(
                "{said}: add the user to etcd (`etcdctl user add {}`) or fix `user` in [coordination]",
                user.unwrap_or("lifeboat")
            ))
        } else {
            return None;
        })
    }

    /// A TLS failure, with what is trusted and what to change.
    fn explain_tls(&self, e: &rustls::Error) -> String {
        let trusted = match &self.ca_file {
            Some(p) => format!("the CA file {}", p.display()),
            None => "the system's CA certificates (no ca_file in [coordination])".to_string(),
        };
        match e {
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                    "TLS: the member's certificate is not signed by a CA in {trusted}; set ca_file in [coordination] to the CA that signed the members' certificates (their --cert-file)"
                ),
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => format!(
                    "TLS: the member's certificate does not name the host in its URL ({e}); use a URL with a name the certificate lists, or reissue it with this name"
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "TLS: the member's certificate has expired; renew it (the member's --cert-file)"
                        .to_string()
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "TLS: the member's certificate is not valid yet; check this machine's clock"
                        .to_string()
                }
                other => format!(
                    "TLS: the member's certificate was refused ({other}), checked against {trusted}"
                ),
            },
            rustls::Error::AlertReceived(a) => self.explain_alert(&format!("{a:?}")),
            rustls::Error::InvalidMessage(_) => format!(
                "TLS: the member did not answer in TLS ({e}); if it serves plain http, write its URL as http://, or start it with --cert-file and --key-file"
            ),
            other => format!("TLS: {other}"),
        }
    }

    /// A TLS alert from the member, by its name (`BadCertificate`).
    fn explain_alert(&self, alert: &str) -> String {
        const ABOUT_OUR_CERTIFICATE: &[&str] = &[
            "BadCertificate",
            "UnknownCA",
            "CertificateRequired",
            "CertificateUnknown",
            "CertificateExpired",
            "UnsupportedCertificate",
            "AccessDenied",
        ];
        if !ABOUT_OUR_CERTIFICATE.contains(&alert) {
            return format!("TLS: the member ended the connection with the alert {alert}");
        }
        match &self.cert_file {
            Some(c) => format!(
                "TLS: the member refused lifeboat's client certificate {} (alert {alert}); it must be signed by the CA in the member's --trusted-ca-file and be valid now",
                c.display()
            ),
            None => format!(
                "TLS: the member asks for a client certificate (alert {alert}); set cert_file and key_file in [coordination] to one signed by the CA in its --trusted-ca-file"
            ),
        }
    }
}

/// Whether the connection broke under lifeboat (a reset, a broken pipe, hyper's
/// "connection closed") rather than failing to open.
fn dropped(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind;
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        if err
            .downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_canceled() || h.is_incomplete_message())
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The name of the alert in a "received fatal alert: X" anywhere in an error's chain.
fn received_alert(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if let Some((_, name)) = text.split_once("received fatal alert: ") {
            let name: String = name
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            return Some(name);
        }
        cur = err.source();
    }
    None
}
