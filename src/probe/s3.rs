//! `s3` probes: a canary round trip — put a small uniquely named object, read it back
//! and compare, delete it. A failure names the bucket, the key and the step.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;

use super::{Facts, Failure, Probe};
use crate::clients::aws::describe_error;

pub struct S3Canary {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    region: String,
}

impl S3Canary {
    /// `region` is the policy's region name, which goes into the canary's key so that
    /// replicated buckets do not trip over each other's canaries.
    pub fn new(client: aws_sdk_s3::Client, bucket: &str, prefix: &str, region: &str) -> S3Canary {
        S3Canary {
            client,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            region: region.to_string(),
        }
    }

    fn key(&self) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        format!(
            "{}canary-{}-{now}-{:08x}",
            self.prefix,
            self.region,
            fastrand::u32(..)
        )
    }
}

#[async_trait]
impl Probe for S3Canary {
    fn endpoint(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    async fn check(&self) -> Result<Facts, Failure> {
        let key = self.key();
        let body = format!("lifeboat canary {key}").into_bytes();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .map_err(|e| Failure::new(format!("PutObject {key}: {}", describe_error(&e))))?;
        let read = self.read_back(&key, &body).await;
        // Delete even when the read failed, so a flaky read does not leave litter.
        let deleted = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await;
        read?;
        deleted.map_err(|e| Failure::new(format!("DeleteObject {key}: {}", describe_error(&e))))?;
        Ok(Facts::detail(format!(
            "put, read back, deleted {} bytes",
            body.len()
        )))
    }
}

impl S3Canary {
    async fn read_back(&self, key: &str, expected: &[u8]) -> Result<(), Failure> {
        let got = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| Failure::new(format!("GetObject {key}: {}", describe_error(&e))))?;
        let bytes = got
            .body
            .collect()
            .await
            .map_err(|e| Failure::new(format!("GetObject {key}: reading the body: {e}")))?
            .into_bytes();
        if bytes.as_ref() != expected {
            return Err(Failure::new(format!(
                "GetObject {key}: read back {} bytes that differ from the {} put",
                bytes.len(),
                expected.len()
            )));
        }
        Ok(())
    }
}
