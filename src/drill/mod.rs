//! Game days: inject a fault into the sandbox, let the real daemon act, measure detection,
//! decision, client-side RTO, lost writes and split-brain, and write the evidence.

pub mod accounting;
pub mod drift;
pub mod faults;
pub mod invariants;
pub mod observe;
pub mod report;
pub mod run;
pub mod scenario;
pub mod scratch;
