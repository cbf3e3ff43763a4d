//! How adapters turn AWS and PostgreSQL errors into step errors: the class the executor
//! acts on (retry, stop, ask for approval) and a message that names the resource and
//! says what to fix.

use crate::clients::aws::{describe_error, is_retryable};
use crate::clients::pg::PgError;
use crate::runbook::StepError;

/// An AWS SDK error as a step error.
///
/// `action` is the IAM action called (`rds:PromoteReadReplica`), `subject` the resource
/// in words (``RDS instance `x` in us-west-2``), `section` where the policy configures
/// it (`[targets.db]`). Throttling, timeouts, 5xx and connection failures are retryable;
/// access denied, not found and invalid state are fatal, each with what to do.
pub(crate) fn aws_error<E>(
    action: &str,
    subject: &str,
    section: &str,
    e: &aws_sdk_s3::error::SdkError<E>,
) -> StepError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let call = action.split_once(':').map(|(_, c)| c).unwrap_or(action);
    let said = describe_error(e);
    let code = match e {
        aws_sdk_s3::error::SdkError::ServiceError(se) => se.err().code().unwrap_or(""),
        _ => "",
    };
    // A concurrent change (Route 53's health check version, a modification already
    // under way): reading again and retrying is the fix.
    let conflict = code.contains("VersionMismatch") || code.contains("ConcurrentModification");
    if is_retryable(e) || conflict {
        return StepError::retryable(format!("{call} on {subject}: {said}"));
    }
    match classify_code(code) {
        Code::Denied => StepError::fatal(format!(
            "{call} on {subject} was denied ({said}): grant {action} to the lifeboat role (terraform/iam.tf)"
        )),
        Code::NotFound => StepError::fatal(format!(
            "{subject} does not exist ({said}): check {section} in the policy"
        )),
        Code::InvalidState => StepError::fatal(format!(
            "{call} on {subject} was refused in its current state ({said}): look at it in the AWS console, fix it, then start the run again"
        )),
        Code::Other => StepError::fatal(format!("{call} on {subject} failed: {said}")),
    }
}

/// Whether AWS refused a call because of the resource's state (`Invalid…State…`).
pub(crate) fn is_invalid_state<E>(e: &aws_sdk_s3::error::SdkError<E>) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(se) => {
            classify_code(se.err().code().unwrap_or("")) == Code::InvalidState
        }
        _ => false,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Code {
    Denied,
    NotFound,
    InvalidState,
    Other,
}

/// What an AWS error code means for the operator. Codes vary by service
/// (`DBInstanceNotFound`, `NoSuchHostedZone`, `ClusterNotFoundException`…), so this
/// matches their common shapes.
fn classify_code(code: &str) -> Code {
    let lower = code.to_ascii_lowercase();
    if lower.contains("accessdenied")
        || lower.contains("unauthorized")
        || lower == "authorizationerror"
        || lower == "authfailure"
    {
        Code::Denied
    } else if lower.contains("notfound") || lower.starts_with("nosuch") {
        Code::NotFound
    } else if lower.starts_with("invalid") && lower.contains("state") {
        Code::InvalidState
    } else {
        Code::Other
    }
}

/// A PostgreSQL connection error as a step error: unreachable, timed out, or a server
/// that is starting or shutting down is retryable; authentication and a missing
/// database are fatal.
pub(crate) fn pg_connect_error(e: &PgError, what: &str) -> StepError {
    match e {
        // Configuration, or a server lifeboat must not trust: retrying changes nothing.
        PgError::Secret { .. } | PgError::Tls { .. } | PgError::Handshake { .. } => {
            StepError::fatal(format!("{what}: {e}"))
        }
        PgError::Connect {
            sqlstate: Some(code),
            ..
        } if code.starts_with("28") || code == "3D000" => StepError::fatal(format!(
            "{what}: {e}: check the target's user, password and database in the policy"
        )),
        _ => StepError::retryable(format!("{what}: {e}")),
    }
}

/// A failed query as a step error: permission errors (SQLSTATE class 42501) and other
/// refusals by the server are fatal; a dropped connection is retryable.
pub(crate) fn pg_query_error(e: &tokio_postgres::Error, what: &str) -> StepError {
    let said = crate::clients::pg::describe(e);
    match e.code().map(|c| c.code()) {
        Some("42501") => StepError::fatal(format!(
            "{what}: {said}: grant the privileges lifeboat needs (see ARCHITECTURE.md, `src/action/`)"
        )),
        // Admin shutdown, crash shutdown, cannot connect now, serialization: transient.
        Some(c) if c.starts_with("57") || c.starts_with("08") || c.starts_with("40") => {
            StepError::retryable(format!("{what}: {said}"))
        }
        Some(_) => StepError::fatal(format!("{what}: {said}")),
        None => StepError::retryable(format!("{what}: {said}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_of_every_service_map_to_what_the_operator_must_do() {
        for c in [
            "AccessDenied",
            "AccessDeniedException",
            "AuthorizationError",
            "UnauthorizedOperation",
        ] {
            assert_eq!(classify_code(c), Code::Denied, "{c}");
        }
        for c in [
            "DBInstanceNotFound",
            "GlobalClusterNotFoundFault",
            "NoSuchHostedZone",
            "NoSuchHealthCheck",
            "ClusterNotFoundException",
            "ServiceNotFoundException",
            "NoSuchBucket",
            "NoSuchDistribution",
            "NotFound",
        ] {
            assert_eq!(classify_code(c), Code::NotFound, "{c}");
        }
        for c in [
            "InvalidDBInstanceState",
            "InvalidGlobalClusterStateFault",
            "InvalidDBClusterStateFault",
        ] {
            assert_eq!(classify_code(c), Code::InvalidState, "{c}");
        }
        assert_eq!(classify_code("ValidationError"), Code::Other);
    }
}
