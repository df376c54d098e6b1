//! The process exit codes of `stackform`, in one place. Every command's result and every
//! [`CliError`](super::CliError) maps to one of these; no other file in `src/` writes an exit code as a
//! number. This module only names codes: it never decides which one a command returns.
//!
//! | code | constant        | meaning |
//! | ---- | --------------- | ------- |
//! | 0    | [`SUCCESS`]     | the command did what was asked (for `plan --detailed-exitcode` and `drift`: nothing to change) |
//! | 1    | [`ERROR`]       | an error: bad input, a failed or rolled-back apply, a cancelled confirmation, a usage error |
//! | 2    | [`CHANGES`]     | only `plan --detailed-exitcode` (the plan has changes) and `drift` (drift was found) |
//! | 130  | [`INTERRUPTED`] | apply or destroy stopped by Ctrl-C (128 + SIGINT, as shells report it) |
//! | 141  | [`CLOSED_STDOUT`] | the reader of stdout went away (`stackform … \| head`); the command ended quietly (128 + SIGPIPE) |

/// The command succeeded; for `plan --detailed-exitcode` and `drift`, there is nothing to change.
pub(crate) const SUCCESS: u8 = 0;

/// Any error: invalid stack file or arguments, a cloud or state failure, an apply that failed or was
/// rolled back, a confirmation answered with something other than `yes`, a scoring call that failed.
pub(crate) const ERROR: u8 = 1;

/// Success with something to report: `plan --detailed-exitcode` found changes, or `drift` found
/// resources changed outside stackform. No other command returns it.
pub(crate) const CHANGES: u8 = 2;

/// `apply` or `destroy` was stopped by Ctrl-C (before it changed anything, or after finishing or
/// abandoning the steps in flight).
pub(crate) const INTERRUPTED: u8 = 130;

/// The reader of stdout closed the pipe before the command had written everything (`stackform state
/// history | head -3`): the command ends at once, with no message. 128 + SIGPIPE (13), what the shell
/// reports for `git log | head` and the GNU tools, which die by SIGPIPE there: a script with
/// `set -o pipefail` sees that the output was cut short, as it does for them. stackform does not die by
/// the signal itself (see `report::stdio`), it returns this code.
pub(crate) const CLOSED_STDOUT: u8 = 141;
