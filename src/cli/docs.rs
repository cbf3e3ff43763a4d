//! `lifeboat completions SHELL` and `lifeboat man`: shell completions and man pages,
//! generated from the same clap definitions that parse the command line.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat completions bash > /etc/bash_completion.d/lifeboat
  lifeboat completions zsh > \"${fpath[1]}/_lifeboat\"
  lifeboat completions fish > ~/.config/fish/completions/lifeboat.fish

The Debian package installs the bash, zsh and fish completions.")]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  lifeboat man | man -l -
  lifeboat man --out-dir target/man     # lifeboat.1 and lifeboat-SUBCOMMAND.1 for each")]
pub struct ManArgs {
    /// Write a page per command (lifeboat.1, lifeboat-run.1, …) into this directory
    /// instead of printing lifeboat(1)
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    // Into memory first: clap_complete panics on a write error (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "lifeboat", &mut script);
    print(&script).context("write the completions")?;
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout; a reader that stopped early (`| head`) is not an error.
pub(super) fn print(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

pub fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    // Fills in each subcommand's display name (`lifeboat-run`), which names its page.
    cmd.build();
    match args.out_dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .context("render the man page")?;
            print(&page).context("write the man page")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            write_pages(&cmd, &dir)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One page for `cmd` and one for each of its visible subcommands, recursively.
fn write_pages(cmd: &clap::Command, dir: &Path) -> anyhow::Result<()> {
    let name = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string();
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .context("render a man page")?;
    std::fs::write(&path, page).with_context(|| format!("write {}", path.display()))?;
    // clap's own `help` subcommand needs no page: every page shows its command's help.
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write_pages(sub, dir)?;
    }
    Ok(())
}
