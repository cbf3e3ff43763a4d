//! The journal's SQLite schema and its migrations.
//!
//! Versioning uses `PRAGMA user_version`; `PRAGMA application_id` marks the file as a
//! lifeboat journal so a stray SQLite file is never mistaken for one. A new journal is
//! created at version 1 and migrated step by step to `VERSION` on open, so a journal of
//! any older version stays readable; a journal newer than the binary is refused.

/// `LFBT` in ASCII: the application id of every lifeboat journal.
pub const APPLICATION_ID: i64 = 0x4C46_4254;

/// The schema version this binary writes and understands.
pub const VERSION: i64 = 2;

/// The migrations, each from version `n` to `n + 1`, run in one transaction with the
/// version bump. `MIGRATIONS[0]` takes version 1 to 2.
pub const MIGRATIONS: &[&str] = &[V2];

/// Version 2:
/// - `runs.automatic`: whether the controller started the run by itself, typed, so the
///   per-window limit survives restarts without reading the `started_by` text. Runs of
///   version 1 are marked from the only text version 1 wrote for them, once, here.
/// - `runs.ended_by`: who aborted a run (from the audit trail for older runs).
/// - `runs.plan_version`: the format of `plan_json`. Version 2 plans carry what each
///   step was bound to; a version 1 plan cannot be resumed by this binary (it is still
///   shown by `history`).
/// - `decisions`: every decision of the controller with its evidence, as typed JSON.
pub const V2: &str = r#"
ALTER TABLE runs ADD COLUMN automatic INTEGER NOT NULL DEFAULT 0 CHECK (automatic IN (0, 1));
ALTER TABLE runs ADD COLUMN ended_by TEXT;
ALTER TABLE runs ADD COLUMN plan_version INTEGER NOT NULL DEFAULT 1;
UPDATE runs SET automatic = 1
 WHERE direction = 'failover' AND started_by LIKE 'lifeboat controller (automatic)%';
UPDATE runs SET ended_by = (
    SELECT actor FROM audit a
     WHERE a.run_id = runs.run_id AND a.action = 'run_aborted'
     ORDER BY a.id DESC LIMIT 1)
 WHERE status = 'aborted';

-- Append-only: each decision (a run started, a hold, a recovery, a notice) with the
-- evidence behind it, as the JSON of `core::controller::Decision`.
CREATE TABLE decisions (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    service   TEXT NOT NULL,
    label     TEXT NOT NULL,       -- the reason's stable label (`no_quorum`, …)
    summary   TEXT NOT NULL,
    decision  TEXT NOT NULL        -- JSON
) STRICT;
CREATE INDEX decisions_by_service ON decisions (service, id);
CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
    BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
    BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
"#;

/// The format of the plans this binary writes into `runs.plan_json`.
pub const PLAN_VERSION: i64 = 2;

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
