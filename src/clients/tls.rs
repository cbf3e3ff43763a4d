//! TLS to the data stores: a rustls client configuration per PostgreSQL `sslmode`
//! (trusting the CA file a target names, or the system's roots), the tokio-postgres
//! connector over it, and failures explained in words that say what to change.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use super::secret::Secret;
use crate::core::model::SslMode;
use crate::core::sslmode::RDS_BUNDLE_HINT;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TlsError {
    #[error(
        "cannot read the CA file {path}: {reason}; check that it exists and lifeboat may read it"
    )]
    CaFile { path: String, reason: String },
    #[error(
        "the CA file {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); {RDS_BUNDLE_HINT}"
    )]
    CaEmpty { path: String },
    #[error(
        "no CA to check the server's certificate with: the target sets no ca_file and this machine has no system CA certificates (install Debian's ca-certificates package, or set ca_file)"
    )]
    NoRoots,
    #[error(
        "cannot read the certificate file {path}: {reason}; check that it exists and lifeboat may read it"
    )]
    CertFile { path: String, reason: String },
    #[error("the certificate file {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    CertEmpty { path: String },
    #[error(
        "cannot read the key file {path}: {reason}; check that it exists and lifeboat may read it"
    )]
    KeyFile { path: String, reason: String },
    #[error(
        "the key file {path} holds no PEM private key (-----BEGIN PRIVATE KEY-----, or an RSA or EC key)"
    )]
    KeyEmpty { path: String },
    #[error(
        "the key file {key} is not the private key of the certificate in {cert}; give the key the certificate was issued for"
    )]
    KeyMismatch { cert: String, key: String },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

impl TlsError {
    /// The file could not be read at all (missing, not permitted), as opposed to read and
    /// found wrong: the machine that validates a policy is not always the one that runs it.
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            TlsError::CaFile { .. } | TlsError::CertFile { .. } | TlsError::KeyFile { .. }
        )
    }
}

/// A client certificate chain and its private key, as PEM, read and checked: both parse,
/// and the key is the certificate's. The key's bytes stay in a [`Secret`]; no error
/// carries any of them.
pub struct ClientIdentityPem {
    pub cert_pem: Vec<u8>,
    pub key_pem: Secret,
}

pub fn read_identity(cert_file: &Path, key_file: &Path) -> Result<ClientIdentityPem, TlsError> {
    let (cert_shown, key_shown) = (
        cert_file.display().to_string(),
        key_file.display().to_string(),
    );
    let cert_pem = std::fs::read(cert_file).map_err(|e| TlsError::CertFile {
        path: cert_shown.clone(),
        reason: e.kind().to_string(),
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::CertEmpty { path: cert_shown });
    }
    let key_bytes = std::fs::read(key_file).map_err(|e| TlsError::KeyFile {
        path: key_shown.clone(),
        reason: e.kind().to_string(),
    })?;
    let empty = || TlsError::KeyEmpty {
        path: key_shown.clone(),
    };
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|_| empty())?;
    let key_pem = String::from_utf8(key_bytes).map_err(|_| empty())?;
    match CertifiedKey::from_der(certs, key, &provider()) {
        Ok(_) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(TlsError::KeyMismatch {
                cert: cert_shown,
                key: key_shown,
            });
        }
        // A key of a kind the provider cannot sign with is as good as none.
        Err(_) => return Err(empty()),
    }
    Ok(ClientIdentityPem {
        cert_pem,
        key_pem: Secret::new(key_pem),
    })
}

/// The one crypto provider lifeboat uses (the AWS SDK already links aws-lc-rs), named
/// explicitly so a second provider appearing in the dependency tree cannot make rustls
/// refuse to pick one at run time.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// The certificates of a PEM file (a CA bundle such as RDS's global-bundle.pem).
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| TlsError::CaFile {
        path: shown.clone(),
        reason: e.kind().to_string(),
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::CaEmpty { path: shown });
    }
    Ok(certs)
}

/// The system's trusted roots (Debian's /etc/ssl/certs, or `SSL_CERT_FILE` /
/// `SSL_CERT_DIR`), read once per process: there are hundreds, and probes connect every
/// few seconds.
pub fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// The trust store for a target: its CA file when it names one (and only that: a
/// private CA must not be widened to every public one), else the system's roots.
pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = read_ca_file(path)?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsError::CaEmpty {
                    path: path.display().to_string(),
                });
            }
        }
        None => {
            store.add_parsable_certificates(system_roots().iter().cloned());
            if store.is_empty() {
                return Err(TlsError::NoRoots);
            }
        }
    }
    Ok(store)
}

/// The client configuration of a PostgreSQL `sslmode`; `None` for `disable`.
///
/// The CA file is read on every call, so a rotated bundle is picked up by the next
/// connection without a restart.
pub fn client_config(
    mode: SslMode,
    ca_file: Option<&Path>,
) -> Result<Option<Arc<ClientConfig>>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let config = match mode {
        SslMode::Disable => return Ok(None),
        SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let webpki = WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(ca_file)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| TlsError::Setup(e.to_string()))?;
            if mode == SslMode::VerifyCa {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
                    .with_no_client_auth()
            } else {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            }
        }
    };
    Ok(Some(Arc::new(config)))
}

/// What failed in a handshake, in words, with the fix: the certificate's issuer, its
/// names, its dates. `None` when the error is not about the server's certificate.
pub fn explain(e: &rustls::Error, mode: SslMode, ca_file: Option<&Path>) -> Option<String> {
    let trusted = match ca_file {
        Some(p) => format!("the CA file {}", p.display()),
        None => "the system's CA certificates".to_string(),
    };
    let rustls::Error::InvalidCertificate(c) = e else {
        return None;
    };
    Some(match c {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
            "TLS ({mode}): the server's certificate is not signed by a CA in {trusted}; set ca_file to the CA that issued it ({RDS_BUNDLE_HINT})"
        ),
        CertificateError::NotValidForName => format!(
            "TLS ({mode}): the server's certificate does not name the host lifeboat connected to; connect by a name it lists, or use sslmode = \"verify-ca\" to check only the CA"
        ),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "TLS ({mode}): the server's certificate is for {} but lifeboat connected to {}; connect by a name it lists, or use sslmode = \"verify-ca\" to check only the CA",
            if presented.is_empty() {
                "no name at all".to_string()
            } else {
                presented
                    .iter()
                    .map(|n| bare_name(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            expected.to_str()
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("TLS ({mode}): the server's certificate has expired; renew it on the server")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => format!(
            "TLS ({mode}): the server's certificate is not valid yet; check this machine's clock"
        ),
        other => format!("TLS ({mode}): the server's certificate was refused: {other}"),
    })
}

/// A name as webpki presents it (`DnsName("db.example.com")`, `IpAddress(10.0.0.5)`),
/// without the wrapping.
fn bare_name(presented: &str) -> &str {
    let inner = presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(presented);
    inner.trim_matches('"')
}

/// Finds the rustls error in an error's chain. tokio-rustls wraps it in an `io::Error`
/// (whose `source` skips it), and the redis crate keeps that in an `Arc` (whose `source`
/// skips the `io::Error`), so both wrappers are opened by hand.
pub fn find_rustls_error<'e>(
    e: &'e (dyn std::error::Error + 'static),
) -> Option<&'e rustls::Error> {
    type Shared = Arc<dyn std::error::Error + Send + Sync>;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(shared) = err.downcast_ref::<Shared>() {
            cur = Some(shared.as_ref());
            continue;
        }
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(r) = err
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(r);
        }
        cur = err.source();
    }
    None
}

/// `require`: encryption without identity, as libpq does it. The handshake's
/// signatures are still checked, so the session is with whoever holds the key of the
/// certificate presented, whoever that is.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the names are not compared. rustls
/// checks the names only after the chain has passed, so an error about the names means
/// the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// tokio-postgres over rustls: PostgreSQL's `SSLRequest`, then a rustls session. A
/// dozen lines of glue instead of a connector crate that would pull in a second
/// crypto library for channel binding, which lifeboat does not use.
#[derive(Clone)]
pub struct PgTls(pub Arc<ClientConfig>);

impl<S> MakeTlsConnect<S> for PgTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type TlsConnect = PgTlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<PgTlsConnect, io::Error> {
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(PgTlsConnect {
            connector: tokio_rustls::TlsConnector::from(self.0.clone()),
            name,
        })
    }
}

pub struct PgTlsConnect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

type Handshake<S> = Pin<Box<dyn Future<Output = io::Result<PgTlsStream<S>>> + Send>>;

impl<S> TlsConnect<S> for PgTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = io::Error;
    type Future = Handshake<S>;

    fn connect(self, stream: S) -> Handshake<S> {
        Box::pin(async move {
            let tls = self.connector.connect(self.name, stream).await?;
            Ok(PgTlsStream(tls))
        })
    }
}

pub struct PgTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for PgTlsStream<S> {
    /// No channel binding: SCRAM then runs without the `-PLUS` variant, as with libpq's
    /// `channel_binding = prefer` against a server that offers none.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
