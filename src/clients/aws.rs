//! AWS SDK clients per region, from the standard configuration chain plus the policy's
//! `[aws]` settings (a profile, or an `endpoint_url` such as a local moto server).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::core::model::AwsSettings;

/// A factory of AWS clients that share one loaded configuration (credentials are resolved
/// once and cached by the SDK).
#[derive(Clone, Debug)]
pub struct AwsClients {
    base: SdkConfig,
    /// Region for global services (Route 53, CloudFront).
    global_region: String,
}

impl AwsClients {
    /// Loads the standard chain (environment, profile, instance role…) with the policy's
    /// overrides. Calls time out after `call_timeout`, so a hung endpoint cannot stall a
    /// probe or step past its own deadline.
    pub async fn from_settings(settings: &AwsSettings, call_timeout: Duration) -> AwsClients {
        let global_region = settings
            .region
            .clone()
            .unwrap_or_else(|| "us-east-1".to_string());
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(global_region.clone()))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(call_timeout)
                    .build(),
            );
        if let Some(p) = &settings.profile {
            loader = loader.profile_name(p);
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        AwsClients {
            base: loader.load().await,
            global_region,
        }
    }

    /// Clients for a local emulator with fixed test credentials and retries off, so an
    /// API the emulator lacks fails at once instead of after backoff. Calls may take 30 s:
    /// moto loads its EC2 image catalogue on the first Auto Scaling call, which on a
    /// loaded two-core host took longer than 10 s and failed sandboxes at start.
    pub fn for_emulator(endpoint_url: &str) -> AwsClients {
        let creds = aws_sdk_sns::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "lifeboat-emulator",
        );
        let base = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint_url)
            .credentials_provider(aws_sdk_sns::config::SharedCredentialsProvider::new(creds))
            .retry_config(RetryConfig::disabled())
            // moto reads its EC2 image catalogue on the first Auto Scaling call; on a
            // loaded 2-core machine that took over 10 s and failed sandbox starts.
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            )
            .build();
        AwsClients {
            base,
            global_region: "us-east-1".to_string(),
        }
    }

    /// The shared configuration with `region` set.
    pub fn config(&self, region: &str) -> SdkConfig {
        self.base
            .to_builder()
            .region(Region::new(region.to_string()))
            .build()
    }

    /// The region of global services, and of the reports bucket.
    pub fn global_region(&self) -> String {
        self.global_region.clone()
    }

    /// The custom endpoint calls go to, when there is one (an emulator).
    pub fn endpoint_url(&self) -> Option<&str> {
        self.base.endpoint_url()
    }

    /// Whether calls go to a custom endpoint (an emulator) rather than AWS.
    pub fn custom_endpoint(&self) -> bool {
        self.base.endpoint_url().is_some()
    }

    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        // Emulators serve buckets by path, not by virtual host.
        let conf = aws_sdk_s3::config::Builder::from(&self.config(region))
            .force_path_style(self.custom_endpoint())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    pub fn rds(&self, region: &str) -> aws_sdk_rds::Client {
        aws_sdk_rds::Client::new(&self.config(region))
    }

    /// CloudWatch, where RDS publishes a read replica's `ReplicaLag`.
    pub fn cloudwatch(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.config(region))
    }

    pub fn autoscaling(&self, region: &str) -> aws_sdk_autoscaling::Client {
        aws_sdk_autoscaling::Client::new(&self.config(region))
    }

    pub fn ecs(&self, region: &str) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.config(region))
    }

    pub fn sns(&self, region: &str) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.config(region))
    }

    /// Route 53 is global; its control plane lives in us-east-1.
    pub fn route53(&self) -> aws_sdk_route53::Client {
        aws_sdk_route53::Client::new(&self.config(&self.global_region))
    }

    /// CloudFront is global.
    pub fn cloudfront(&self) -> aws_sdk_cloudfront::Client {
        aws_sdk_cloudfront::Client::new(&self.config(&self.global_region))
    }
}

/// An SDK error in one line for people: the service's error code and message when there
/// is one, the transport failure otherwise. (Every SDK crate shares these error types.)
pub fn describe_error<E>(e: &aws_sdk_s3::error::SdkError<E>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_s3::error::SdkError;
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let status = se.raw().status().as_u16();
            match (err.code(), err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m} (HTTP {status})"),
                (Some(c), None) => format!("{c} (HTTP {status})"),
                _ => format!("HTTP {status}: {err}"),
            }
        }
        SdkError::TimeoutError(_) => "timed out".to_string(),
        SdkError::DispatchFailure(d) if d.is_timeout() => "timed out connecting".to_string(),
        SdkError::DispatchFailure(d) if d.is_io() => "could not connect (I/O error)".to_string(),
        other => format!("{}", aws_sdk_s3::error::DisplayErrorContext(other)),
    }
}

/// Whether an SDK error is worth retrying: throttling, timeouts, 5xx, connection failures.
pub fn is_retryable<E>(e: &aws_sdk_s3::error::SdkError<E>) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    use aws_sdk_s3::error::SdkError;
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("");
            let status = se.raw().status().as_u16();
            status >= 500
                || status == 429
                || code.contains("Throttl")
                || matches!(
                    code,
                    "RequestLimitExceeded" | "TooManyRequestsException" | "PriorRequestNotComplete"
                )
        }
        _ => false,
    }
}
