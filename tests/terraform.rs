//! Checks the Terraform module under `terraform/` without a Terraform binary: every
//! `.tf` file parses (hcl-rs), the lifeboat role is granted exactly the AWS actions
//! `lifeboat::core::iam::all_actions()` lists, variables are described and validated,
//! and checkov finds nothing to fail.
//!
//! Terraform itself cannot be initialised here (no provider downloads), so "parses and
//! passes static analysis" is the strongest check available; the IAM comparison is
//! the one that matters most, because it keeps the policy and the code's contract from
//! drifting apart silently.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use hcl::expr::{Expression, TraversalOperator};
use hcl::{Block, Body};

/// AWS actions that have no resource-level permissions and so may only be granted on
/// `"*"`. Source: the Service Authorization Reference lists no resource type for them.
/// Anything else granted on `"*"` is a scoping mistake.
const ACTIONS_WITHOUT_RESOURCE_TYPES: &[&str] = &[
    "autoscaling:DescribeAutoScalingGroups",
    "cloudwatch:GetMetricStatistics",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn terraform_dir() -> PathBuf {
    repo().join("terraform")
}

/// Every `.tf` file under `dir`, recursively, skipping Terraform's `.terraform` caches.
fn tf_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !name.starts_with('.') {
                    stack.push(path);
                }
            } else if name.ends_with(".tf") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn parse(path: &Path) -> Body {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    hcl::parse(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

/// The module itself: the `.tf` files directly in `terraform/` (not the examples).
fn module_blocks() -> Vec<Block> {
    let dir = terraform_dir();
    let files: Vec<PathBuf> = tf_files(&dir)
        .into_iter()
        .filter(|p| p.parent() == Some(dir.as_path()))
        .collect();
    assert!(!files.is_empty(), "no .tf files in {}", dir.display());
    files.iter().flat_map(|p| parse(p).into_blocks()).collect()
}

fn label(block: &Block, i: usize) -> &str {
    block.labels().get(i).map(|l| l.as_str()).unwrap_or("")
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

/// Every `type.name` a traversal in `expr` refers to, e.g. `aws_iam_role.lifeboat` for
/// `aws_iam_role.lifeboat.id`, or `aws_iam_policy_document.route53` for
/// `data.aws_iam_policy_document.route53.json` (the `data.` is dropped).
fn references(expr: &Expression, out: &mut BTreeSet<String>) {
    match expr {
        Expression::Traversal(t) => {
            let mut names = Vec::new();
            if let Expression::Variable(v) = &t.expr {
                names.push(v.to_string());
            }
            for op in &t.operators {
                match op {
                    TraversalOperator::GetAttr(id) => names.push(id.to_string()),
                    TraversalOperator::Index(e) => references(e, out),
                    _ => {}
                }
            }
            if names.first().map(String::as_str) == Some("data") {
                names.remove(0);
            }
            if names.len() >= 2 {
                out.insert(format!("{}.{}", names[0], names[1]));
            }
            references(&t.expr, out);
        }
        Expression::Array(items) => items.iter().for_each(|e| references(e, out)),
        Expression::Object(obj) => obj.values().for_each(|e| references(e, out)),
        Expression::FuncCall(f) => f.args.iter().for_each(|e| references(e, out)),
        Expression::Parenthesis(e) => references(e, out),
        Expression::Conditional(c) => {
            references(&c.cond_expr, out);
            references(&c.true_expr, out);
            references(&c.false_expr, out);
        }
        Expression::ForExpr(f) => {
            references(&f.collection_expr, out);
            references(&f.value_expr, out);
            if let Some(k) = &f.key_expr {
                references(k, out);
            }
        }
        _ => {}
    }
}

fn refs(expr: &Expression) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    references(expr, &mut out);
    out
}

/// One statement of an `aws_iam_policy_document`, as written.
#[derive(Debug)]
struct Statement {
    document: String,
    sid: String,
    actions: Vec<String>,
    resources: Option<Expression>,
}

/// The statements of `doc` and of every document it merges in through
/// `source_policy_documents`, recursively.
fn statements_of(docs: &BTreeMap<String, Body>, doc: &str, out: &mut Vec<Statement>) {
    let body = docs
        .get(doc)
        .unwrap_or_else(|| panic!("data \"aws_iam_policy_document\" \"{doc}\" not found"));
    assert!(
        attr(body, "override_policy_documents").is_none(),
        "{doc}: override_policy_documents can replace statements this test cannot see"
    );
    if let Some(sources) = attr(body, "source_policy_documents") {
        for r in refs(sources) {
            if let Some(name) = r.strip_prefix("aws_iam_policy_document.") {
                statements_of(docs, name, out);
            }
        }
    }
    for block in body.blocks() {
        assert_ne!(
            block.identifier(),
            "dynamic",
            "{doc}: a dynamic block; checkov does not expand them and this test cannot read them, write the statement out"
        );
        if block.identifier() != "statement" {
            continue;
        }
        let s = block.body();
        let sid = match attr(s, "sid") {
            Some(e) => e.to_string(),
            None => "(no sid)".to_string(),
        };
        for forbidden in ["not_actions", "not_resources", "not_principals"] {
            assert!(
                attr(s, forbidden).is_none(),
                "{doc} {sid}: {forbidden} grants by exclusion; list what is granted instead"
            );
        }
        if let Some(effect) = attr(s, "effect") {
            assert_eq!(
                effect,
                &Expression::String("Allow".into()),
                "{doc} {sid}: the lifeboat policy only allows"
            );
        }
        let actions = match attr(s, "actions") {
            Some(Expression::Array(items)) => items
                .iter()
                .map(|e| match e {
                    Expression::String(a) => a.clone(),
                    other => panic!(
                        "{doc} {sid}: action `{other}` is not a literal string, so it cannot be checked"
                    ),
                })
                .collect(),
            other => panic!("{doc} {sid}: actions must be a literal list, found {other:?}"),
        };
        out.push(Statement {
            document: doc.to_string(),
            sid,
            actions,
            resources: attr(s, "resources").cloned(),
        });
    }
}

/// The statements of every policy that reaches the lifeboat role, after checking that
/// exactly one inline policy does and that nothing else is attached to the role.
fn lifeboat_statements() -> Vec<Statement> {
    let blocks = module_blocks();
    let docs: BTreeMap<String, Body> = blocks
        .iter()
        .filter(|b| b.identifier() == "data" && label(b, 0) == "aws_iam_policy_document")
        .map(|b| (label(b, 1).to_string(), b.body().clone()))
        .collect();

    let role = blocks
        .iter()
        .find(|b| {
            b.identifier() == "resource"
                && label(b, 0) == "aws_iam_role"
                && label(b, 1) == "lifeboat"
        })
        .expect("resource \"aws_iam_role\" \"lifeboat\" in terraform/");
    for key in ["managed_policy_arns", "inline_policy"] {
        assert!(
            attr(role.body(), key).is_none()
                && !role.body().blocks().any(|b| b.identifier() == key),
            "aws_iam_role.lifeboat must not carry {key}: every grant goes through the checked inline policy"
        );
    }

    let mut inline = Vec::new();
    for b in blocks.iter().filter(|b| b.identifier() == "resource") {
        let Some(role_expr) = attr(b.body(), "role") else {
            continue;
        };
        if !refs(role_expr).contains("aws_iam_role.lifeboat") {
            continue;
        }
        match label(b, 0) {
            "aws_iam_role_policy" => inline.push(b),
            other => panic!(
                "{other}.{} attaches a policy to the lifeboat role outside the checked inline policy",
                label(b, 1)
            ),
        }
    }
    assert_eq!(
        inline.len(),
        1,
        "exactly one aws_iam_role_policy must reach aws_iam_role.lifeboat"
    );
    let policy = attr(inline[0].body(), "policy").expect("aws_iam_role_policy.policy");
    let doc_refs: Vec<String> = refs(policy)
        .into_iter()
        .filter_map(|r| r.strip_prefix("aws_iam_policy_document.").map(String::from))
        .collect();
    assert_eq!(
        doc_refs.len(),
        1,
        "the role's policy must be one aws_iam_policy_document's json, found {policy}"
    );

    let mut out = Vec::new();
    statements_of(&docs, &doc_refs[0], &mut out);
    assert!(!out.is_empty(), "the lifeboat policy has no statements");
    out
}

/// The journal on EFS runs as a rollback journal locked exclusively by the one daemon
/// (src/journal/fs.rs): that holds only if the service never runs two tasks at once,
/// and the container's default journal directory is the EFS mount.
#[test]
fn the_daemon_runs_one_task_at_a_time_with_its_journal_on_the_efs_mount() {
    let blocks = module_blocks();
    let find = |kind: &str, name: &str| {
        blocks
            .iter()
            .find(|b| b.identifier() == "resource" && label(b, 0) == kind && label(b, 1) == name)
            .unwrap_or_else(|| panic!("terraform/ has no {kind}.{name}"))
    };
    let service = find("aws_ecs_service", "daemon");
    let number = |key: &str| match attr(service.body(), key) {
        Some(Expression::Number(n)) => n.as_u64(),
        other => panic!("{key} is {other:?}"),
    };
    assert_eq!(number("desired_count"), Some(1));
    assert_eq!(number("deployment_maximum_percent"), Some(100));
    assert_eq!(number("deployment_minimum_healthy_percent"), Some(0));
    find("aws_ecs_task_definition", "daemon");
    // The container definitions are a jsonencode() argument; their text is what counts.
    let task = std::fs::read_to_string(terraform_dir().join("daemon.tf")).expect("read daemon.tf");
    assert!(
        task.contains("containerPath = \"/var/lib/lifeboat\""),
        "the journal volume is mounted at the state directory"
    );
    assert!(
        task.contains("{ name = \"LIFEBOAT_STATE_DIR\", value = \"/var/lib/lifeboat\" }"),
        "the state directory is the EFS mount"
    );
}

#[test]
fn every_tf_file_parses() {
    let files = tf_files(&terraform_dir());
    assert!(
        files.len() >= 5,
        "expected the module's .tf files under terraform/, found {files:?}"
    );
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read .tf file");
        if let Err(e) = hcl::parse(&text) {
            failures.push(format!("{}: {e}", f.display()));
        }
    }
    assert!(failures.is_empty(), "unparsable:\n{}", failures.join("\n"));
}

#[test]
fn lifeboat_role_is_granted_exactly_the_actions_lifeboat_calls() {
    let statements = lifeboat_statements();
    let granted: BTreeSet<&str> = statements
        .iter()
        .flat_map(|s| s.actions.iter().map(String::as_str))
        .collect();
    let wildcards: Vec<&str> = granted
        .iter()
        .copied()
        .filter(|a| a.contains('*') || a.contains('?'))
        .collect();
    assert!(wildcards.is_empty(), "wildcard actions: {wildcards:?}");

    let needed = lifeboat::core::iam::all_actions();
    let missing: Vec<&str> = needed.difference(&granted).copied().collect();
    let extra: Vec<&str> = granted.difference(&needed).copied().collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "terraform/iam.tf and src/core/iam.rs disagree.\n\
         needed by lifeboat but not granted: {missing:?}\n\
         granted but not in src/core/iam.rs: {extra:?}\n\
         grant an action in terraform/iam.tf exactly when an adapter calls it"
    );
}

#[test]
fn wildcard_resources_only_for_actions_without_resource_level_permissions() {
    for s in lifeboat_statements() {
        let Some(resources) = &s.resources else {
            panic!("{} {}: no resources", s.document, s.sid);
        };
        let bare_star = matches!(resources, Expression::Array(items)
            if items.iter().any(|e| e == &Expression::String("*".into())));
        if bare_star {
            for a in &s.actions {
                assert!(
                    ACTIONS_WITHOUT_RESOURCE_TYPES.contains(&a.as_str()),
                    "{} {}: {a} is granted on \"*\" but supports resource-level permissions; name its resources",
                    s.document,
                    s.sid
                );
            }
        }
    }
}

#[test]
fn every_variable_is_described_and_every_non_boolean_one_validated() {
    let mut problems = Vec::new();
    for f in tf_files(&terraform_dir()) {
        for b in parse(&f).blocks().filter(|b| b.identifier() == "variable") {
            let name = label(b, 0);
            let body = b.body();
            let described = match attr(body, "description") {
                Some(Expression::String(s)) => !s.trim().is_empty(),
                Some(Expression::TemplateExpr(_)) => true,
                _ => false,
            };
            if !described {
                problems.push(format!(
                    "{}: variable {name} has no description",
                    f.display()
                ));
            }
            // Booleans cannot hold a bad name; everything else reaches a resource name,
            // an ARN or a setting AWS would reject later and less clearly.
            let is_bool = attr(body, "type").map(|t| t.to_string()) == Some("bool".into());
            if !is_bool && !body.blocks().any(|v| v.identifier() == "validation") {
                problems.push(format!(
                    "{}: variable {name} has no validation block",
                    f.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// checkov: `$CHECKOV`, else the virtualenv tests/setup/install-deps.sh makes, else
/// whatever `checkov` is on PATH.
fn checkov() -> PathBuf {
    if let Some(path) = std::env::var_os("CHECKOV") {
        return PathBuf::from(path);
    }
    let venv = repo().join(".lifeboat/tools/checkov/bin/checkov");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("checkov")
}

#[test]
fn checkov_reports_no_failed_checks_and_every_skip_has_a_reason() {
    let bin = checkov();
    let output = Command::new(&bin)
        .args(["--directory", "terraform", "--framework", "terraform"])
        .args(["--output", "json", "--skip-download", "--compact"])
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run checkov ({}): {e}\n\
                 install it with `tests/setup/install-deps.sh` (it makes the virtualenv \
                 .lifeboat/tools/checkov), or point $CHECKOV at a checkov 3.x binary",
                bin.display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "checkov output is not JSON ({e}); exit {:?}\nstderr:\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let summary = &report["summary"];
    println!("checkov summary: {summary}");

    let failed: Vec<String> = report["results"]["failed_checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| format!("{} {} ({})", c["check_id"], c["resource"], c["file_path"]))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        failed.is_empty(),
        "checkov failed checks:\n{}",
        failed.join("\n")
    );
    assert_eq!(summary["failed"], 0, "checkov summary: {summary}");
    assert_eq!(summary["parsing_errors"], 0, "checkov summary: {summary}");
    assert!(
        summary["passed"].as_u64().unwrap_or(0) > 0,
        "checkov checked nothing: {summary}"
    );

    for skip in report["results"]["skipped_checks"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let reason = skip["check_result"]["suppress_comment"]
            .as_str()
            .unwrap_or("");
        assert!(
            reason.split_whitespace().count() >= 8,
            "checkov skip of {} on {} needs a real justification beside it, found {reason:?}",
            skip["check_id"],
            skip["resource"]
        );
    }
}

/// Writes a vars file the way the module's `policy_vars_toml` output does: one
/// `name = <jsonencode(value)>` line per output, sorted by name.
fn render_vars_like_terraform(vars: &BTreeMap<&str, serde_json::Value>) -> String {
    vars.iter()
        .map(|(k, v)| format!("{k} = {}\n", serde_json::to_string(v).expect("json")))
        .collect()
}

#[test]
fn example_policy_takes_its_dns_and_channel_from_terraform_outputs() {
    let example = terraform_dir().join("examples/aurora-global/checkout.toml");
    let dir = tempfile::tempdir().expect("tempdir");
    let policy_path = dir.path().join("checkout.toml");
    std::fs::copy(&example, &policy_path).expect("copy the example policy");

    // Values as `terraform apply` would produce them, unlike the policy's defaults.
    let outputs: BTreeMap<&str, serde_json::Value> = [
        ("primary_region", "us-east-1".into()),
        ("secondary_region", "us-west-2".into()),
        ("route53_zone_id", "Z9ZZZZZZZZZZZZZZZZZZ".into()),
        ("record_name", "checkout.example.com.".into()),
        ("record_type", "CNAME".into()),
        ("record_ttl", 15.into()),
        ("primary_set_identifier", "checkout-us-east-1".into()),
        ("secondary_set_identifier", "checkout-us-west-2".into()),
        (
            "switch_health_check_id",
            "abcdef01-2345-6789-abcd-ef0123456789".into(),
        ),
        (
            "sns_topic_arn",
            "arn:aws:sns:us-east-2:444455556666:checkout-lifeboat".into(),
        ),
        (
            "reports_bucket",
            "checkout-lifeboat-444455556666-us-east-2".into(),
        ),
        (
            "role_arn",
            "arn:aws:iam::444455556666:role/checkout-lifeboat".into(),
        ),
    ]
    .into_iter()
    .collect();
    // The names above are the module's: a renamed output must break this test.
    let module_vars: BTreeSet<String> = module_blocks()
        .iter()
        .filter(|b| b.identifier() == "locals")
        .find_map(|b| match attr(b.body(), "policy_vars") {
            Some(Expression::Object(o)) => Some(o.keys().map(|k| k.to_string()).collect()),
            _ => None,
        })
        .expect("locals { policy_vars = { ... } } in terraform/outputs.tf");
    let ours: BTreeSet<String> = outputs.keys().map(|k| k.to_string()).collect();
    assert_eq!(module_vars, ours, "policy_vars in terraform/outputs.tf");

    std::fs::write(
        dir.path().join("checkout.vars.toml"),
        render_vars_like_terraform(&outputs),
    )
    .expect("write vars file");

    let (policy, _) = lifeboat::policy::load_valid(&policy_path).expect("the example loads");
    use lifeboat::core::model::{ChannelKind, DnsRecord, Endpoint, RegionName};
    let dns = policy.target("dns").expect("dns target");
    for (region, set_id) in [
        ("us-east-1", "checkout-us-east-1"),
        ("us-west-2", "checkout-us-west-2"),
    ] {
        let Some(Endpoint::Route53(r)) = dns.endpoint(&RegionName::new(region)) else {
            panic!("dns target has no route53 endpoint in {region}");
        };
        assert_eq!(r.zone_id, "Z9ZZZZZZZZZZZZZZZZZZ");
        assert_eq!(r.record_name, "checkout.example.com.");
        assert_eq!(r.ttl, 15);
        assert_eq!(
            r.record,
            DnsRecord::FailoverPair {
                set_identifier: set_id.to_string(),
                health_check_id: Some("abcdef01-2345-6789-abcd-ef0123456789".to_string()),
            }
        );
    }
    let pager = policy.channel("pager").expect("pager channel");
    let ChannelKind::Sns { topic_arn } = &pager.kind else {
        panic!("pager is not an SNS channel");
    };
    assert_eq!(
        topic_arn,
        "arn:aws:sns:us-east-2:444455556666:checkout-lifeboat"
    );
}
