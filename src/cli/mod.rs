//! Command-line entry point: clap definitions and the single user-facing error type.
use std::process::ExitCode;

pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
