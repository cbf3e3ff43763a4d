//! How commands find a service's journal: `--journal PATH`, or `--policy FILE` (its
//! `journal.path`, else `<state-dir>/<service>.db`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::journal::{self, Journal};
use crate::policy;

#[derive(clap::Args, Debug, Clone)]
pub struct JournalArgs {
    /// The service's policy file; its journal is the policy's journal.path, else
    /// <state-dir>/<service>.db
    #[arg(long, short = 'p', conflicts_with = "journal")]
    pub policy: Option<PathBuf>,

    /// The journal file itself
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
}

impl JournalArgs {
    /// The journal's path. Errors when neither option is given or the policy is invalid.
    pub fn path(&self, state_dir: &Path) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.journal {
            return Ok(p.clone());
        }
        let Some(policy_path) = &self.policy else {
            anyhow::bail!(
                "which service? name its policy (--policy policies/orders.toml) or its journal (--journal {}/orders.db)",
                state_dir.display()
            );
        };
        let (policy, _) = policy::load_valid(policy_path)?;
        Ok(journal::location(&policy, state_dir))
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
