//! Files written whole or not at all, and never through a link someone else planted:
//! the API token, the sandbox's secrets, the daemon's discovery file. Each is written
//! under a fresh temporary name (created exclusively, with its final mode from the first
//! byte) and renamed into place; a symlink at the destination is replaced, not followed.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rustix::fs::{Mode, OFlags};

/// Writes `data` to `path` atomically with permissions `mode`, creating its directory.
///
/// Guarantees: a reader sees the old content or the new, never part of it; the file
/// never exists with wider permissions than `mode`, even for an instant; no symlink is
/// followed (not at the temporary name, not at `path`).
/// Errors: the directory cannot be made, the temporary file cannot be created or
/// written, or the rename fails; the temporary file is removed in each case.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let nonce = getrandom::u64().unwrap_or_else(|_| u64::from(std::process::id()));
    let tmp = dir.join(format!(
        ".{}.{}-{nonce:016x}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| -> anyhow::Result<()> {
        // EXCL: a file (or link) already at the temporary name is an error, never
        // reused; NOFOLLOW says the same about links explicitly.
        let fd = rustix::fs::open(
            &tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .with_context(|| format!("create {}", tmp.display()))?;
        // The umask may have removed bits of `mode`; it can never add any.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(data)?;
        file.sync_all()?;
        // rename replaces whatever is at `path`, a symlink included, without following it.
        std::fs::rename(&tmp, path).with_context(|| format!("rename into {}", path.display()))?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("write {}", path.display()))?;
    // The new directory entry survives a crash too.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_symlink_at_the_destination_is_replaced_and_its_target_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").expect("write");
        let path = dir.path().join("api.token");
        std::os::unix::fs::symlink(&victim, &path).expect("symlink");
        write_atomic(&path, b"new-secret", 0o600).expect("write");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        assert!(meta.file_type().is_file(), "a regular file now");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new-secret");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "no temporary file left behind: {left:?}");
    }
}
