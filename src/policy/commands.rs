//! `[commands]`: what command probes and steps may see of lifeboat's environment. They
//! get the basics and their `LIFEBOAT_*` variables; `pass_env` names anything more, and
//! may not name a credential: the AWS variables, lifeboat's own (its API token), or a
//! variable a secret reference of this policy reads.

use std::collections::BTreeSet;

use super::diag::{Diagnostic, Report};
use super::raw::RawCommands;
use crate::core::model::{Channel, ChannelKind, CommandSettings, Endpoint, SecretRef, Target};

pub fn build(
    report: &mut Report,
    raw: RawCommands,
    targets: &[Target],
    channels: &[Channel],
    other_secrets: &[&SecretRef],
) -> CommandSettings {
    let mut refs: Vec<&SecretRef> = other_secrets.to_vec();
    for ep in targets.iter().flat_map(|t| t.regions.values()) {
        match ep {
            Endpoint::Postgres(p) => refs.extend(&p.password),
            Endpoint::Redis { password, .. } => refs.extend(password),
            _ => {}
        }
    }
    for c in channels {
        if let ChannelKind::Webhook { url } = &c.kind {
            refs.push(url);
        }
    }
    let secrets: BTreeSet<&str> = refs
        .into_iter()
        .filter_map(|r| match r {
            SecretRef::Env(name) => Some(name.as_str()),
            SecretRef::File(_) => None,
        })
        .collect();
    let mut pass_env = Vec::new();
    for name in raw.pass_env.unwrap_or_default() {
        let n = name.get_ref();
        let refused = if n.starts_with("AWS_") {
            Some(
                "an AWS credential or setting: commands get none of lifeboat's; give the program its own role or profile",
            )
        } else if n.starts_with("LIFEBOAT_") {
            Some(
                "lifeboat's own (its API token among them); commands already get the LIFEBOAT_* variables of their run",
            )
        } else if secrets.contains(n.as_str()) {
            Some(
                "a secret this policy reads: a command that needs it must read it from its own source",
            )
        } else if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            Some("not a variable name: letters, digits and `_`")
        } else {
            None
        };
        match refused {
            Some(why) => report.push(
                Diagnostic::error(
                    "env-not-passable",
                    format!("`{n}` cannot be passed to commands"),
                )
                .at(name.span())
                .label("refused")
                .help(format!("it is {why}")),
            ),
            None => pass_env.push(name.into_inner()),
        }
    }
    CommandSettings { pass_env }
}
