//! Who acts on a journal: an exclusive lock held by the daemon or by a standalone CLI
//! command, and a small file beside the journal where a running daemon says how to reach
//! its API. The CLI reads that file to decide whether to talk to the daemon or to act
//! itself.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Holds the journal's lock until dropped. While it lives, every write to the journal
/// in this process first checks that the lock is still held (`journal::fs`).
#[derive(Debug)]
pub struct ActorLock {
    _held: std::sync::Arc<crate::journal::fs::HeldLock>,
    pub path: PathBuf,
}

/// The lock file of a journal: `<journal>.lock`.
pub fn lock_path(journal: &Path) -> PathBuf {
    append_ext(journal, "lock")
}

/// The discovery file of a journal: `<journal>.api`.
pub fn api_path(journal: &Path) -> PathBuf {
    append_ext(journal, "api")
}

/// The API token file of a journal, when the daemon made its own: `<journal>.token`.
pub fn token_path(journal: &Path) -> PathBuf {
    append_ext(journal, "token")
}

fn append_ext(p: &Path, ext: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Takes the exclusive lock of `journal`, or says who holds it.
///
/// Guarantees: while the returned value lives, no other lifeboat process on this host
/// acts on the same journal (daemon or standalone command).
/// Errors: another process holds it (its pid when known), or the lock file cannot be made.
pub fn lock(journal: &Path, who: &str) -> anyhow::Result<ActorLock> {
    let path = lock_path(journal);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    // NOFOLLOW: a symlink planted at the lock's name must not make the truncate below
    // empty some other file.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .with_context(|| format!("open the lock file {}", path.display()))?;
    if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        anyhow::bail!(
            "another lifeboat process is acting on this service ({}): only one may at a time; talk to it (lifeboat status), or wait for it to finish",
            if holder.trim().is_empty() {
                "unknown process".to_string()
            } else {
                holder.trim().to_string()
            }
        );
    }
    file.set_len(0)?;
    writeln!(file, "{who}, pid {}", std::process::id())?;
    Ok(ActorLock {
        _held: crate::journal::fs::hold(journal, file, path.clone()),
        path,
    })
}

/// What a running daemon publishes about itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Published {
    pub url: String,
    pub pid: u32,
    /// Where the API token is, when the daemon generated it (readable by its user only).
    pub token_file: Option<PathBuf>,
    /// Set when the daemon runs several services (`run --policies`): this one's API is
    /// under `/v1/services/NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// What a daemon running a fleet (`run --policies DIR`) publishes in the state
/// directory, so that `lifeboat status` without `--policy` finds it and `-s NAME` names
/// a service.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FleetPublished {
    pub url: String,
    pub pid: u32,
    pub token_file: Option<PathBuf>,
    pub services: Vec<FleetMember>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FleetMember {
    pub name: String,
    pub policy: Option<PathBuf>,
    pub journal: PathBuf,
}

/// The fleet discovery file of a state directory: `<state dir>/fleet.api`.
pub fn fleet_path(state_dir: &Path) -> PathBuf {
    state_dir.join("fleet.api")
}

/// The token a fleet daemon generated: `<state dir>/fleet.token`.
pub fn fleet_token_path(state_dir: &Path) -> PathBuf {
    state_dir.join("fleet.token")
}

pub fn publish_fleet(state_dir: &Path, info: &FleetPublished) -> anyhow::Result<()> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("create {}", state_dir.display()))?;
    write_whole(&fleet_path(state_dir), info)
}

/// The fleet daemon of a state directory, if one is alive.
pub fn find_fleet(state_dir: &Path) -> Option<FleetPublished> {
    read_live(&fleet_path(state_dir), |i: &FleetPublished| i.pid)
}

/// Writes the discovery file whole (temporary file, then rename): a CLI reading it at
/// the same moment sees the old daemon or the new, never half of either.
pub fn publish(journal: &Path, info: &Published) -> anyhow::Result<()> {
    write_whole(&api_path(journal), info)
}

/// A discovery file written whole (temporary file, then rename).
fn write_whole(path: &Path, info: &impl Serialize) -> anyhow::Result<()> {
    crate::clients::files::write_atomic(path, serde_json::to_string_pretty(info)?.as_bytes(), 0o644)
}

/// A discovery file's contents, while the process that wrote it (`pid`) is alive.
fn read_live<T: serde::de::DeserializeOwned>(path: &Path, pid: impl Fn(&T) -> u32) -> Option<T> {
    let info: T = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    crate::process::alive(pid(&info)).then_some(info)
}

pub fn unpublish(journal: &Path) {
    let _ = std::fs::remove_file(api_path(journal));
}

/// The daemon acting on `journal`, if one is alive.
pub fn find(journal: &Path) -> Option<Published> {
    read_live(&api_path(journal), |i: &Published| i.pid)
}
