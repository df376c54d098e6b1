fn main() -> std::process::ExitCode {
    stackform::cli::main()
}
