//! How commands find a service's journal: `--journal PATH`, or `--policy FILE` (its
//! `journal.path`, else `<state-dir>/<service>.db`). Every operator command defaults to
//! the same policy, so `lifeboat history` works wherever `lifeboat status` does.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::journal::{self, Journal};
use crate::policy;

/// The policy operator commands use when given none.
pub const DEFAULT_POLICY: &str = "policies/sandbox.toml";

#[derive(clap::Args, Debug, Clone)]
pub struct JournalArgs {
    /// The service's policy file (default policies/sandbox.toml, like the other operator
    /// commands); its journal is the policy's journal.path, else <state-dir>/<service>.db
    #[arg(long, short = 'p')]
    pub policy: Option<PathBuf>,

    /// The journal file itself, instead of the policy's
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,

    /// On a daemon started with --policies: the service, by name
    #[arg(long = "service", short = 's', value_name = "NAME", conflicts_with_all = ["policy", "journal"])]
    pub name: Option<String>,
}

impl JournalArgs {
    /// Turns `-s NAME` into that service's policy file, from the daemon running it.
    pub fn pin(&mut self, state_dir: &Path) -> anyhow::Result<()> {
        if let Some(name) = &self.name {
            self.policy = Some(super::fleet::policy_of(name, state_dir)?);
        }
        Ok(())
    }

    /// The policy: the one given, else the default unless only a journal was named.
    pub fn policy_path(&self) -> Option<PathBuf> {
        match (&self.policy, &self.journal) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(PathBuf::from(DEFAULT_POLICY)),
        }
    }

    /// The journal's path. Errors when the policy is invalid.
    pub fn path(&self, state_dir: &Path) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.journal {
            return Ok(p.clone());
        }
        let path = self
            .policy_path()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_POLICY));
        let (policy, _) = policy::load_valid(&path)?;
        Ok(journal::location(&policy, state_dir))
    }

    /// The service's name, from the policy. Errors without one (only `--journal`).
    pub fn service(&self) -> anyhow::Result<String> {
        let Some(p) = self.policy_path() else {
            anyhow::bail!("which service? name its policy with --policy");
        };
        Ok(policy::load_valid(&p)?.0.service)
    }

    /// Opens the existing journal, checked. Never creates one: reading commands must
    /// not leave an empty journal behind a typo.
    pub fn open(&self, state_dir: &Path) -> anyhow::Result<Journal> {
        let path = self.path(state_dir)?;
        Journal::open(&path).with_context(|| format!("open journal {}", path.display()))
    }
}

/// Who is acting: `--by`, else the login name. The audit trail needs a name.
pub fn operator(by: Option<String>) -> anyhow::Result<String> {
    if let Some(by) = by.filter(|b| !b.trim().is_empty()) {
        return Ok(by);
    }
    for var in ["USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var)
            && !v.trim().is_empty()
        {
            return Ok(v);
        }
    }
    anyhow::bail!("who is this? the audit trail records a name: add --by NAME")
}
