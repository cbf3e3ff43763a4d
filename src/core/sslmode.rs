//! `sslmode` of a PostgreSQL target: how much of the server's TLS identity a connection
//! checks. The names and meanings are libpq's, so a DBA reads them as they expect.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where RDS's CA bundle comes from; messages about a CA mention it, since RDS is where
/// most operators first meet a server certificate their system does not trust.
pub const RDS_BUNDLE_HINT: &str = "for RDS, use global-bundle.pem from AWS's truststore, https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem";

#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP. Only for loopback, or when the policy says so explicitly.
    Disable,
    /// Encrypted, but any certificate is accepted: protects against listening, not
    /// against a man in the middle.
    Require,
    /// Encrypted, and the certificate must chain to a trusted CA; its names are not
    /// compared with the host.
    VerifyCa,
    /// Encrypted, the certificate chains to a trusted CA and names the host. The default
    /// for every host that is not loopback (and for records written before sslmode
    /// existed, so that reading an old record never weakens a connection).
    #[default]
    VerifyFull,
}

impl SslMode {
    pub const ALL: [SslMode; 4] = [
        SslMode::Disable,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    pub fn parse(s: &str) -> Option<SslMode> {
        SslMode::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether the server's certificate is checked against a CA.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }

    /// The mode a policy gets when it names none: TLS with full verification, except on
    /// loopback (or a Unix socket), where the traffic never leaves the machine.
    pub fn default_for(host: &str) -> SslMode {
        if is_local(host) {
            SslMode::Disable
        } else {
            SslMode::VerifyFull
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `localhost`, a loopback address, or a Unix socket directory.
pub fn is_local(host: &str) -> bool {
    if host.starts_with('/') || host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_hosts_default_to_full_verification_and_loopback_to_plain_tcp() {
        assert_eq!(SslMode::default_for("db.example.com"), SslMode::VerifyFull);
        assert_eq!(SslMode::default_for("10.0.0.5"), SslMode::VerifyFull);
        assert_eq!(SslMode::default_for("127.0.0.1"), SslMode::Disable);
        assert_eq!(SslMode::default_for("::1"), SslMode::Disable);
        assert_eq!(SslMode::default_for("localhost"), SslMode::Disable);
        assert_eq!(
            SslMode::default_for("/var/run/postgresql"),
            SslMode::Disable
        );
        assert_eq!(SslMode::parse("verify-ca"), Some(SslMode::VerifyCa));
        assert_eq!(SslMode::parse("verify_full"), None);
    }
}
