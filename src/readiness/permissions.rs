//! Does lifeboat's AWS identity hold the IAM actions its planned steps and probes call?
//! Asked of IAM itself with `iam:SimulatePrincipalPolicy`, where the endpoint implements
//! it; where it does not (moto does not), the answer says so instead of guessing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::clients::aws::AwsClients;
use crate::clients::aws_query::{self, QueryError};
use crate::core::readiness::Readiness;

/// How long each of the two calls may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The verdict, and the actions IAM denied (for the steps that call them).
#[derive(Debug)]
pub struct Permissions {
    pub overall: Readiness,
    pub denied: BTreeSet<String>,
}

/// Simulates `actions` (each with who calls it) for `role_arn`, or for the identity the
/// credentials belong to.
pub async fn check(
    aws: Option<&AwsClients>,
    role_arn: Option<&str>,
    actions: &BTreeMap<String, Vec<String>>,
) -> Permissions {
    let none = |overall| Permissions {
        overall,
        denied: BTreeSet::new(),
    };
    if actions.is_empty() {
        return none(Readiness::ready(
            "no step or probe of this policy calls AWS",
        ));
    }
    let Some(aws) = aws else {
        return none(Readiness::not_ready(
            "steps and probes of this policy call AWS, but lifeboat runs without AWS configuration",
            "set [aws] in the policy or the standard AWS environment (credentials, region)",
        ));
    };
    let principal = match role_arn {
        Some(r) => r.to_string(),
        None => match aws_query::caller_arn(aws, CALL_TIMEOUT).await {
            Ok(caller) => match aws_query::principal_of(&caller) {
                Ok(p) => p,
                Err(why) => return none(Readiness::cannot_tell(why)),
            },
            Err(e) => return none(unavailable("sts:GetCallerIdentity", &e)),
        },
    };
    let names: Vec<&str> = actions.keys().map(String::as_str).collect();
    let results = match aws_query::simulate(aws, &principal, &names, CALL_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => return none(unavailable("iam:SimulatePrincipalPolicy", &e)),
    };
    let mut denied = BTreeSet::new();
    let mut conditional = Vec::new();
    for r in &results {
        match (r.decision.as_str(), r.missing_context) {
            ("allowed", _) => {}
            // A statement that grants it under a condition (a record name, a prefix)
            // the simulation was not given: granted as far as this check can see.
            ("implicitDeny", true) => conditional.push(r.action.clone()),
            _ => {
                denied.insert(r.action.clone());
            }
        }
    }
    let unanswered: Vec<&str> = names
        .iter()
        .copied()
        .filter(|a| !results.iter().any(|r| r.action == *a))
        .collect();
    let overall = if !denied.is_empty() {
        let list: Vec<String> = denied
            .iter()
            .map(|a| {
                let who = actions.get(a).map(|w| w.join(", ")).unwrap_or_default();
                format!("{a} ({who})")
            })
            .collect();
        Readiness::not_ready(
            format!("{principal} may not call {}", list.join("; ")),
            "grant them to the lifeboat role (terraform/iam.tf grants exactly what lifeboat calls: apply it)",
        )
    } else if !unanswered.is_empty() {
        Readiness::cannot_tell(format!(
            "IAM gave no verdict on {} for {principal}",
            unanswered.join(", ")
        ))
    } else {
        let mut detail = format!(
            "{principal} holds the {} actions the steps and probes call",
            names.len()
        );
        if !conditional.is_empty() {
            detail.push_str(&format!(
                " ({} granted under conditions not evaluated here)",
                conditional.join(", ")
            ));
        }
        detail.push_str(
            "; checked against any resource, so a grant on the wrong resource is not caught",
        );
        Readiness::ready(detail)
    };
    Permissions { overall, denied }
}

/// The simulation could not run: a denial of the check itself is not ready (the role
/// misses a grant the module gives); an endpoint that does not implement it, or no
/// answer, leaves it unable to tell.
fn unavailable(action: &str, e: &QueryError) -> Readiness {
    match e {
        QueryError::Service { code, .. }
            if code.contains("AccessDenied") || code.contains("NotAuthorized") =>
        {
            Readiness::not_ready(
                format!("lifeboat's identity may not check its own permissions: {e}"),
                format!(
                    "grant {action} on the lifeboat role (terraform/iam.tf, statement SimulateOwnPermissions)"
                ),
            )
        }
        QueryError::Service { .. } | QueryError::Transport { .. } => {
            Readiness::cannot_tell(format!(
                "the permissions were not checked: {action} is not available here ({e}); emulators such as moto do not implement it"
            ))
        }
        QueryError::Credentials(_) | QueryError::Signing(_) => {
            Readiness::cannot_tell(format!("the permissions were not checked: {e}"))
        }
    }
}
