//! Connections to the outside world, shared by probes and actions: AWS clients per
//! region, PostgreSQL and Redis connections, and secrets read from their references.
//! Every error names the endpoint it was about, and none carries a secret.

pub mod aws;
pub mod files;
pub mod http;
pub mod pg;
pub mod redis;
pub mod secret;
pub mod subprocess;
pub mod tls;
