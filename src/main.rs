//! The `stackform` binary: hands control to [`stackform::cli::main`], which parses the arguments, runs
//! the command and maps its result to an exit code exactly once, and chooses the process's allocator.
//! Nothing else belongs here.

/// mimalloc rather than glibc's malloc: at 10,000 resources glibc held an engine run at 1.3 to 1.7
/// times its live heap (chunk headers on millions of small values, freed plan memory kept between
/// live records): with the same code an apply of 10,000 peaked at 107 MiB with glibc and 89 MiB
/// with mimalloc (docs/PERFORMANCE.md, "Engine memory"; the crate's features in Cargo.toml say why
/// version 2 without transparent huge pages).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    stackform::cli::main()
}
