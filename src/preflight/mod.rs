//! Preflight: what can be known to fail before anything is created, each finding pointing at the
//! resource's place in the stack file.
//!
//! * [`access`]: least privilege from the stack alone (and, in `plan`, the grants live in the
//!   cloud): a deployment naming a storage account its identity holds no data role on is an error;
//!   a grant broader than the deployment needs is a warning. Run by `validate`, `plan` and `apply`.
//! * [`cloud`]: what the cloud can tell without changing anything (a storage account name taken, the
//!   signed-in principal unable to create role assignments at a scope, an api-version the cloud does
//!   not serve). Its questions are built from the stack and the plan, the provider asks them
//!   ([`crate::provider::PreflightQuestions`]), and the answers become findings here.
//!
//! Everything here is pure: no I/O, no printing; the CLI renders the findings. Errors stop `plan`
//! and `apply` (exit 1) before the first step; warnings are shown and change nothing.
pub(crate) mod access;
pub(crate) mod cloud;

use crate::diag::Diagnostic;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Applying would fail (or leave a deployment that cannot start): nothing is created.
    Error,
    /// Works, but grants more than the stack needs.
    Warning,
}

/// One preflight finding: a located diagnostic, its severity and a stable code for `--json`.
#[derive(Debug, Clone)]
pub struct Finding {
    pub severity: Severity,
    /// Stable kebab-case name of the check (`storage-name-taken`, `missing-data-role`, …).
    pub code: &'static str,
    pub diagnostic: Diagnostic,
}

impl Finding {
    pub(crate) fn error(code: &'static str, diagnostic: Diagnostic) -> Finding {
        Finding {
            severity: Severity::Error,
            code,
            diagnostic,
        }
    }

    pub(crate) fn warning(code: &'static str, diagnostic: Diagnostic) -> Finding {
        Finding {
            severity: Severity::Warning,
            code,
            diagnostic,
        }
    }

    /// The finding as JSON for `plan --json`: severity, code, message, `file:line:col`, help.
    pub fn to_json(&self) -> serde_json::Value {
        let (line, column) = self.diagnostic.line_col();
        serde_json::json!({
            "severity": match self.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            "code": self.code,
            "message": self.diagnostic.message,
            "file": self.diagnostic.source.display_path(),
            "line": line,
            "column": column,
            "help": self.diagnostic.help,
        })
    }
}

/// Findings sorted by place in the file, errors and warnings apart.
pub(crate) fn split(mut findings: Vec<Finding>) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    findings.sort_by_key(|f| (f.diagnostic.source.path.clone(), f.diagnostic.span.start));
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for f in findings {
        match f.severity {
            Severity::Error => errors.push(f.diagnostic),
            Severity::Warning => warnings.push(f.diagnostic),
        }
    }
    (errors, warnings)
}

#[cfg(test)]
mod tests;
