//! The `stackform` binary: hands control to [`stackform::cli::main`], which parses the arguments, runs
//! the command and maps its result to an exit code exactly once. Nothing else belongs here.
fn main() -> std::process::ExitCode {
    stackform::cli::main()
}
