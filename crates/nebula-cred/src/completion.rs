//! `completion`: shell completion scripts, generated from the command line by clap.

use std::io::Write;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;
use crate::commands::emit;
use crate::exit::CliError;

/// `completion`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    nebula-cred completion bash > ~/.local/share/bash-completion/completions/nebula-cred\n  \
    nebula-cred completion zsh > \"${fpath[1]}/_nebula-cred\"\n  \
    nebula-cred completion fish > ~/.config/fish/completions/nebula-cred.fish\n  \
    nebula-cred completion powershell >> $PROFILE")]
pub(crate) struct CompletionArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub(crate) shell: Shell,
}

/// Prints the completion script for `args.shell` to `out`.
pub(crate) fn generate(args: &CompletionArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "nebula-cred", &mut script);
    emit(out, script)
}
