#![allow(dead_code)]

//! A `lifeboat run` process under test: stopped when dropped, and found, as the CLI finds
//! it, through the file it publishes beside its journal.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Daemon {
    pub child: Child,
    pub url: String,
    /// The token the daemon generated, when it did (empty when it was given one).
    pub token: String,
    pub journal: PathBuf,
    pub log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `run` (a `lifeboat run …` command) with its stderr in `log`, and waits, at
    /// most 30 s, until it publishes its API beside `journal`. A daemon that does not is
    /// a failed test showing its log.
    pub fn start(mut run: Command, journal: &Path, log: &Path) -> Daemon {
        run.stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("create the daemon's log"));
        // Owned by a `Daemon` at once, so a failed assertion below still stops it.
        let mut d = Daemon {
            child: run.spawn().expect("start lifeboat run"),
            url: String::new(),
            token: String::new(),
            journal: journal.to_path_buf(),
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(p) = lifeboat::daemon::discovery::find(journal) {
                d.url = p.url;
                if let Some(f) = p.token_file {
                    d.token = std::fs::read_to_string(f)
                        .expect("read the generated token")
                        .trim()
                        .to_string();
                }
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not publish its API beside {}; its log:\n{}",
                journal.display(),
                d.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of its log, for a failure message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(6000);
        text[text.ceil_char_boundary(start)..].to_string()
    }
}
