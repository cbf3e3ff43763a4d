//! `s3_sync_check`: before a failback, compare the objects under a prefix in the bucket
//! of the region being left (the source, which served meanwhile) and the region being
//! returned to (the destination), by key and ETag; report what is missing or differs,
//! or copy it across when the policy says `copy_missing = true`.
//!
//! Bucket replication is not trusted to have done it: it can lag, fail per object, or
//! (in emulators) do nothing, and a failback onto stale storage loses data.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{aws_error, some_of, target_section};
use crate::core::binding::S3Bucket;
use crate::runbook::{Applied, Check, Step, StepCtx, StepError, Verify};

/// What differs between the two listings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// In the source, absent from the destination.
    pub missing: Vec<String>,
    /// In both, with different ETags.
    pub different: Vec<String>,
    /// Only in the destination (reported, never deleted).
    pub extra: Vec<String>,
}

impl Diff {
    /// Keys the destination must receive.
    pub fn to_copy(&self) -> Vec<String> {
        self.missing
            .iter()
            .chain(&self.different)
            .cloned()
            .collect()
    }
}

/// Compares two listings (key → ETag). Pure, so the rule is tested without S3.
///
/// ETags are compared as S3 gives them: equal for the same single-part upload or copy.
/// A multipart upload's ETag depends on its part size, so the same bytes uploaded in
/// other parts differ; that case is reported (and, with `copy_missing`, copied), which
/// errs on the side of the data.
pub fn diff(source: &BTreeMap<String, String>, dest: &BTreeMap<String, String>) -> Diff {
    let mut d = Diff::default();
    for (k, etag) in source {
        match dest.get(k) {
            None => d.missing.push(k.clone()),
            Some(e) if e != etag => d.different.push(k.clone()),
            Some(_) => {}
        }
    }
    d.extra = dest
        .keys()
        .filter(|k| !source.contains_key(*k))
        .cloned()
        .collect();
    d
}

/// Checks (and optionally repairs) that the destination bucket holds what the source
/// holds under a prefix.
///
/// Guarantees: never deletes or overwrites anything but keys that are missing or differ
/// in the destination; copies keep the source's metadata and tags (CopyObject's
/// defaults).
/// Errors: fatal when differences remain and the policy does not copy them (the message
/// names a few keys and the count: the failback must not proceed onto stale storage),
/// when a bucket does not exist, or a call is denied.
pub struct SyncCheck {
    source_client: aws_sdk_s3::Client,
    dest_client: aws_sdk_s3::Client,
    source: S3Bucket,
    dest: S3Bucket,
    prefix: String,
    copy_missing: bool,
    section: String,
}

impl SyncCheck {
    pub fn new(
        source_client: aws_sdk_s3::Client,
        dest_client: aws_sdk_s3::Client,
        source: S3Bucket,
        dest: S3Bucket,
        prefix: String,
        copy_missing: bool,
        target: &str,
    ) -> SyncCheck {
        SyncCheck {
            source_client,
            dest_client,
            source,
            dest,
            prefix,
            copy_missing,
            section: target_section(target),
        }
    }

    fn what(b: &S3Bucket) -> String {
        format!("bucket `{}` ({})", b.bucket, b.region)
    }

    async fn list(
        &self,
        client: &aws_sdk_s3::Client,
        b: &S3Bucket,
    ) -> Result<BTreeMap<String, String>, StepError> {
        let mut out = BTreeMap::new();
        let mut pages = client
            .list_objects_v2()
            .bucket(&b.bucket)
            .prefix(&self.prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| aws_error("s3:ListBucket", &Self::what(b), &self.section, &e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                if !b.canary_prefix.is_empty() && key.starts_with(&b.canary_prefix) {
                    continue;
                }
                out.insert(key.to_string(), o.e_tag().unwrap_or_default().to_string());
            }
        }
        Ok(out)
    }

    async fn compare(&self) -> Result<Diff, StepError> {
        let src = self.list(&self.source_client, &self.source).await?;
        let dst = self.list(&self.dest_client, &self.dest).await?;
        Ok(diff(&src, &dst))
    }

    fn summary(&self, d: &Diff) -> String {
        let mut parts = Vec::new();
        if !d.missing.is_empty() {
            parts.push(format!(
                "{} missing ({})",
                d.missing.len(),
                some_of(&d.missing, 5)
            ));
        }
        if !d.different.is_empty() {
            parts.push(format!(
                "{} different ({})",
                d.different.len(),
                some_of(&d.different, 5)
            ));
        }
        format!(
            "{} lacks what {} has under `{}`: {}",
            Self::what(&self.dest),
            Self::what(&self.source),
            self.prefix,
            parts.join("; ")
        )
    }

    fn in_sync(&self, d: &Diff) -> String {
        let mut s = format!(
            "{} holds every object {} has under `{}` (keys and ETags)",
            Self::what(&self.dest),
            Self::what(&self.source),
            self.prefix
        );
        if !d.extra.is_empty() {
            s.push_str(&format!(
                "; {} object(s) exist only in the destination ({}), left alone",
                d.extra.len(),
                some_of(&d.extra, 5)
            ));
        }
        s
    }
}

#[async_trait]
impl Step for SyncCheck {
    async fn check(&self, _ctx: &StepCtx) -> Result<Check, StepError> {
        let d = self.compare().await?;
        Ok(if d.to_copy().is_empty() {
            Check::Done(self.in_sync(&d))
        } else {
            Check::NotDone(self.summary(&d))
        })
    }

    async fn apply(&self, ctx: &StepCtx) -> Result<Applied, StepError> {
        let d = self.compare().await?;
        let keys = d.to_copy();
        if keys.is_empty() {
            return Ok(Applied::new(self.in_sync(&d)));
        }
        if !self.copy_missing {
            return Err(StepError::fatal(format!(
                "{}. Sync them (aws s3 sync), or set copy_missing = true on the step, then start the failback again",
                self.summary(&d)
            )));
        }
        let dest = Self::what(&self.dest);
        for (i, key) in keys.iter().enumerate() {
            if ctx.cancel.is_cancelled() {
                return Err(StepError::retryable(format!(
                    "copied {i} of {} objects to {dest}; stopped (shutting down)",
                    keys.len()
                )));
            }
            self.dest_client
                .copy_object()
                .bucket(&self.dest.bucket)
                .key(key)
                .copy_source(copy_source(&self.source.bucket, key))
                .send()
                .await
                .map_err(|e| {
                    aws_error(
                        "s3:PutObject",
                        &format!("{dest}, copying `{key}` from {}", Self::what(&self.source)),
                        &self.section,
                        &e,
                    )
                })?;
        }
        Ok(Applied::new(format!(
            "copied {} object(s) from {} to {dest}: {}",
            keys.len(),
            Self::what(&self.source),
            some_of(&keys, 5)
        )))
    }

    async fn verify(&self, _ctx: &StepCtx) -> Result<Verify, StepError> {
        let d = self.compare().await?;
        Ok(if d.to_copy().is_empty() {
            Verify::Done(self.in_sync(&d))
        } else {
            Verify::NotYet(self.summary(&d))
        })
    }
}

/// `bucket/key` with the key URL-encoded, as the x-amz-copy-source header wants it.
fn copy_source(bucket: &str, key: &str) -> String {
    let mut s = format!("{bucket}/");
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                s.push(b as char)
            }
            _ => s.push_str(&format!("%{b:02X}")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(items: &[(&str, &str)]) -> BTreeMap<String, String> {
        items
            .iter()
            .map(|(k, e)| (k.to_string(), e.to_string()))
            .collect()
    }

    #[test]
    fn missing_and_changed_objects_are_found_and_extra_ones_only_reported() {
        let src = listing(&[("a", "\"1\""), ("b", "\"2\""), ("c", "\"3\"")]);
        let dst = listing(&[("a", "\"1\""), ("b", "\"9\""), ("z", "\"0\"")]);
        let d = diff(&src, &dst);
        assert_eq!(d.missing, ["c"]);
        assert_eq!(d.different, ["b"]);
        assert_eq!(d.extra, ["z"]);
        assert_eq!(d.to_copy(), ["c", "b"]);
        assert_eq!(diff(&src, &src), Diff::default());
    }

    #[test]
    fn copy_sources_encode_keys_but_keep_slashes() {
        assert_eq!(
            copy_source("bkt", "invoices/2026 11/ä.pdf"),
            "bkt/invoices/2026%2011/%C3%A4.pdf"
        );
    }
}
