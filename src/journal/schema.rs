//! The journal's SQLite schema, version 1, and the identity checks run on every open.
//!
//! Versioning uses `PRAGMA user_version`; `PRAGMA application_id` marks the file as a
//! lifeboat journal so a stray SQLite file is never mistaken for one. A later version
//! adds a migration step here; a journal newer than the binary is refused.

/// `LFBT` in ASCII: the application id of every lifeboat journal.
pub const APPLICATION_ID: i64 = 0x4C46_4254;

/// The schema version this binary writes and understands.
pub const VERSION: i64 = 1;

/// Version 1. Timestamps are wall-clock milliseconds since the Unix epoch (`core::time::Ts`),
/// read by the caller. Every table is STRICT so a wrong type is an error, not a surprise.
pub const V1: &str = r#"
-- The fencing epoch of each service: raised, in one transaction, before a run's first
-- side effect, when an executor takes a run over, and when a run is aborted. Writes that
-- carry a smaller epoch are refused.
CREATE TABLE epochs (
    service     TEXT PRIMARY KEY,
    epoch       INTEGER NOT NULL CHECK (epoch >= 0),
    raised_at   INTEGER NOT NULL,
    raised_for  TEXT NOT NULL          -- the run (or abort) it was raised for
) STRICT;

-- One row per run. `plan_json` is the plan as started, so a resumed run executes exactly
-- it even if the policy changed since. `epoch` is the epoch of the executor that owns it.
CREATE TABLE runs (
    run_id          TEXT PRIMARY KEY,
    service         TEXT NOT NULL,
    direction       TEXT NOT NULL CHECK (direction IN ('failover', 'failback')),
    from_region     TEXT NOT NULL,
    to_region       TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN
                      ('running', 'awaiting_approval', 'completed', 'failed', 'aborted')),
    epoch           INTEGER NOT NULL,
    allow_data_loss INTEGER NOT NULL CHECK (allow_data_loss IN (0, 1)),
    started_by      TEXT NOT NULL,     -- who or what started it
    reason          TEXT NOT NULL,     -- why
    plan_json       TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    outcome         TEXT               -- how it ended: failure message, abort reason
) STRICT;
CREATE INDEX runs_by_service ON runs (service, created_at);

-- One row per planned step, moved through the states of `core::step::StepState`.
CREATE TABLE steps (
    run_id      TEXT NOT NULL REFERENCES runs (run_id),
    name        TEXT NOT NULL,
    stage       INTEGER NOT NULL,      -- 1-based; steps of one stage run in parallel
    position    INTEGER NOT NULL,      -- order in the plan
    kind        TEXT NOT NULL,
    region      TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('planned', 'started', 'applied', 'verified',
                  'skipped', 'failed', 'awaiting_approval', 'approved')),
    detail      TEXT,                  -- the latest word on it: a detail or an error
    error_class TEXT,
    started_at  INTEGER,
    finished_at INTEGER,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
) STRICT;

-- Append-only: each check call, each apply attempt, each verification (all its polls),
-- each compensation. Begun before the call (write-ahead) and ended after it; a row never
-- ended was cut short by the process stopping.
CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL,
    step        TEXT NOT NULL,
    phase       TEXT NOT NULL CHECK (phase IN ('check', 'apply', 'verify', 'compensate')),
    attempt     INTEGER NOT NULL,      -- apply: 1, 2, …; verify: observations made
    epoch       INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    outcome     TEXT CHECK (outcome IN
                  ('done', 'not_done', 'error', 'timed_out', 'cancelled')),
    error_class TEXT,
    detail      TEXT,
    FOREIGN KEY (run_id, step) REFERENCES steps (run_id, name)
) STRICT;
CREATE INDEX attempts_by_step ON attempts (run_id, step);
CREATE TRIGGER attempts_end_once BEFORE UPDATE ON attempts
    WHEN OLD.finished_at IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'an ended attempt is never rewritten'); END;
CREATE TRIGGER attempts_kept BEFORE DELETE ON attempts
    BEGIN SELECT RAISE(ABORT, 'attempts are append-only'); END;

CREATE TABLE approvals (
    id              INTEGER PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs (run_id),
    step            TEXT NOT NULL,
    approved_by     TEXT NOT NULL,
    allow_data_loss INTEGER NOT NULL CHECK (allow_data_loss IN (0, 1)),
    at              INTEGER NOT NULL
) STRICT;

-- Append-only: who or what did what, and why.
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    service TEXT NOT NULL,
    run_id  TEXT,
    epoch   INTEGER,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    detail  TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_run ON audit (run_id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;

-- Which region serves each service, as far as completed runs know. Updated in the same
-- transaction that marks a run completed.
CREATE TABLE service_state (
    service       TEXT PRIMARY KEY,
    active_region TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
"#;
