//! Secrets, read from their references only when needed, and never printable.

use std::fmt;

use thiserror::Error;

use crate::core::model::SecretRef;

/// A secret value. `Debug` and `Display` print `<redacted>`, so it cannot leak through a
/// log line, an error message or a journal entry by accident; `expose` is explicit.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value, for the one place that must send it (a connection's password field).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("environment variable {0} is not set; export it in the environment lifeboat runs in")]
    EnvMissing(String),
    #[error(
        "cannot read secret file {path}: {reason}; check that it exists and lifeboat may read it"
    )]
    File { path: String, reason: String },
    #[error("secret {0} is empty")]
    Empty(String),
}

/// Reads a secret from its reference: an environment variable, or a file (trailing newline
/// removed).
pub fn resolve(r: &SecretRef) -> Result<Secret, SecretError> {
    let value = match r {
        SecretRef::Env(name) => {
            std::env::var(name).map_err(|_| SecretError::EnvMissing(name.clone()))?
        }
        SecretRef::File(path) => std::fs::read_to_string(path)
            .map_err(|e| SecretError::File {
                path: path.display().to_string(),
                reason: e.kind().to_string(),
            })?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
    };
    if value.is_empty() {
        return Err(SecretError::Empty(r.to_string()));
    }
    Ok(Secret(value))
}

/// Writes a secret to a file only this user can read (mode 0600 from its creation),
/// atomically and without following a symlink, creating its directory.
pub fn write_private(path: &std::path::Path, value: &str) -> anyhow::Result<()> {
    super::files::write_atomic(path, value.as_bytes(), 0o600)
}

/// A bearer token: 256 bits from the operating system's CSPRNG, as hex.
///
/// Errors: the OS refused random bytes (no getrandom(2), no /dev/urandom): better no
/// daemon than a guessable token.
pub fn random_token() -> anyhow::Result<Secret> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        anyhow::anyhow!("the operating system gave no random bytes for the API token: {e}")
    })?;
    Ok(Secret(bytes.iter().map(|b| format!("{b:02x}")).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn generated_tokens_are_256_random_bits_and_never_repeat() {
        let tokens: std::collections::BTreeSet<String> = (0..1000)
            .map(|_| random_token().expect("token").expose().to_string())
            .collect();
        assert_eq!(tokens.len(), 1000);
        for t in &tokens {
            assert_eq!(t.len(), 64);
            assert!(t.chars().all(|c| c.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn a_private_file_replaces_a_planted_symlink_instead_of_writing_through_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("authorized_keys");
        std::fs::write(&victim, "ssh-ed25519 AAAA").expect("write");
        let path = dir.path().join("orders.db.token");
        std::os::unix::fs::symlink(&victim, &path).expect("symlink");
        write_private(&path, "s3cret").expect("write");
        assert_eq!(
            std::fs::read_to_string(&victim).expect("read"),
            "ssh-ed25519 AAAA"
        );
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn file_secrets_lose_their_trailing_newline_and_missing_ones_say_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").expect("write");
        assert_eq!(
            resolve(&SecretRef::File(path)).expect("read").expose(),
            "s3cret"
        );
        let missing =
            resolve(&SecretRef::Env("LIFEBOAT_TEST_SURELY_UNSET_VAR".into())).expect_err("unset");
        assert!(
            missing
                .to_string()
                .contains("LIFEBOAT_TEST_SURELY_UNSET_VAR is not set")
        );
    }
}
