//! `lifeboat schema`: the JSON Schema of policy files (or drill scenarios), for editors
//! and CI, generated from the types that load them.

use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat schema > lifeboat-policy.schema.json
  lifeboat schema --drill > lifeboat-drill.schema.json

Point an editor at it with a first line in the policy (taplo, VS Code's Even Better TOML):
  #:schema /usr/share/lifeboat/policy.schema.json

The schema checks shape (sections, fields, types, kinds); `lifeboat validate` also checks
the rules between fields. A value written \"${name}\" (a [vars] reference) is accepted
wherever a scalar is expected, since it takes the variable's type when loaded.")]
pub struct Args {
    /// The schema of drill scenarios (policies/drills/*.toml) instead of policies
    #[arg(long)]
    pub drill: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let schema = if args.drill {
        crate::drill::scenario::schema()
    } else {
        crate::policy::schema::policy()
    };
    let mut text = serde_json::to_string_pretty(&schema)?;
    text.push('\n');
    super::docs::print(text.as_bytes()).context("write the schema")?;
    Ok(ExitCode::SUCCESS)
}
