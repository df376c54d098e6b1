//! The one way stackform writes to standard output and standard error. [`out!`]/[`outln!`] write to
//! stdout, flush, and return a [`StdoutError`] the command hands up with `?`: the CLI's edge
//! (`CliError::report`) ends the command quietly when the reader closed the pipe (`| head`) and
//! reports any other failure (a full disk) once. [`err!`]/[`errln!`] write diagnostics to stderr and
//! ignore failures: there is nowhere left to say that stderr is closed.
//!
//! Never use `println!`/`eprintln!` instead: they panic when the stream cannot be written, and
//! stackform ignores SIGPIPE (as Rust programs do), so a closed pipe is an error here, not a signal.
//! Never restore SIGPIPE's default action process-wide to avoid this: the local cloud and the
//! deployment runner write to sockets and child pipes, where the signal would kill the server.
use std::fmt;
use std::io::Write as _;

/// Writing to standard output failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {0}")]
pub struct StdoutError(#[source] std::io::Error);

impl StdoutError {
    /// The reader of stdout went away (`stackform … | head`): it asked for no more, so the command
    /// ends without a message.
    pub(crate) fn is_closed(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// Writes to stdout and flushes, so a failure is seen here rather than lost at exit. Use [`out!`] or
/// [`outln!`].
pub(crate) fn write_out(args: fmt::Arguments<'_>) -> Result<(), StdoutError> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// Writes to stderr; a failure is ignored (see the module docs). Use [`err!`] or [`errln!`].
pub(crate) fn write_err(args: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.flush());
}

/// `print!` that returns `Result<(), StdoutError>` instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::report::stdio::write_out(format_args!($($arg)*))
    };
}

/// `println!` that returns `Result<(), StdoutError>` instead of panicking.
macro_rules! outln {
    () => {
        $crate::report::stdio::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::report::stdio::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that never panics (a failure to write to stderr is ignored).
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::report::stdio::write_err(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics (a failure to write to stderr is ignored).
macro_rules! errln {
    () => {
        $crate::report::stdio::write_err(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::report::stdio::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {err, errln, out, outln};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_broken_pipe_is_a_closed_reader() {
        let closed = StdoutError(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(closed.is_closed());
        let full = StdoutError(std::io::Error::from_raw_os_error(28));
        assert!(!full.is_closed());
        assert!(
            full.to_string()
                .starts_with("cannot write to standard output: "),
            "{full}"
        );
    }
}
