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

/// Writes a secret to a file only this user can read (mode 0600), creating its directory.
pub fn write_private(path: &std::path::Path, value: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, value).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
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
