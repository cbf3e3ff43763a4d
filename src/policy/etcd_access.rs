//! `[coordination]`'s TLS and login settings for etcd: the CA the https:// members are
//! checked against, the client certificate lifeboat presents, and the etcd user with its
//! password by reference. Errors for what the policy says; warnings for files this
//! machine lacks (the daemon's machine may have them, see `tls.rs`).

use std::ops::Range;

use toml::Spanned;

use super::checks;
use super::coordination::RawMember;
use super::diag::{Diagnostic, Report};
use super::raw::RawSecret;
use super::tls::{ca_file, resolve};
use crate::clients::tls::{TlsError, read_identity};
use crate::core::model::{ClientIdentity, EtcdAuth, EtcdTls, SecretRef};
use crate::core::sslmode::is_local;

/// The fields as written.
pub struct RawAccess {
    pub ca_file: Option<Spanned<String>>,
    pub cert_file: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub password: Option<Spanned<RawSecret>>,
}

const MEMBER_FLAGS: &str = "each member started with --cert-file and --key-file for its client URL";

/// Checks the fields against each other and the members' URLs.
pub fn check(
    report: &mut Report,
    a: RawAccess,
    members: &[RawMember],
) -> (Option<EtcdTls>, Option<EtcdAuth>) {
    let plain: Vec<&str> = members
        .iter()
        .map(|m| m.url.get_ref().as_str())
        .filter(|u| u.starts_with("http://"))
        .collect();
    let tls_field = [
        ("ca_file", &a.ca_file),
        ("cert_file", &a.cert_file),
        ("key_file", &a.key_file),
    ]
    .into_iter()
    .find_map(|(name, f)| f.as_ref().map(|f| (name, f.span())));
    if let Some((field, span)) = &tls_field
        && !plain.is_empty()
    {
        report.push(
            Diagnostic::error(
                "tls-needs-https",
                format!(
                    "TLS settings need https:// members; {} {} http://: {}",
                    plain.len(),
                    if plain.len() == 1 { "member is" } else { "members are" },
                    plain.join(", ")
                ),
            )
            .at(span.clone())
            .label(format!("`{field}` is for https:// members"))
            .help(format!(
                "write the members as https://host:2379 ({MEMBER_FLAGS}), or remove ca_file, cert_file and key_file"
            )),
        );
    }
    let ca = a.ca_file.as_ref().and_then(|f| {
        ca_file(
            report,
            f,
            "lifeboat cannot check the members' certificates without it",
            "it is the CA that signed the members' certificates (their --cert-file)",
        )
    });
    let client = match (&a.cert_file, &a.key_file) {
        (Some(c), Some(k)) => identity(report, c, k),
        (Some(c), None) => {
            report.push(
                Diagnostic::error("client-cert-incomplete", "cert_file needs its key_file")
                    .at(c.span())
                    .label("no key_file")
                    .help("add key_file = \"…\" with the certificate's private key (PEM), or remove cert_file"),
            );
            None
        }
        (None, Some(k)) => {
            report.push(
                Diagnostic::error("client-cert-incomplete", "key_file needs its cert_file")
                    .at(k.span())
                    .label("no cert_file")
                    .help("add cert_file = \"…\" with the client certificate (PEM) this key belongs to, or remove key_file"),
            );
            None
        }
        (None, None) => None,
    };
    let tls = tls_field.map(|_| EtcdTls {
        ca_file: ca,
        client,
    });
    (tls, auth(report, a.user, a.password, &plain))
}

/// The client certificate and key, resolved. Files this machine cannot read are warnings;
/// files that hold the wrong thing are errors. Nothing read from the key reaches a message.
fn identity(
    report: &mut Report,
    cert: &Spanned<String>,
    key: &Spanned<String>,
) -> Option<ClientIdentity> {
    let identity = ClientIdentity {
        cert_file: resolve(report, cert.get_ref()),
        key_file: resolve(report, key.get_ref()),
    };
    match read_identity(&identity.cert_file, &identity.key_file) {
        Ok(_) => {
            key_permissions(report, &identity.key_file, key.span());
            Some(identity)
        }
        Err(e) if e.is_unreadable() => {
            let (code, span) = match e {
                TlsError::CertFile { .. } => ("cert-file-missing", cert.span()),
                _ => ("key-file-missing", key.span()),
            };
            report.push(
                Diagnostic::warning(code, e.to_string())
                    .at(span)
                    .label("not readable here")
                    .help("put it there before lifeboat runs: it cannot connect to the members without it"),
            );
            Some(identity)
        }
        Err(e) => {
            let (code, span, help) = match &e {
                TlsError::CertEmpty { .. } => (
                    "bad-cert-file",
                    cert.span(),
                    "give the client certificate in PEM form, signed by the CA in the members' --trusted-ca-file",
                ),
                TlsError::KeyMismatch { .. } => (
                    "cert-key-mismatch",
                    key.span(),
                    "give the key the certificate was issued for, or the certificate issued for this key",
                ),
                _ => (
                    "bad-key-file",
                    key.span(),
                    "give the certificate's private key in PEM form (PKCS#8, RSA or EC), unencrypted",
                ),
            };
            report.push(
                Diagnostic::error(code, e.to_string())
                    .at(span)
                    .label("unusable")
                    .help(help),
            );
            None
        }
    }
}

/// A private key other users can read is a leaked identity waiting to happen.
fn key_permissions(report: &mut Report, path: &std::path::Path, span: Range<usize>) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(mode) = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777) else {
        return;
    };
    if mode & 0o007 != 0 {
        report.push(
            Diagnostic::warning(
                "key-file-readable",
                format!(
                    "key_file {} can be read by every user of this machine (mode {mode:o})",
                    path.display()
                ),
            )
            .at(span)
            .label("world-readable")
            .help("chmod 600 it (or 640 with a group only lifeboat is in): it is lifeboat's identity to etcd"),
        );
    }
}

fn auth(
    report: &mut Report,
    user: Option<Spanned<String>>,
    password: Option<Spanned<RawSecret>>,
    plain: &[&str],
) -> Option<EtcdAuth> {
    const NO_PASSWORD_HELP: &str = "add password = { env = \"ETCD_PASSWORD\" } (or { file = \"/run/secrets/etcd\" }), or remove user: with --client-cert-auth, etcd takes the user from the client certificate's common name";
    let password_at = password.as_ref().map(|p| p.span());
    let password = password.and_then(|p| checks::secret(report, "password", p));
    let Some(user) = user else {
        if let Some(span) = password_at {
            report.push(
                Diagnostic::error("password-without-user", "`password` without `user`")
                    .at(span)
                    .label("whose password?")
                    .help("add user = \"lifeboat\" (the etcd user this password belongs to), or remove password"),
            );
        }
        return None;
    };
    if user.get_ref().trim().is_empty() {
        report.push(
            Diagnostic::error("empty-user", "`user` is empty")
                .at(user.span())
                .label("no user name")
                .help(format!("name the etcd user lifeboat logs in as, e.g. user = \"lifeboat\"; {NO_PASSWORD_HELP}")),
        );
        return None;
    }
    if password_at.is_none() {
        report.push(
            Diagnostic::error(
                "user-without-password",
                format!("etcd user `{}` has no password", user.get_ref()),
            )
            .at(user.span())
            .label("no password")
            .help(NO_PASSWORD_HELP),
        );
        return None;
    }
    let remote: Vec<&str> = plain
        .iter()
        .copied()
        .filter(|u| !is_local(host(u)))
        .collect();
    if !remote.is_empty() {
        report.push(
            Diagnostic::warning(
                "cleartext-password",
                format!(
                    "etcd user `{}`'s password and token travel in clear text to {}",
                    user.get_ref(),
                    remote.join(", ")
                ),
            )
            .at(user.span())
            .label("sent over http://")
            .help(format!(
                "use https:// members ({MEMBER_FLAGS}) and set ca_file to their CA"
            )),
        );
    }
    let password = match password? {
        SecretRef::File(p) => SecretRef::File(resolve(report, &p.to_string_lossy())),
        env => env,
    };
    Some(EtcdAuth {
        user: user.into_inner(),
        password,
    })
}

/// The host of a member URL (`http://host:port/…`).
fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    match authority.rsplit_once(':') {
        // An IPv6 literal keeps its brackets' colons.
        Some((h, port)) if !port.contains(']') => h,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::host;
    use crate::core::model::{Coordination, EtcdCoordination, SecretRef};
    use crate::policy::{Loaded, Severity, load_str};

    /// The corpus's etcd policy with its [coordination] replaced by `coordination`,
    /// loaded as `dir/policy.toml`.
    fn load_with(dir: &Path, coordination: &str) -> Loaded {
        let text = std::fs::read_to_string("tests/policies/good/etcd-tls.toml").expect("policy");
        let body = &text[..text.find("[coordination]").expect("a coordination section")];
        load_str(&dir.join("policy.toml"), format!("{body}{coordination}"))
    }

    fn etcd(loaded: &Loaded) -> &EtcdCoordination {
        match &loaded.policy.as_ref().map(|p| &p.coordination) {
            Some(Coordination::Etcd(c)) => c,
            other => panic!("{other:?}: {}", loaded.report.render(false)),
        }
    }

    fn codes(loaded: &Loaded, severity: Severity) -> Vec<&str> {
        loaded
            .report
            .diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .map(|d| d.code)
            .collect()
    }

    const MEMBERS: &str =
        "backend = \"etcd\"\nobservers = [{ name = \"ctl\", region = \"us-east-1\" }]\n";

    /// A CA and a client certificate it signed, written under `dir/etcd/`; the key with `mode`.
    fn pki(dir: &Path, mode: u32) -> (PathBuf, PathBuf, PathBuf) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        use std::os::unix::fs::PermissionsExt;
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .signed_by(&key, &*ca)
            .expect("sign");
        let etcd = dir.join("etcd");
        std::fs::create_dir_all(&etcd).expect("mkdir");
        let paths = (etcd.join("ca.pem"), etcd.join("c.crt"), etcd.join("c.key"));
        std::fs::write(&paths.0, ca.pem()).expect("write");
        std::fs::write(&paths.1, cert.pem()).expect("write");
        std::fs::write(&paths.2, key.serialize_pem()).expect("write");
        std::fs::set_permissions(&paths.2, std::fs::Permissions::from_mode(mode)).expect("chmod");
        (paths.0, paths.1, paths.2)
    }

    #[test]
    fn tls_files_and_the_password_file_are_resolved_against_the_policy_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, cert, key) = pki(dir.path(), 0o600);
        let loaded = load_with(
            dir.path(),
            &format!(
                "[coordination]\n{MEMBERS}members = [{{ url = \"https://etcd-a.internal:2379\", region = \"us-east-1\" }}]\nca_file = \"etcd/ca.pem\"\ncert_file = \"etcd/c.crt\"\nkey_file = \"etcd/c.key\"\nuser = \"lifeboat\"\npassword = {{ file = \"etcd/password\" }}\n"
            ),
        );
        let c = etcd(&loaded);
        let tls = c.tls.as_ref().expect("TLS settings");
        assert_eq!(tls.ca_file.as_deref(), Some(ca.as_path()));
        let client = tls.client.as_ref().expect("a client certificate");
        assert_eq!((&client.cert_file, &client.key_file), (&cert, &key));
        let auth = c.auth.as_ref().expect("a login");
        assert_eq!(auth.user, "lifeboat");
        assert_eq!(
            auth.password,
            SecretRef::File(dir.path().join("etcd/password"))
        );
        assert!(
            !codes(&loaded, Severity::Warning)
                .iter()
                .any(|c| c.contains("file")),
            "every file is there: {}",
            loaded.report.render(false)
        );
    }

    #[test]
    fn a_key_every_user_can_read_and_a_password_sent_in_clear_text_are_warned_about() {
        let dir = tempfile::tempdir().expect("tempdir");
        pki(dir.path(), 0o644);
        let loaded = load_with(
            dir.path(),
            &format!(
                "[coordination]\n{MEMBERS}members = [{{ url = \"https://etcd-a.internal:2379\", region = \"us-east-1\" }}]\ncert_file = \"etcd/c.crt\"\nkey_file = \"etcd/c.key\"\n"
            ),
        );
        etcd(&loaded);
        assert!(codes(&loaded, Severity::Warning).contains(&"key-file-readable"));

        let plain = |host: &str| {
            load_with(
                dir.path(),
                &format!(
                    "[coordination]\n{MEMBERS}members = [{{ url = \"http://{host}:2379\", region = \"us-east-1\" }}]\nuser = \"lifeboat\"\npassword = {{ env = \"ETCD_PASSWORD\" }}\n"
                ),
            )
        };
        let remote = plain("etcd-a.internal");
        etcd(&remote);
        assert!(codes(&remote, Severity::Warning).contains(&"cleartext-password"));
        let local = plain("127.0.0.1");
        assert!(!codes(&local, Severity::Warning).contains(&"cleartext-password"));
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused_naming_both_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        pki(dir.path(), 0o600);
        let other = tempfile::tempdir().expect("tempdir");
        let (_, _, stray) = pki(other.path(), 0o600);
        let loaded = load_with(
            dir.path(),
            &format!(
                "[coordination]\n{MEMBERS}members = [{{ url = \"https://etcd-a.internal:2379\", region = \"us-east-1\" }}]\ncert_file = \"etcd/c.crt\"\nkey_file = \"{}\"\n",
                stray.display()
            ),
        );
        assert!(loaded.policy.is_none());
        let d = loaded
            .report
            .diagnostics
            .iter()
            .find(|d| d.code == "cert-key-mismatch")
            .unwrap_or_else(|| panic!("{}", loaded.report.render(false)));
        assert!(d.message.contains("c.crt") && d.message.contains(&stray.display().to_string()));
        let key = std::fs::read_to_string(&stray).expect("key");
        let body = key.lines().nth(1).expect("a line of the key");
        assert!(
            !loaded.report.render(false).contains(body),
            "no key material in the report"
        );
    }

    #[test]
    fn commands_may_not_be_handed_the_etcd_password() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = std::fs::read_to_string("tests/policies/good/etcd-tls.toml").expect("policy");
        let text = text
            .replace(
                "[service]",
                "[commands]\npass_env = [\"LIFEBOAT_TEST_ETCD_PW\"]\n\n[service]",
            )
            .replace(
                "password = { file = \"/run/secrets/lifeboat-etcd-password\" }",
                "password = { env = \"LIFEBOAT_TEST_ETCD_PW\" }",
            );
        let loaded = load_str(&dir.path().join("policy.toml"), text);
        assert!(
            codes(&loaded, Severity::Error).contains(&"env-not-passable"),
            "{}",
            loaded.report.render(false)
        );
    }

    #[test]
    fn the_host_of_a_member_url_is_found_with_or_without_a_port() {
        assert_eq!(host("http://etcd-a.internal:2379"), "etcd-a.internal");
        assert_eq!(host("http://127.0.0.1:2379/"), "127.0.0.1");
        assert_eq!(host("http://[::1]:2379"), "[::1]");
        assert_eq!(host("http://[::1]"), "[::1]");
        assert_eq!(host("http://etcd"), "etcd");
    }
}
