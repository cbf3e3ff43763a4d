//! `lifeboat validate [PATH…]`: check policy files; exit 1 if any has an error.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use super::ColorChoice;
use crate::policy::{self, diag::JsonDiagnostic};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat validate policies/
  lifeboat validate policies/orders.toml policies/payments.toml
  lifeboat validate policies/ --json | jq '.files[] | select(.valid | not)'

Exit status: 0 when every file is valid (warnings allowed), 1 when any has an error.")]
pub struct Args {
    /// Policy files or directories (searched for *.toml, skipping drills/)
    #[arg(default_value = "policies")]
    pub paths: Vec<PathBuf>,

    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct JsonFile<'a> {
    file: String,
    valid: bool,
    errors: usize,
    warnings: usize,
    diagnostics: Vec<JsonDiagnostic<'a>>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct JsonOut<'a> {
    valid: bool,
    files: Vec<JsonFile<'a>>,
}

pub fn run(args: Args, color: ColorChoice) -> anyhow::Result<ExitCode> {
    let files = policy::expand(&args.paths)?;
    if files.is_empty() {
        anyhow::bail!(
            "no policy files (*.toml) found in {}",
            args.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let loaded: Vec<_> = files.iter().map(|f| policy::load(f)).collect();
    let all_valid = loaded.iter().all(|l| l.policy.is_some());

    if args.json {
        let out = JsonOut {
            valid: all_valid,
            files: loaded
                .iter()
                .map(|l| JsonFile {
                    file: l.report.path.display().to_string(),
                    valid: l.policy.is_some(),
                    errors: l.report.errors().count(),
                    warnings: l.report.warnings().count(),
                    diagnostics: l.report.to_json(),
                })
                .collect(),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let color = color.stdout();
        for l in &loaded {
            print!("{}", l.report.render(color));
            let (e, w) = (l.report.errors().count(), l.report.warnings().count());
            let file = l.report.path.display();
            match (l.policy.is_some(), w) {
                (true, 0) => println!("ok    {file}"),
                (true, w) => println!("ok    {file} ({w} warning{})", plural(w)),
                (false, _) => println!(
                    "FAIL  {file}: {e} error{}, {w} warning{}",
                    plural(e),
                    plural(w)
                ),
            }
        }
        if !all_valid {
            println!("\nfix the errors above and run `lifeboat validate` again");
        }
    }
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
