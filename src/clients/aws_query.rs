//! Two AWS calls lifeboat makes without an SDK crate: STS `GetCallerIdentity` (who am
//! I) and IAM `SimulatePrincipalPolicy` (may I), both "query" APIs (a form POST, an XML
//! answer), signed with SigV4 from the same credentials the SDK clients use.
//!
//! Why not `aws-sdk-iam`: these are the only two calls, and the SDK crate would add
//! minutes to every cold build for them. The signing is `aws-sigv4`'s, which the SDK
//! itself uses.

use std::time::{Duration, SystemTime};

use aws_sdk_sns::config::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use thiserror::Error;

use super::aws::AwsClients;

#[derive(Debug, Error)]
pub enum QueryError {
    #[error("no AWS credentials: {0}")]
    Credentials(String),
    #[error("{service} at {url} did not answer: {reason}")]
    Transport {
        service: &'static str,
        url: String,
        reason: String,
    },
    /// The service answered with an error: its code (`AccessDenied`, `InvalidAction`…)
    /// and message, and the HTTP status.
    #[error("{action} at {url} failed: {code}: {message} (HTTP {status})")]
    Service {
        action: String,
        url: String,
        code: String,
        message: String,
        status: u16,
    },
    #[error("signing the request failed: {0}")]
    Signing(String),
}

/// Which endpoint and signing region a global service uses in a partition.
fn endpoint(aws: &AwsClients, service: &'static str, partition: &str) -> (String, String) {
    if let Some(url) = aws.endpoint_url() {
        return (
            url.trim_end_matches('/').to_string() + "/",
            "us-east-1".into(),
        );
    }
    let (url, region) = match (service, partition) {
        ("iam", "aws-cn") => ("https://iam.cn-north-1.amazonaws.com.cn/", "cn-north-1"),
        ("iam", "aws-us-gov") => ("https://iam.us-gov.amazonaws.com/", "us-gov-west-1"),
        ("iam", _) => ("https://iam.amazonaws.com/", "us-east-1"),
        (_, "aws-cn") => ("https://sts.cn-north-1.amazonaws.com.cn/", "cn-north-1"),
        (_, "aws-us-gov") => ("https://sts.us-gov-west-1.amazonaws.com/", "us-gov-west-1"),
        _ => ("https://sts.amazonaws.com/", "us-east-1"),
    };
    (url.to_string(), region.to_string())
}

/// Sends one signed query call and returns the XML answer.
async fn call(
    aws: &AwsClients,
    service: &'static str,
    partition: &str,
    params: &[(String, String)],
    timeout: Duration,
) -> Result<String, QueryError> {
    let (url, region) = endpoint(aws, service, partition);
    let config = aws.config(&region);
    let provider = config
        .credentials_provider()
        .ok_or_else(|| QueryError::Credentials("none configured".into()))?;
    let creds = provider
        .provide_credentials()
        .await
        .map_err(|e| QueryError::Credentials(e.to_string()))?;
    let body = form(params);
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_string();
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let identity = creds.into();
    let signing = v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| QueryError::Signing(e.to_string()))?
        .into();
    let headers = [("host", host.as_str()), ("content-type", content_type)];
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| QueryError::Signing(e.to_string()))?;
    let (instructions, _) = sign(signable, &signing)
        .map_err(|e| QueryError::Signing(e.to_string()))?
        .into_parts();
    let client = super::http::build(super::http::builder("readiness").timeout(timeout));
    let mut req = client
        .post(&url)
        .header("content-type", content_type)
        .body(body);
    for (name, value) in instructions.headers() {
        req = req.header(name, value);
    }
    let resp = req.send().await.map_err(|e| QueryError::Transport {
        service,
        url: url.clone(),
        reason: e.to_string(),
    })?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| QueryError::Transport {
        service,
        url: url.clone(),
        reason: e.to_string(),
    })?;
    if !(200..300).contains(&status) {
        let action = params
            .iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| format!("{service}:{v}"))
            .unwrap_or_else(|| service.to_string());
        return Err(QueryError::Service {
            action,
            url,
            code: tag(&text, "Code").unwrap_or("unknown").to_string(),
            // An emulator's HTML error page says nothing worth quoting.
            message: tag(&text, "Message")
                .map(|m| super::http::sanitize(m, 300))
                .unwrap_or_else(|| "no AWS error in the answer".to_string()),
            status,
        });
    }
    Ok(text)
}

fn form(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes what is not unreserved (RFC 3986), as SigV4 expects.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of the first `<name>…</name>` in `xml`.
pub fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].trim())
}

/// The ARN of the identity the credentials belong to (`sts:GetCallerIdentity`, which
/// no policy can deny).
pub async fn caller_arn(aws: &AwsClients, timeout: Duration) -> Result<String, QueryError> {
    let params = [
        ("Action".to_string(), "GetCallerIdentity".to_string()),
        ("Version".to_string(), "2011-06-15".to_string()),
    ];
    let xml = call(aws, "sts", "aws", &params, timeout).await?;
    tag(&xml, "Arn")
        .map(str::to_string)
        .ok_or_else(|| QueryError::Service {
            action: "sts:GetCallerIdentity".into(),
            url: endpoint(aws, "sts", "aws").0,
            code: "NoArn".into(),
            message: "the answer carried no Arn".into(),
            status: 200,
        })
}

/// IAM's verdict on one action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Simulated {
    pub action: String,
    /// `allowed`, `explicitDeny` or `implicitDeny`.
    pub decision: String,
    /// Condition keys a statement needed and the simulation was not given: a denial
    /// with some means "granted under conditions not evaluated here".
    pub missing_context: bool,
}

/// Asks IAM whether `principal` (a role or user ARN) may call each of `actions`, on any
/// resource. The simulation passes no resource ARNs, so IAM evaluates each action
/// against `*`; a grant scoped to the wrong resource is not caught here.
pub async fn simulate(
    aws: &AwsClients,
    principal: &str,
    actions: &[&str],
    timeout: Duration,
) -> Result<Vec<Simulated>, QueryError> {
    let partition = principal.split(':').nth(1).unwrap_or("aws");
    let mut params = vec![
        ("Action".to_string(), "SimulatePrincipalPolicy".to_string()),
        ("Version".to_string(), "2010-05-08".to_string()),
        ("PolicySourceArn".to_string(), principal.to_string()),
        ("MaxItems".to_string(), "1000".to_string()),
    ];
    for (i, a) in actions.iter().enumerate() {
        params.push((format!("ActionNames.member.{}", i + 1), (*a).to_string()));
    }
    let xml = call(aws, "iam", partition, &params, timeout).await?;
    Ok(parse_simulation(&xml))
}

/// The results of a `SimulatePrincipalPolicy` answer, in order.
pub fn parse_simulation(xml: &str) -> Vec<Simulated> {
    xml.split("<EvalActionName>")
        .skip(1)
        .filter_map(|chunk| {
            let action = chunk.split("</EvalActionName>").next()?.trim().to_string();
            let decision = tag(chunk, "EvalDecision")?.to_string();
            let missing_context =
                tag(chunk, "MissingContextValues").is_some_and(|m| m.contains("<member>"));
            Some(Simulated {
                action,
                decision,
                missing_context,
            })
        })
        .collect()
}

/// The IAM principal to simulate for a caller ARN: an assumed role's session becomes its
/// role (without a path: give `[readiness] role_arn` when the role has one); users and
/// roles stay as they are; the root account cannot be simulated.
pub fn principal_of(caller: &str) -> Result<String, String> {
    let parts: Vec<&str> = caller.splitn(6, ':').collect();
    let [_, partition, service, _, account, resource] = parts.as_slice() else {
        return Err(format!("`{caller}` is not an ARN"));
    };
    match (*service, resource.split('/').collect::<Vec<_>>().as_slice()) {
        ("sts", ["assumed-role", role, ..]) => {
            Ok(format!("arn:{partition}:iam::{account}:role/{role}"))
        }
        ("iam", [kind, ..]) if *kind == "user" || *kind == "role" => Ok(caller.to_string()),
        // Some STS implementations (moto's) name an IAM user under `sts`.
        ("sts", ["user", ..]) => Ok(format!("arn:{partition}:iam::{account}:{resource}")),
        ("iam", ["root"]) | (_, ["root"]) => Err(
            "lifeboat runs as the account's root user, whose permissions cannot be simulated: run it as the Terraform module's role".into(),
        ),
        _ => Err(format!(
            "`{caller}` is neither a role nor a user; set [readiness] role_arn to the role lifeboat acts as"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulation_answer_reads_as_one_verdict_per_action() {
        let xml = "<SimulatePrincipalPolicyResponse><SimulatePrincipalPolicyResult>\
            <EvaluationResults>\
            <member><EvalActionName>rds:PromoteReadReplica</EvalActionName><EvalResourceName>*</EvalResourceName>\
            <EvalDecision>implicitDeny</EvalDecision><MatchedStatements/><MissingContextValues/></member>\
            <member><EvalActionName>s3:ListBucket</EvalActionName><EvalResourceName>*</EvalResourceName>\
            <EvalDecision>implicitDeny</EvalDecision><MissingContextValues><member>s3:prefix</member></MissingContextValues></member>\
            <member><EvalActionName>sns:Publish</EvalActionName><EvalDecision>allowed</EvalDecision>\
            <EvalDecisionDetails><entry><key>x</key></entry></EvalDecisionDetails></member>\
            </EvaluationResults><IsTruncated>false</IsTruncated></SimulatePrincipalPolicyResult></SimulatePrincipalPolicyResponse>";
        let got = parse_simulation(xml);
        assert_eq!(
            got.iter()
                .map(|s| (s.action.as_str(), s.decision.as_str(), s.missing_context))
                .collect::<Vec<_>>(),
            vec![
                ("rds:PromoteReadReplica", "implicitDeny", false),
                ("s3:ListBucket", "implicitDeny", true),
                ("sns:Publish", "allowed", false),
            ]
        );
    }

    #[test]
    fn an_assumed_role_session_is_simulated_as_its_role() {
        assert_eq!(
            principal_of("arn:aws:sts::123456789012:assumed-role/orders-lifeboat/i-0abc")
                .expect("role"),
            "arn:aws:iam::123456789012:role/orders-lifeboat"
        );
        assert_eq!(
            principal_of("arn:aws:iam::123456789012:user/moto").expect("user"),
            "arn:aws:iam::123456789012:user/moto"
        );
        assert_eq!(
            principal_of("arn:aws:sts::123456789012:user/moto").expect("user"),
            "arn:aws:iam::123456789012:user/moto"
        );
        assert!(principal_of("arn:aws:iam::123456789012:root").is_err());
        assert!(principal_of("nonsense").is_err());
    }

    #[test]
    fn form_values_are_percent_encoded_for_signing() {
        assert_eq!(
            form(&[("PolicySourceArn".into(), "arn:aws:iam::1:role/a b".into())]),
            "PolicySourceArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa%20b"
        );
    }
}
