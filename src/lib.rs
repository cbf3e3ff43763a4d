//! lifeboat: a disaster-recovery and regional-failover controller.
//!
//! See ARCHITECTURE.md for the map. In short: `policy` loads what the operator wrote,
//! `core` decides, and the other modules do the I/O those decisions call for.

pub mod action;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod contract;
pub mod coord;
pub mod core;
pub mod daemon;
pub mod drill;
pub mod driver;
#[doc(hidden)]
pub mod fuzzing;
pub mod journal;
pub mod policy;
pub mod probe;
pub mod process;
pub mod runbook;
pub mod sandbox;
