//! Cache invalidation after traffic moves: `redis_invalidate` (delete the keys matching
//! a pattern with SCAN + UNLINK in batches, or FLUSHDB) and `cloudfront_invalidate`
//! (CreateInvalidation with a caller reference fixed per run and step).

use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
use redis::aio::MultiplexedConnection;

use super::{aws_error, idempotency_token, target_section};
use crate::clients::redis as redis_client;
use crate::core::model::CacheScope;
use crate::core::model::{RegionName, SecretRef};
use crate::probe::redact_url;
use crate::runbook::{Applied, Check, Step, StepCtx, StepError, Verify};

/// Keys per SCAN round: large enough to finish a big cache in few round trips, small
/// enough that each UNLINK stays short for a server that keeps serving.
const BATCH: u32 = 500;

/// Deletes a Redis cache's keys.
///
/// Guarantees: UNLINK (freed in the background, so the server does not stall) in
/// batches of at most 500 keys; deleting is idempotent, so a repeat is harmless.
/// `verify` reports keys matching again after the pass as written since (the
/// application repopulates its cache), instead of waiting for a live cache to be empty.
/// Errors: retryable when Redis cannot be reached; fatal on authentication or
/// permission errors.
pub struct RedisInvalidate {
    url: String,
    password: Option<SecretRef>,
    ca_file: Option<PathBuf>,
    scope: CacheScope,
    what: String,
    /// Keys deleted by this instance's `apply`, once it finished a pass.
    deleted: Mutex<Option<u64>>,
}

impl RedisInvalidate {
    pub fn new(
        url: &str,
        password: Option<SecretRef>,
        ca_file: Option<PathBuf>,
        scope: CacheScope,
        region: RegionName,
    ) -> RedisInvalidate {
        let what = match &scope {
            CacheScope::Pattern(p) => format!(
                "keys matching `{p}` in Redis {} ({region})",
                redact_url(url)
            ),
            CacheScope::FlushDb => format!("Redis database {} ({region})", redact_url(url)),
        };
        RedisInvalidate {
            url: url.to_string(),
            password,
            ca_file,
            scope,
            what,
            deleted: Mutex::new(None),
        }
    }

    async fn connect(&self, ctx: &StepCtx) -> Result<MultiplexedConnection, StepError> {
        redis_client::connect(
            &self.url,
            self.password.as_ref(),
            self.ca_file.as_deref(),
            super::connect_bound(ctx.deadline),
        )
        .await
        .map_err(|e| match e {
            redis_client::RedisError::Secret { .. }
            | redis_client::RedisError::Tls { .. }
            | redis_client::RedisError::Handshake { .. } => StepError::fatal(e.to_string()),
            _ => StepError::retryable(format!("{}: {e}", self.what)),
        })
    }

    fn query_error(&self, e: redis::RedisError) -> StepError {
        let msg = format!("{}: {e}", self.what);
        let code = e.code().unwrap_or("");
        if matches!(code, "NOAUTH" | "WRONGPASS" | "NOPERM") {
            StepError::fatal(format!(
                "{msg}: check the target's password and the user's ACL"
            ))
        } else if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
            StepError::retryable(msg)
        } else {
            StepError::fatal(msg)
        }
    }

    /// How many keys are in scope now: for a pattern, whether any matches (the scan
    /// stops at the first); for FLUSHDB, DBSIZE.
    async fn remaining(&self, conn: &mut MultiplexedConnection) -> Result<u64, StepError> {
        match &self.scope {
            CacheScope::FlushDb => redis::cmd("DBSIZE")
                .query_async(conn)
                .await
                .map_err(|e| self.query_error(e)),
            CacheScope::Pattern(p) => {
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(p)
                        .arg("COUNT")
                        .arg(BATCH)
                        .query_async(conn)
                        .await
                        .map_err(|e| self.query_error(e))?;
                    if !keys.is_empty() {
                        return Ok(keys.len() as u64);
                    }
                    if next == 0 {
                        return Ok(0);
                    }
                    cursor = next;
                }
            }
        }
    }
}

#[async_trait]
impl Step for RedisInvalidate {
    async fn check(&self, ctx: &StepCtx) -> Result<Check, StepError> {
        let mut conn = self.connect(ctx).await?;
        Ok(match self.remaining(&mut conn).await? {
            0 => Check::Done(format!("no key in scope: {} is empty", self.what)),
            _ => Check::NotDone(format!("{}: keys present", self.what)),
        })
    }

    async fn apply(&self, ctx: &StepCtx) -> Result<Applied, StepError> {
        let mut conn = self.connect(ctx).await?;
        let deleted: u64 = match &self.scope {
            CacheScope::FlushDb => {
                let before: u64 = self.remaining(&mut conn).await?;
                let () = redis::cmd("FLUSHDB")
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| self.query_error(e))?;
                before
            }
            CacheScope::Pattern(p) => {
                let mut cursor: u64 = 0;
                let mut deleted = 0u64;
                loop {
                    if ctx.cancel.is_cancelled() {
                        return Err(StepError::retryable(format!(
                            "{}: stopped after deleting {deleted} keys (shutting down)",
                            self.what
                        )));
                    }
                    let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(p)
                        .arg("COUNT")
                        .arg(BATCH)
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| self.query_error(e))?;
                    if !keys.is_empty() {
                        let n: u64 = redis::cmd("UNLINK")
                            .arg(&keys)
                            .query_async(&mut conn)
                            .await
                            .map_err(|e| self.query_error(e))?;
                        deleted += n;
                    }
                    if next == 0 {
                        break deleted;
                    }
                    cursor = next;
                }
            }
        };
        if let Ok(mut d) = self.deleted.lock() {
            *d = Some(deleted);
        }
        let how = match self.scope {
            CacheScope::FlushDb => "FLUSHDB",
            CacheScope::Pattern(_) => "SCAN + UNLINK",
        };
        Ok(Applied::new(format!(
            "deleted {deleted} key(s): {} ({how})",
            self.what
        )))
    }

    async fn verify(&self, ctx: &StepCtx) -> Result<Verify, StepError> {
        let mut conn = self.connect(ctx).await?;
        let now = self.remaining(&mut conn).await?;
        let deleted = self.deleted.lock().ok().and_then(|d| *d);
        Ok(match (now, deleted) {
            (0, Some(d)) => Verify::Done(format!("deleted {d} key(s); none left: {}", self.what)),
            (0, None) => Verify::Done(format!("no key left: {}", self.what)),
            (_, Some(d)) => Verify::Done(format!(
                "deleted {d} key(s) in one full pass; keys in scope again now were written since (the application repopulates its cache): {}",
                self.what
            )),
            (_, None) => Verify::NotYet(format!("{}: keys still present", self.what)),
        })
    }
}

/// Invalidates paths in a CloudFront distribution.
///
/// Guarantees: the caller reference is fixed per run and step, so CloudFront answers a
/// repeated CreateInvalidation (a retry, or a resume after a crash) with the
/// invalidation it already created instead of a second one. `check` therefore says
/// "not done" without looking: applying again is the idempotent way to find it.
/// Errors: fatal when the distribution does not exist or the call is denied.
pub struct CloudfrontInvalidate {
    client: aws_sdk_cloudfront::Client,
    distribution_id: String,
    paths: Vec<String>,
    what: String,
    section: String,
    /// The invalidation `apply` created (or found), which `verify` polls.
    id: Mutex<Option<String>>,
}

impl CloudfrontInvalidate {
    pub fn new(
        client: aws_sdk_cloudfront::Client,
        distribution_id: &str,
        paths: Vec<String>,
        target: &str,
    ) -> CloudfrontInvalidate {
        CloudfrontInvalidate {
            client,
            distribution_id: distribution_id.to_string(),
            what: format!("CloudFront distribution `{distribution_id}`"),
            paths,
            section: target_section(target),
            id: Mutex::new(None),
        }
    }

    /// The request, as data: the caller reference and the paths.
    pub fn batch(&self, ctx: &StepCtx) -> Result<InvalidationBatch, StepError> {
        let build = |e: aws_sdk_cloudfront::error::BuildError| {
            StepError::fatal(format!("build the invalidation of {}: {e}", self.what))
        };
        InvalidationBatch::builder()
            .paths(
                Paths::builder()
                    .quantity(i32::try_from(self.paths.len()).unwrap_or(i32::MAX))
                    .set_items(Some(self.paths.clone()))
                    .build()
                    .map_err(build)?,
            )
            .caller_reference(idempotency_token(&ctx.run_id.0, &ctx.step))
            .build()
            .map_err(build)
    }
}

#[async_trait]
impl Step for CloudfrontInvalidate {
    async fn check(&self, _ctx: &StepCtx) -> Result<Check, StepError> {
        Ok(Check::NotDone(format!(
            "invalidations are idempotent by caller reference: applying again returns this run's invalidation of {}",
            self.what
        )))
    }

    async fn apply(&self, ctx: &StepCtx) -> Result<Applied, StepError> {
        let out = self
            .client
            .create_invalidation()
            .distribution_id(&self.distribution_id)
            .invalidation_batch(self.batch(ctx)?)
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    "cloudfront:CreateInvalidation",
                    &self.what,
                    &self.section,
                    &e,
                )
            })?;
        let inv = out.invalidation().ok_or_else(|| {
            StepError::retryable(format!(
                "CreateInvalidation on {} returned no invalidation",
                self.what
            ))
        })?;
        if let Ok(mut id) = self.id.lock() {
            *id = Some(inv.id().to_string());
        }
        Ok(Applied::new(format!(
            "invalidation {} of {} in {} ({})",
            inv.id(),
            self.paths.join(", "),
            self.what,
            inv.status()
        )))
    }

    async fn verify(&self, _ctx: &StepCtx) -> Result<Verify, StepError> {
        let known = self.id.lock().ok().and_then(|i| i.clone());
        // `apply` records the id; `check` never reports this step done, so `verify`
        // always follows an `apply` of this instance.
        let Some(id) = known else {
            return Ok(Verify::NotYet(format!(
                "no invalidation of {} created yet",
                self.what
            )));
        };
        let out = self
            .client
            .get_invalidation()
            .distribution_id(&self.distribution_id)
            .id(&id)
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    "cloudfront:GetInvalidation",
                    &format!("invalidation `{id}` of {}", self.what),
                    &self.section,
                    &e,
                )
            })?;
        let status = out
            .invalidation()
            .map(|i| i.status().to_string())
            .unwrap_or_default();
        // CloudFront says `Completed`; some emulators say `COMPLETED`.
        Ok(if status.eq_ignore_ascii_case("completed") {
            Verify::Done(format!("invalidation {id} of {} is Completed", self.what))
        } else {
            Verify::NotYet(format!("invalidation {id} of {} is {status}", self.what))
        })
    }
}
