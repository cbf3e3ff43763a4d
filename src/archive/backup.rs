//! Journal backups: a snapshot (SQLite's online backup API) uploaded to the reports
//! bucket and verified there, or copied to a file; and the restore that puts a verified
//! backup in place of a journal no process holds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};

use super::s3;
use crate::core::model::S3Location;
use crate::core::time::Ts;
use crate::journal::Journal;
use crate::journal::backup::{self as jb, BackupNote};

/// A scratch file beside the journal (same filesystem, so a restore's rename is
/// atomic), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn beside(journal: &Path, what: &str) -> Scratch {
        let nonce = getrandom::u64().unwrap_or_else(|_| u64::from(std::process::id()));
        let mut name = journal.as_os_str().to_owned();
        name.push(format!(".{what}-{nonce:016x}"));
        Scratch(PathBuf::from(name))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Takes a snapshot and checks it: the bytes of a verified copy of the journal.
async fn snapshot(journal: Arc<Journal>) -> anyhow::Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let scratch = Scratch::beside(journal.path(), "snapshot");
        journal
            .snapshot(&scratch.0)
            .context("snapshot the journal")?;
        jb::verify_copy(&scratch.0).context("check the snapshot")?;
        std::fs::read(&scratch.0).with_context(|| format!("read {}", scratch.0.display()))
    })
    .await
    .context("the snapshot task stopped")?
}

/// The key of a backup: `<prefix><service>/journal/<time>-<label>.db`, sorting by time.
pub fn key(loc: &S3Location, service: &str, now: Ts, label: &str) -> String {
    loc.key(&format!(
        "{service}/journal/{}-{label}.db",
        now.compact_utc()
    ))
}

/// Backs the journal up to the reports bucket: snapshot, quick_check, upload, read back
/// and compare, quick_check the downloaded copy; then notes it beside the journal.
///
/// Guarantees: the note names a backup only once the bucket returned it byte for byte
/// and it passed the integrity check as downloaded.
/// Errors: any of those steps, with what failed.
pub async fn to_s3(
    journal: Arc<Journal>,
    client: &aws_sdk_s3::Client,
    loc: &S3Location,
    service: &str,
    now: Ts,
    label: &str,
) -> anyhow::Result<BackupNote> {
    let bytes = snapshot(journal.clone()).await?;
    let key = key(loc, service, now, label);
    s3::put_verified(
        client,
        &loc.bucket,
        &key,
        bytes.clone(),
        "application/vnd.sqlite3",
    )
    .await
    .map_err(anyhow::Error::msg)?;
    // The copy as it came back must open as a sound journal too.
    let back = s3::get(client, &loc.bucket, &key)
        .await
        .map_err(anyhow::Error::msg)?;
    let jpath = journal.path().to_path_buf();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let scratch = Scratch::beside(&jpath, "verify");
        std::fs::write(&scratch.0, &back)?;
        jb::verify_copy(&scratch.0).context("check the uploaded backup as downloaded")?;
        Ok(())
    })
    .await??;
    let note = BackupNote {
        location: loc.url(&key),
        at: now,
        bytes: bytes.len() as u64,
    };
    jb::write_note(journal.path(), &note)?;
    Ok(note)
}

/// Backs the journal up to a file (which must not exist yet), checked.
pub async fn to_file(journal: Arc<Journal>, dest: &Path, now: Ts) -> anyhow::Result<BackupNote> {
    if dest.exists() {
        bail!(
            "{} exists; lifeboat does not overwrite a backup",
            dest.display()
        );
    }
    let bytes = snapshot(journal.clone()).await?;
    crate::clients::files::write_atomic(dest, &bytes, 0o600)?;
    jb::verify_copy(dest).context("check the backup file")?;
    let note = BackupNote {
        location: dest.display().to_string(),
        at: now,
        bytes: bytes.len() as u64,
    };
    jb::write_note(journal.path(), &note)?;
    Ok(note)
}

/// Where a backup comes from: an `s3://` URL or a file.
pub async fn fetch(from: &str, client: Option<&aws_sdk_s3::Client>) -> anyhow::Result<Vec<u8>> {
    if from.starts_with("s3://") {
        let (bucket, key) = s3::split_url(from).map_err(anyhow::Error::msg)?;
        let client = client.context("restoring from S3 needs AWS configuration")?;
        return s3::get(client, &bucket, &key)
            .await
            .map_err(anyhow::Error::msg);
    }
    std::fs::read(from).with_context(|| format!("read {from}"))
}

/// Puts `bytes` (a backup) in place of the journal at `journal`, checked first; the
/// journal it replaces is kept beside it. Returns where that went.
///
/// Assumptions: the caller holds the journal's actor lock, so no process has it open.
/// Errors: the backup is not a sound lifeboat journal (nothing is touched then); a file
/// operation failed.
pub fn restore(journal: &Path, bytes: &[u8], now: Ts) -> anyhow::Result<Option<PathBuf>> {
    if let Some(dir) = journal.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let scratch = Scratch::beside(journal, "restoring");
    std::fs::write(&scratch.0, bytes).with_context(|| format!("write {}", scratch.0.display()))?;
    jb::verify_copy(&scratch.0)
        .context("the backup is not a sound lifeboat journal; nothing was replaced")?;
    let aside = jb::put_in_place(&scratch.0, journal, now)?;
    Ok(aside)
}
