//! The local two-region world on 127.0.0.1: real PostgreSQL (a primary and a streaming
//! standby), Redis, moto's server for the AWS APIs, and fault-switchable API and worker
//! endpoints. The integration tests start these pieces; `lifeboat sandbox` (later)
//! composes them for demos and drills.

pub mod aws;
pub mod endpoint;
pub mod etcd;
pub mod fleet;
pub mod ha;
pub mod moto;
pub mod peer_gate;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod redis;
pub mod region;
pub mod world;
