//! The decisions, as pure functions over data: the policy model, planning, and (as they
//! arrive) health counting, the failover state machine and its guardrails.
//!
//! Invariant: nothing here does I/O, reads a clock, sleeps or spawns. Time is an argument
//! (`time::Ts`), randomness and identifiers come from the caller. That is what lets the
//! tests drive every decision with scripted inputs and no waiting.

pub mod binding;
pub mod controller;
pub mod health;
pub mod iam;
pub mod ids;
pub mod kind;
pub mod model;
pub mod plan;
pub mod reason;
pub mod rpo;
pub mod sslmode;
pub mod step;
pub mod summary;
pub mod time;

#[cfg(test)]
pub(crate) mod testkit;
