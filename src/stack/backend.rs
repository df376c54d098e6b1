//! The `backend:` section of a stack file: where the stack's state is kept.
//!
//! ```yaml
//! backend:
//!   kind: azure_blob          # or local (the default)
//!   account: ${var.state_account}
//!   container: tfstate
//!   key: demo.json            # default: <stack>.json
//!   resource_group: shared    # where the account is, default: the cloud's
//!   endpoint: http://127.0.0.1:10000/devstoreaccount1/   # an emulator's blob endpoint
//! ```
//!
//! Values may use `${var.…}` and `${env.…}` (not resource references: the state is needed before
//! any resource exists). Only the shape and the names are checked here, with located errors; what a
//! command's flags add and which keys a kind finally needs is `crate::backend::config`'s. A secret
//! never belongs here: an access key written in the section is refused with the variable to use.
use crate::diag::{Diagnostic, SourceFile, Span, did_you_mean};
use crate::yaml::{Node, Value};

use super::model::{BackendKind, BackendSection};
use super::source::a_kind;
use super::value::Ctx;

const BACKEND_KEYS: [&str; 6] = [
    "kind",
    "account",
    "container",
    "key",
    "resource_group",
    "endpoint",
];

/// Keys that would hold a secret: refused with where the secret goes instead.
const SECRET_KEYS: [&str; 4] = ["access_key", "sas_token", "client_secret", "key_value"];

/// Reads the `backend:` section (`None` when there is none).
pub(super) fn section(
    ctx: &mut Ctx<'_>,
    src: &SourceFile,
    node: Option<&Node>,
    key_span: Option<Span>,
) -> Option<BackendSection> {
    let node = node?;
    let entries = match &node.value {
        Value::Null => return None,
        Value::Map(m) => m,
        _ => {
            ctx.error(
                Diagnostic::new(
                    src,
                    node.span,
                    format!("`backend` must be a mapping, found {}", a_kind(node)),
                )
                .label("not a mapping")
                .help("e.g. `backend: { kind: azure_blob, account: mystate, container: tfstate }`"),
            );
            return None;
        }
    };
    let mut out = BackendSection {
        kind: None,
        span: node.span,
        account: None,
        container: None,
        key: None,
        resource_group: None,
        endpoint: None,
    };
    for (key, value) in entries {
        let name = key.name.as_str();
        if SECRET_KEYS.contains(&name) {
            // Pointed at the section's key, not at the line holding the secret, so the snippet
            // never shows it.
            let (line, _) = src.line_col(key.span.start);
            ctx.error(
                Diagnostic::new(
                    src,
                    key_span.unwrap_or(Span::new(node.span.start, node.span.start)),
                    format!(
                        "`backend.{name}` (line {line}) would put a secret in the stack file; remove it"
                    ),
                )
                .label("holds a secret")
                .help("give an account key in the environment (ARM_ACCESS_KEY), or let the cloud login reach the container (Storage Blob Data Contributor)"),
            );
            continue;
        }
        if !BACKEND_KEYS.contains(&name) {
            let help = did_you_mean(name, BACKEND_KEYS)
                .unwrap_or_else(|| format!("`backend` takes: {}", BACKEND_KEYS.join(", ")));
            ctx.error(
                Diagnostic::new(src, key.span, format!("unknown key `{name}` in `backend`"))
                    .label("not a backend setting")
                    .help(help),
            );
            continue;
        }
        let Some(Some(text)) = ctx.string_setting(
            src,
            value,
            "the `backend` section",
            &format!("backend.{name}"),
        ) else {
            continue;
        };
        let mut bad = |message: String, help: &str| {
            ctx.error(
                Diagnostic::new(src, value.span, message)
                    .label("invalid")
                    .help(help.to_string()),
            );
        };
        match name {
            "kind" => match BackendKind::parse(&text) {
                Some(kind) => out.kind = Some(kind),
                None => {
                    let list = BackendKind::ALL.join(", ");
                    let help = match did_you_mean(&text, BackendKind::ALL) {
                        Some(d) => format!("{d} (kinds: {list})"),
                        None => format!("kinds: {list}"),
                    };
                    bad(format!("unknown backend kind `{text}`"), &help);
                }
            },
            "account" => match account_problem(&text) {
                Some(p) => bad(
                    format!("`{text}` is not a storage account name: {p}"),
                    "3 to 24 lowercase letters and digits",
                ),
                None => out.account = Some(text),
            },
            "container" => match container_problem(&text) {
                Some(p) => bad(
                    format!("`{text}` is not a blob container name: {p}"),
                    "3 to 63 lowercase letters, digits and single dashes, starting and ending with a letter or digit",
                ),
                None => out.container = Some(text),
            },
            "key" => match key_problem(&text) {
                Some(p) => bad(
                    format!("`{text}` is not a state blob name: {p}"),
                    "a blob name such as `demo.json` or `team/demo.json`",
                ),
                None => out.key = Some(text),
            },
            "resource_group" => out.resource_group = Some(text),
            _ => match url::Url::parse(&text) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => out.endpoint = Some(text),
                _ => bad(
                    format!("`{text}` is not a blob endpoint URL"),
                    "e.g. `http://127.0.0.1:10000/devstoreaccount1/` for Azurite",
                ),
            },
        }
    }
    Some(out)
}

/// Why `name` is not a storage account name (Microsoft.Storage: 3-24 lowercase letters and digits).
pub fn account_problem(name: &str) -> Option<&'static str> {
    if !(3..=24).contains(&name.len()) {
        return Some("it must be 3 to 24 characters long");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Some("it may hold only lowercase letters and digits");
    }
    None
}

/// Why `name` is not a container name (3-63 lowercase letters, digits and single dashes, starting
/// and ending with a letter or digit; learn.microsoft.com "Naming and Referencing Containers").
pub fn container_problem(name: &str) -> Option<&'static str> {
    if !(3..=63).contains(&name.len()) {
        return Some("it must be 3 to 63 characters long");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Some("it may hold only lowercase letters, digits and dashes");
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Some("dashes must be single and between letters or digits");
    }
    None
}

/// Why `key` is not usable as the state blob's name: 1 to 1,000 characters, no empty path
/// segment, no `.` or `..` segment, no control character, and not ending in `.lock`, `.journal` or
/// `.history` (the names of the blobs kept beside it).
pub fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() || key.len() > 1000 {
        return Some("it must be 1 to 1000 characters long");
    }
    if key.chars().any(char::is_control) || key.contains('\\') {
        return Some("it may not hold control characters or backslashes");
    }
    if key
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Some("it may not have empty, `.` or `..` path segments");
    }
    if [".lock", ".journal", ".history"]
        .iter()
        .any(|s| key.ends_with(s))
    {
        return Some("it may not end in .lock, .journal or .history (the blobs kept beside it)");
    }
    None
}
