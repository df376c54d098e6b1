//! The one error type the CLI renders. Library errors convert into it; it knows its exit code.
use std::process::ExitCode;

/// Everything a command can fail with, as the user sees it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Located problems in user input (stack files, variables); rendered with source snippets.
    #[error("{count} error(s) found")]
    Diagnostics { count: usize, rendered: String },
    /// Any other failure, already phrased for the user.
    #[error("{0}")]
    Message(String),
    /// The command was interrupted (Ctrl-C); exit code 130.
    #[error("interrupted: {0}")]
    Interrupted(String),
}

impl CliError {
    pub fn message(msg: impl Into<String>) -> Self {
        CliError::Message(msg.into())
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Diagnostics { .. } | CliError::Message(_) => 1,
            CliError::Interrupted(_) => 130,
        }
    }

    /// Prints the error to stderr and returns its exit code.
    pub fn report(&self) -> ExitCode {
        match self {
            CliError::Diagnostics { count, rendered } => {
                eprint!("{rendered}");
                eprintln!("error: {count} problem(s) found; nothing was changed");
            }
            CliError::Message(msg) => eprintln!("error: {msg}"),
            CliError::Interrupted(msg) => eprintln!("interrupted: {msg}"),
        }
        ExitCode::from(self.exit_code())
    }
}
