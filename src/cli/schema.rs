//! `lifeboat schema`: the JSON Schema of policy files (or drill scenarios, or a `--json`
//! output), or the HTTP API's OpenAPI document, for editors, scripts and CI, generated
//! from the types that load, print or serve them.

use std::process::ExitCode;

use anyhow::Context;

use super::outputs::{OUTPUTS, find};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat schema > lifeboat-policy.schema.json
  lifeboat schema --drill > lifeboat-drill.schema.json
  lifeboat schema --output status > status.schema.json
  lifeboat schema --openapi > openapi.json

Point an editor at it with a first line in the policy (taplo, VS Code's Even Better TOML):
  #:schema /usr/share/lifeboat/policy.schema.json

The schema checks shape (sections, fields, types, kinds); `lifeboat validate` also checks
the rules between fields. A value written \"${name}\" (a [vars] reference) is accepted
wherever a scalar is expected, since it takes the variable's type when loaded.

--output NAME prints the JSON Schema (2020-12) of what a command prints with --json:
probe, status, plan, history, decisions (history --decisions), show, validate, drill.
--openapi prints the OpenAPI 3.1 document a running daemon serves at /v1/openapi.json.")]
pub struct Args {
    /// The schema of drill scenarios (policies/drills/*.toml) instead of policies
    #[arg(long, conflicts_with_all = ["output", "openapi"])]
    pub drill: bool,

    /// The schema of a command's --json output instead of policies
    #[arg(long, value_name = "NAME", value_parser = OUTPUTS.iter().map(|o| o.name).collect::<Vec<_>>(), conflicts_with = "openapi")]
    pub output: Option<String>,

    /// The HTTP API's OpenAPI 3.1 document instead of a schema
    #[arg(long)]
    pub openapi: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let schema = if args.drill {
        crate::drill::scenario::schema()
    } else if args.openapi {
        crate::daemon::openapi::document()
    } else if let Some(name) = &args.output {
        find(name)
            .with_context(|| format!("no --json output is called {name}"))?
            .schema()
    } else {
        crate::policy::schema::policy()
    };
    let mut text = serde_json::to_string_pretty(&schema)?;
    text.push('\n');
    super::docs::print(text.as_bytes()).context("write the schema")?;
    Ok(ExitCode::SUCCESS)
}
