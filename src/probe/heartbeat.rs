//! `heartbeat` probes: the workers are alive. Either their newest heartbeat is younger
//! than `max_age` (read from an HTTP endpoint's JSON, a Redis key, or an S3 object's
//! LastModified), or their Auto Scaling group / ECS service runs at least `min_count`
//! instances or tasks.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::{Facts, Failure, Probe, http, redact_url, redis, snippet};
use crate::clients::aws::describe_error;
use crate::core::model::SecretRef;
use crate::core::time::fmt_duration;

/// Where the heartbeat comes from.
pub enum Source {
    /// A JSON document whose field (dotted path) holds the newest heartbeat: unix
    /// seconds (a float is fine, as a number or a string) or an RFC 3339 time.
    Http {
        client: reqwest::Client,
        url: String,
        field: String,
    },
    /// A key holding unix seconds.
    Redis {
        url: String,
        password: Option<SecretRef>,
        ca_file: Option<std::path::PathBuf>,
        key: String,
        timeout: Duration,
    },
    /// An object whose LastModified is the heartbeat.
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        key: String,
    },
    /// InService and Healthy instances of an Auto Scaling group.
    Asg {
        client: aws_sdk_autoscaling::Client,
        group: String,
    },
    /// Running tasks of an ECS service.
    Ecs {
        client: aws_sdk_ecs::Client,
        cluster: String,
        service: String,
    },
}

/// What counts as alive.
#[derive(Clone, Copy, Debug)]
pub enum Alive {
    /// The newest heartbeat is at most this old.
    MaxAge(Duration),
    /// At least this many instances or tasks.
    MinCount(u32),
}

pub struct HeartbeatProbe {
    source: Source,
    alive: Alive,
}

impl HeartbeatProbe {
    pub fn new(source: Source, alive: Alive) -> HeartbeatProbe {
        HeartbeatProbe { source, alive }
    }

    /// The newest heartbeat, as a time.
    async fn newest(&self) -> Result<SystemTime, Failure> {
        match &self.source {
            Source::Http { client, url, field } => {
                let (status, body) = http::get(client, url).await?;
                if !(200..300).contains(&status) {
                    return Err(Failure::new(format!(
                        "HTTP {status}: {}",
                        snippet(&body, 120)
                    )));
                }
                let doc: serde_json::Value = serde_json::from_str(&body).map_err(|e| {
                    Failure::new(format!(
                        "the body is not JSON ({e}): {}",
                        snippet(&body, 80)
                    ))
                })?;
                let v = http::lookup(&doc, field)
                    .ok_or_else(|| Failure::new(format!("the JSON has no field `{field}`")))?;
                parse_time(&http::render(v))
                    .map_err(|e| Failure::new(format!("field `{field}`: {e}")))
            }
            Source::Redis {
                url,
                password,
                ca_file,
                key,
                timeout,
            } => {
                let mut conn =
                    redis::connect(url, password.as_ref(), ca_file.as_deref(), *timeout).await?;
                let v: Option<String> =
                    ::redis::cmd("GET")
                        .arg(key)
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| Failure::new(format!("GET {key} failed: {e}")))?;
                let v = v.ok_or_else(|| {
                    Failure::new(format!("key {key} does not exist (no heartbeat yet?)"))
                })?;
                parse_time(&v).map_err(|e| Failure::new(format!("key {key}: {e}")))
            }
            Source::S3 {
                client,
                bucket,
                key,
            } => {
                let head = client
                    .head_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| {
                        Failure::new(format!("HeadObject {key}: {}", describe_error(&e)))
                    })?;
                let modified = head.last_modified().ok_or_else(|| {
                    Failure::new(format!("HeadObject {key}: no LastModified in the answer"))
                })?;
                SystemTime::try_from(*modified)
                    .map_err(|e| Failure::new(format!("HeadObject {key}: LastModified {e}")))
            }
            Source::Asg { .. } | Source::Ecs { .. } => {
                Err(Failure::new("a group has no heartbeat time"))
            }
        }
    }

    /// (live count, desired count) of a group.
    async fn count(&self) -> Result<(u32, Option<i32>), Failure> {
        match &self.source {
            Source::Asg { client, group } => {
                let out = client
                    .describe_auto_scaling_groups()
                    .auto_scaling_group_names(group)
                    .send()
                    .await
                    .map_err(|e| {
                        Failure::new(format!("DescribeAutoScalingGroups: {}", describe_error(&e)))
                    })?;
                let g = out
                    .auto_scaling_groups()
                    .first()
                    .ok_or_else(|| Failure::new("no such Auto Scaling group"))?;
                let live = g
                    .instances()
                    .iter()
                    .filter(|i| {
                        i.lifecycle_state()
                            .is_some_and(|s| s.as_str() == "InService")
                            && i.health_status() == Some("Healthy")
                    })
                    .count();
                Ok((
                    u32::try_from(live).unwrap_or(u32::MAX),
                    g.desired_capacity(),
                ))
            }
            Source::Ecs {
                client,
                cluster,
                service,
            } => {
                let out = client
                    .describe_services()
                    .cluster(cluster)
                    .services(service)
                    .send()
                    .await
                    .map_err(|e| {
                        Failure::new(format!("DescribeServices: {}", describe_error(&e)))
                    })?;
                let Some(s) = out.services().first() else {
                    let why = out
                        .failures()
                        .first()
                        .and_then(|f| f.reason())
                        .unwrap_or("not found");
                    return Err(Failure::new(format!("no such ECS service ({why})")));
                };
                let running = u32::try_from(s.running_count()).unwrap_or(0);
                Ok((running, Some(s.desired_count())))
            }
            _ => Err(Failure::new("not a group")),
        }
    }
}

#[async_trait]
impl Probe for HeartbeatProbe {
    fn endpoint(&self) -> String {
        match &self.source {
            Source::Http { url, field, .. } => {
                format!("heartbeat GET {} field {field}", redact_url(url))
            }
            Source::Redis { url, key, .. } => {
                format!("heartbeat redis {} key {key}", redact_url(url))
            }
            Source::S3 { bucket, key, .. } => format!("heartbeat s3://{bucket}/{key}"),
            Source::Asg { group, .. } => format!("heartbeat asg {group}"),
            Source::Ecs {
                cluster, service, ..
            } => format!("heartbeat ecs {cluster}/{service}"),
        }
    }

    async fn check(&self) -> Result<Facts, Failure> {
        match self.alive {
            Alive::MaxAge(max_age) => {
                let newest = self.newest().await?;
                judge_age(newest, SystemTime::now(), max_age)
            }
            Alive::MinCount(min) => {
                let (live, desired) = self.count().await?;
                let noun = match self.source {
                    Source::Ecs { .. } => "running",
                    _ => "in service",
                };
                let desired = desired
                    .map(|d| format!(" (desired {d})"))
                    .unwrap_or_default();
                if live >= min {
                    Ok(Facts::detail(format!("{noun} {live} ≥ {min}{desired}")))
                } else {
                    Err(Failure::new(format!(
                        "{noun} {live}, fewer than {min}{desired}"
                    )))
                }
            }
        }
    }
}

/// Alive iff the heartbeat is at most `max_age` old. A heartbeat from further in the
/// future than `max_age` is not trusted: it is clock skew, or milliseconds where seconds
/// were meant, and taking it at face value would read "alive" forever.
fn judge_age(newest: SystemTime, now: SystemTime, max_age: Duration) -> Result<Facts, Failure> {
    match now.duration_since(newest) {
        Ok(age) if age <= max_age => Ok(Facts::detail(format!(
            "last heartbeat {} ago",
            fmt_age(age)
        ))),
        Ok(age) => Err(Failure::new(format!(
            "last heartbeat {} ago, older than {}",
            fmt_age(age),
            fmt_duration(max_age)
        ))),
        Err(ahead) if ahead.duration() <= max_age => Ok(Facts::detail(format!(
            "last heartbeat {} in the future (clocks differ)",
            fmt_age(ahead.duration())
        ))),
        Err(ahead) => Err(Failure::new(format!(
            "last heartbeat is {} in the future; clock skew, or milliseconds instead of seconds?",
            fmt_age(ahead.duration())
        ))),
    }
}

fn fmt_age(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        fmt_duration(Duration::from_secs(d.as_secs()))
    }
}

/// Unix seconds (integer or float) or an RFC 3339 time.
fn parse_time(s: &str) -> Result<SystemTime, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("{s} is not a time"));
        }
        // Checked twice: a figure beyond Duration's range, then beyond SystemTime's.
        return Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|d| UNIX_EPOCH.checked_add(d))
            .ok_or_else(|| format!("{s} is too far in the future to be a time"));
    }
    humantime::parse_rfc3339_weak(s)
        .map_err(|_| format!("{s:?} is neither unix seconds nor an RFC 3339 time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_are_unix_seconds_or_rfc3339() {
        let t = |s| parse_time(s).map(|t| t.duration_since(UNIX_EPOCH).expect("after epoch"));
        assert_eq!(t("1700000000"), Ok(Duration::from_secs(1_700_000_000)));
        assert_eq!(
            t("1700000000.25"),
            Ok(Duration::from_millis(1_700_000_000_250))
        );
        assert_eq!(
            t("2023-11-14T22:13:20Z"),
            Ok(Duration::from_secs(1_700_000_000))
        );
        assert!(t("yesterday").is_err());
    }

    #[test]
    fn a_heartbeat_beyond_what_a_clock_can_hold_is_an_error_not_a_panic() {
        for huge in ["1e19", "1e300", "18446744073709551616"] {
            let e = parse_time(huge).expect_err(huge);
            assert!(e.contains("too far in the future"), "{huge}: {e}");
        }
        assert!(parse_time("inf").is_err());
        assert!(parse_time("NaN").is_err());
    }

    #[test]
    fn a_heartbeat_far_in_the_future_is_not_taken_as_alive() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let max = Duration::from_secs(5);
        assert!(judge_age(now - Duration::from_secs(3), now, max).is_ok());
        let old = judge_age(now - Duration::from_secs(9), now, max).expect_err("stale");
        assert_eq!(old.what, "last heartbeat 9.0s ago, older than 5s");
        assert!(judge_age(now + Duration::from_secs(1), now, max).is_ok());
        // Milliseconds written where seconds were meant land far in the future.
        let ms = UNIX_EPOCH + Duration::from_secs(1_700_000_000_000);
        assert!(judge_age(ms, now, max).is_err());
    }
}
