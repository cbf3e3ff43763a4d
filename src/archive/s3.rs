//! Objects in the reports bucket: written and read back to be sure they arrived whole.

use crate::clients::aws::describe_error;

/// Puts `body` at `key`, then reads it back and compares every byte: an upload is only
/// counted once the bucket returns exactly what was sent.
///
/// Errors: the put or the get failed (the message names the bucket and key and what
/// AWS said), or the object read back differs.
pub async fn put_verified(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    content_type: &str,
) -> Result<(), String> {
    let len = body.len();
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(body.clone().into())
        .send()
        .await
        .map_err(|e| format!("upload s3://{bucket}/{key}: {}", describe_error(&e)))?;
    let back = get(s3, bucket, key).await?;
    if back != body {
        return Err(format!(
            "s3://{bucket}/{key} read back {} bytes that differ from the {len} uploaded",
            back.len()
        ));
    }
    Ok(())
}

/// Reads an object whole.
pub async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("read s3://{bucket}/{key}: {}", describe_error(&e)))?;
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| format!("read s3://{bucket}/{key}: {e}"))?;
    Ok(bytes.into_bytes().to_vec())
}

/// `s3://bucket/key` split in two.
pub fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("`{url}` is not an s3:// URL"))?;
    match rest.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b.to_string(), k.to_string())),
        _ => Err(format!(
            "`{url}` names no object: write s3://bucket/path/to/backup.db"
        )),
    }
}
