//! The actor lock is checked on every journal write, not only when a process starts: a
//! lock file deleted or replaced under a running process (a cleanup job, a second
//! daemon that then took a fresh lock) stops its writes, so two processes never act on
//! one journal.

mod support;

use lifeboat::core::time::Ts;
use lifeboat::daemon::discovery;
use lifeboat::journal::{Journal, JournalError};

#[test]
fn a_journal_write_is_refused_once_the_lock_file_was_replaced_by_another_process() {
    let dir = support::tempdir();
    let path = dir.path().join("orders.db");
    let journal = Journal::open_or_create(&path).expect("journal");
    let lock = discovery::lock(&path, "lifeboat run").expect("lock");
    journal
        .record("orders", "alice", "pause", "while held", Ts::from_secs(1))
        .expect("a write while the lock is held");

    // Someone removes the lock file; another lifeboat then finds no lock and takes one.
    std::fs::remove_file(&lock.path).expect("remove the lock file");
    let _other = discovery::lock(&path, "another lifeboat run").expect("a fresh lock");
    let e = journal
        .record("orders", "alice", "pause", "after", Ts::from_secs(2))
        .expect_err("this process no longer holds the lock");
    assert!(matches!(e, JournalError::LockLost { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("orders.db.lock"), "names the lock: {msg}");
    assert!(msg.contains("replaced"), "says what happened: {msg}");
}

#[test]
fn a_journal_write_is_refused_once_the_lock_file_is_gone() {
    let dir = support::tempdir();
    let path = dir.path().join("orders.db");
    let journal = Journal::open_or_create(&path).expect("journal");
    let lock = discovery::lock(&path, "lifeboat run").expect("lock");
    std::fs::remove_file(&lock.path).expect("remove the lock file");
    let e = journal
        .record("orders", "alice", "pause", "after", Ts::from_secs(2))
        .expect_err("refused");
    assert!(e.to_string().contains("the lock file is gone"), "{e}");

    // Once this process lets go of the lock, it no longer claims to act: writes (a
    // read-only tool's, a test's) are not checked.
    drop(lock);
    journal
        .record("orders", "alice", "pause", "unlocked", Ts::from_secs(3))
        .expect("no lock held, nothing to check");
}
