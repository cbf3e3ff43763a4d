//! TLS settings of data-store targets: `sslmode` and `ca_file` on PostgreSQL, `ca_file`
//! on `rediss://` Redis. Checked here so a connection never meets a mode it does not know
//! or a CA it cannot read: errors for what the policy says, warnings for what this machine
//! lacks (the daemon's machine may have the file `validate`'s machine does not; probes of
//! the target refuse to start without it, and steps fail naming it).

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use toml::Spanned;

use super::diag::{Diagnostic, Report};
use super::spans::closest;
use crate::core::model::SslMode;
use crate::core::sslmode::{RDS_BUNDLE_HINT, is_local};

/// The resolved `sslmode` and CA file of a PostgreSQL target in one region.
pub fn postgres(
    report: &mut Report,
    host: &Spanned<String>,
    sslmode: Option<&Spanned<String>>,
    ca_file: Option<&Spanned<String>>,
) -> Option<(SslMode, Option<PathBuf>)> {
    let mode = match sslmode {
        None => SslMode::default_for(host.get_ref()),
        Some(s) => match SslMode::parse(s.get_ref()) {
            Some(m) => m,
            None => {
                let names: Vec<&str> = SslMode::ALL.iter().map(|m| m.as_str()).collect();
                let mut d = Diagnostic::error(
                    "unknown-sslmode",
                    format!(
                        "sslmode \"{}\" is not one of {}",
                        s.get_ref(),
                        names.join(", ")
                    ),
                )
                .at(s.span())
                .label("unknown sslmode");
                d.help = Some(match closest(s.get_ref(), names.iter().copied()) {
                    Some(m) => format!("did you mean \"{m}\"?"),
                    None => "use verify-full (the default for remote hosts) unless you have a reason not to".to_string(),
                });
                report.push(d);
                return None;
            }
        },
    };
    let remote = !is_local(host.get_ref());
    if let Some(s) = sslmode
        && remote
        && !mode.verifies()
    {
        let what = match mode {
            SslMode::Disable => {
                "in clear text: anyone on the path can read them or answer in the server's place"
            }
            _ => {
                "encrypted but not authenticated: a man in the middle can answer in the server's place"
            }
        };
        report.push(
            Diagnostic::warning(
                "unverified-tls",
                format!(
                    "connections to {} are {what} (\"in recovery\", say, so a fence is skipped)",
                    host.get_ref()
                ),
            )
            .at(s.span())
            .label(format!("sslmode {mode}"))
            .help(format!(
                "use sslmode = \"verify-full\" with the server's CA in ca_file ({RDS_BUNDLE_HINT})"
            )),
        );
    }
    let ca = match ca_file {
        Some(f) if !mode.verifies() => {
            report.push(
                Diagnostic::error(
                    "ca-file-unused",
                    format!("ca_file is not used with sslmode \"{mode}\", which checks no certificate"),
                )
                .at(f.span())
                .label("ignored")
                .help("use sslmode = \"verify-full\" (or \"verify-ca\") to check the server against it, or remove ca_file"),
            );
            return None;
        }
        Some(f) => Some(ca_path(report, f)?),
        None => {
            if mode.verifies() {
                no_roots_warning(
                    report,
                    sslmode.map(Spanned::span).unwrap_or(host.span()),
                    mode.as_str(),
                );
            }
            None
        }
    };
    Some((mode, ca))
}

/// The CA file of a Redis target, which only `rediss://` uses.
pub fn redis(
    report: &mut Report,
    url: &Spanned<String>,
    ca_file: Option<&Spanned<String>>,
) -> Option<Option<PathBuf>> {
    let tls = url.get_ref().starts_with("rediss://");
    if tls && url.get_ref().contains("#insecure") {
        report.push(
            Diagnostic::error(
                "insecure-tls",
                "`#insecure` turns off every check of the Redis server's certificate",
            )
            .at(url.span())
            .label("no verification")
            .help(
                "remove `#insecure` and set ca_file to the CA that signed the server's certificate",
            ),
        );
        return None;
    }
    match ca_file {
        Some(f) if !tls => {
            report.push(
                Diagnostic::error("ca-file-unused", "ca_file is only used by rediss:// URLs")
                    .at(f.span())
                    .label("ignored")
                    .help("write the URL as rediss://… to connect over TLS, or remove ca_file"),
            );
            None
        }
        Some(f) => Some(Some(ca_path(report, f)?)),
        None => {
            if tls {
                no_roots_warning(report, url.span(), "rediss://");
            }
            Some(None)
        }
    }
}

/// A path as the policy writes it, resolved against the policy's directory like every
/// other path in it.
pub(super) fn resolve(report: &Report, written: &str) -> PathBuf {
    let written = Path::new(written);
    if written.is_absolute() {
        written.to_path_buf()
    } else {
        report
            .path
            .parent()
            .map(|d| d.join(written))
            .unwrap_or_else(|| written.to_path_buf())
    }
}

/// The CA file of a data-store target.
fn ca_path(report: &mut Report, f: &Spanned<String>) -> Option<PathBuf> {
    ca_file(
        report,
        f,
        "probes of this target refuse to start without it",
        RDS_BUNDLE_HINT,
    )
}

/// A CA file, resolved. A file that is there but holds no certificate is an error; one
/// that is not there (yet) is a warning, because the machine that validates is not always
/// the one that runs. `consequence` says what happens without it, `hint` where to get it.
pub(super) fn ca_file(
    report: &mut Report,
    f: &Spanned<String>,
    consequence: &str,
    hint: &str,
) -> Option<PathBuf> {
    let path = resolve(report, f.get_ref());
    let certs = std::fs::read(&path).map(|pem| {
        rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
            .filter_map(Result::ok)
            .count()
    });
    match certs {
        Ok(n) if n > 0 => Some(path),
        Err(e) => {
            let reason = e.kind();
            report.push(
                Diagnostic::warning(
                    "ca-file-missing",
                    format!("cannot read ca_file {}: {reason}", path.display()),
                )
                .at(f.span())
                .label("not readable here")
                .help(format!(
                    "put it there before lifeboat runs: {consequence}; {hint}"
                )),
            );
            Some(path)
        }
        Ok(_) => {
            report.push(
                Diagnostic::error(
                    "bad-ca-file",
                    format!("ca_file {} holds no PEM certificate", path.display()),
                )
                .at(f.span())
                .label("no -----BEGIN CERTIFICATE-----")
                .help(format!("give the CA certificates in PEM form; {hint}")),
            );
            None
        }
    }
}

/// A verified connection without a CA file trusts the system's roots; say so when this
/// machine has none.
fn no_roots_warning(report: &mut Report, span: std::ops::Range<usize>, what: &str) {
    // Read once per process: there are hundreds of them, and many endpoints.
    static HAS_ROOTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let has_roots =
        *HAS_ROOTS.get_or_init(|| !rustls_native_certs::load_native_certs().certs.is_empty());
    if !has_roots {
        report.push(
            Diagnostic::warning(
                "no-ca",
                format!("{what} checks the server's certificate, but there is no ca_file and this machine has no system CA certificates"),
            )
            .at(span)
            .label("nothing to verify against")
            .help(format!("set ca_file to the server's CA, or install the ca-certificates package; {RDS_BUNDLE_HINT}")),
        );
    }
}
