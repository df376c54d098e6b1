//! Variables: their declarations under `variables:`, and their values from defaults, `--var-file`s and
//! `--var k=v` flags (later wins), each typed by the declared type. Values are literal: a `${...}` in a
//! default is refused, and values from files or flags are never re-interpolated. Problems with flags point
//! at a synthetic `<command line>` source so they render like any other diagnostic. A message about a
//! sensitive variable never shows its value.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::interp::{self, Segment};
use super::model::{Variable, VariableOrigin};
use super::source::{a_kind, read_source};
use super::value::VarEntry;
use crate::diag::{Diagnostic, SourceFile, Span, did_you_mean};
use crate::yaml::{self, Budget, Node, Value};

/// Where variable values and the environment come from. `Debug` shows names only: values may be secrets.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// `--var k=v` flags in command-line order; a later one wins.
    pub vars: Vec<(String, String)>,
    /// `--var-file` paths in command-line order; `--var` flags win over them, a later file over an
    /// earlier one.
    pub var_files: Vec<PathBuf>,
    /// The environment `${env.X}` reads. Injected so tests never touch the process environment.
    pub env: HashMap<String, String>,
    /// The stack environment chosen with `--env` (or `STACKFORM_ENV`): what `${stack.env}` gives.
    pub stack_env: Option<String>,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.vars.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("LoadOptions")
            .field("vars", &names)
            .field("var_files", &self.var_files)
            .field("env", &format_args!("({} variables)", self.env.len()))
            .field("stack_env", &self.stack_env)
            .finish()
    }
}

impl LoadOptions {
    /// Options with the process environment (variables that are not valid UTF-8 are skipped).
    pub(crate) fn with_process_env() -> LoadOptions {
        LoadOptions {
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            ..LoadOptions::default()
        }
    }
}

/// The declared type of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VarType {
    String,
    Integer,
    Number,
    Boolean,
    List,
    Map,
}

const TYPES: [&str; 6] = ["string", "integer", "number", "boolean", "list", "map"];
const DECL_KEYS: [&str; 4] = ["default", "description", "type", "sensitive"];

impl VarType {
    fn parse(s: &str) -> Option<VarType> {
        Some(match s {
            "string" => VarType::String,
            "integer" => VarType::Integer,
            "number" => VarType::Number,
            "boolean" => VarType::Boolean,
            "list" => VarType::List,
            "map" => VarType::Map,
            _ => return None,
        })
    }

    fn describe(self) -> &'static str {
        match self {
            VarType::String => "a string",
            VarType::Integer => "an integer",
            VarType::Number => "a number",
            VarType::Boolean => "a boolean",
            VarType::List => "a list",
            VarType::Map => "a map",
        }
    }

    /// Checks and normalises a value; scalars are accepted for strings and become their text.
    fn accept(self, v: serde_json::Value) -> Result<serde_json::Value, VarValueError> {
        use serde_json::Value as J;
        let found = match &v {
            J::Null => "null",
            J::Bool(_) => "a boolean",
            J::Number(n) if n.is_i64() || n.is_u64() => "an integer",
            J::Number(_) => "a number",
            J::String(_) => "a string",
            J::Array(_) => "a list",
            J::Object(_) => "a mapping",
        };
        let ok = match (self, &v) {
            (VarType::String, J::String(_)) => return Ok(v),
            (VarType::String, J::Number(n)) => return Ok(J::String(n.to_string())),
            (VarType::String, J::Bool(b)) => return Ok(J::String(b.to_string())),
            (VarType::Integer, J::Number(n)) => n.is_i64(),
            (VarType::Number, J::Number(_))
            | (VarType::Boolean, J::Bool(_))
            | (VarType::List, J::Array(_))
            | (VarType::Map, J::Object(_)) => true,
            _ => false,
        };
        if ok {
            Ok(v)
        } else {
            Err(VarValueError::WrongType {
                expected: self.describe(),
                found,
            })
        }
    }

    /// Reads a `--var` value written as text.
    fn parse_text(self, text: &str) -> Result<serde_json::Value, VarValueError> {
        use serde_json::Value as J;
        let bad_text = |expected: &'static str| VarValueError::BadText {
            expected,
            text: text.to_string(),
        };
        match self {
            VarType::String => Ok(J::String(text.to_string())),
            VarType::Integer => text
                .trim()
                .parse::<i64>()
                .map(J::from)
                .map_err(|_| bad_text("an integer")),
            VarType::Number => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(J::Number)
                .ok_or_else(|| bad_text("a number")),
            VarType::Boolean => match text.trim() {
                "true" => Ok(J::Bool(true)),
                "false" => Ok(J::Bool(false)),
                _ => Err(bad_text("true or false")),
            },
            VarType::List | VarType::Map => {
                let src = SourceFile::new("<--var value>", text);
                let node = yaml::parse(&src, Budget::default()).map_err(|errs| {
                    VarValueError::NotFlowYaml {
                        expected: self.describe(),
                        example: if self == VarType::List {
                            "[a, b]"
                        } else {
                            "{a: b}"
                        },
                        detail: errs.first().map_or(String::new(), |d| d.message.clone()),
                    }
                })?;
                self.accept(node.to_json())
            }
        }
    }
}

/// A variable value that does not fit its declared type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum VarValueError {
    #[error("expected {expected}, found {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    /// A `--var` text that does not parse as the declared scalar type; `text` is the value itself.
    #[error("expected {expected}, found `{text}`")]
    BadText {
        expected: &'static str,
        text: String,
    },
    #[error("expected {expected} written in YAML flow style, e.g. {example}; {detail}")]
    NotFlowYaml {
        expected: &'static str,
        example: &'static str,
        detail: String,
    },
}

impl VarValueError {
    /// The message without the value that was found, for sensitive variables.
    fn without_value(&self) -> String {
        match self {
            VarValueError::WrongType { expected, .. } | VarValueError::BadText { expected, .. } => {
                format!("expected {expected}")
            }
            // The parser's detail is cut where it starts describing what it found.
            VarValueError::NotFlowYaml { .. } => {
                let text = self.to_string();
                text.split(", found").next().unwrap_or_default().to_string()
            }
        }
    }
}

struct Declared {
    key_loc: (SourceFile, Span),
    ty: VarType,
    value: Option<serde_json::Value>,
    /// The declaration itself was wrong; its uses stay quiet.
    broken: bool,
    origin: VariableOrigin,
    description: Option<String>,
    sensitive: bool,
}

/// Whether `s` is a valid variable (and output) name.
pub(crate) fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 64
}

/// The `<command line>` pseudo-source that `--var` and `--var-file` problems point into.
pub(crate) struct CommandLine {
    pub src: SourceFile,
    var_spans: Vec<(Span, Span)>,
    file_spans: Vec<Span>,
}

impl CommandLine {
    pub(super) fn new(opts: &LoadOptions) -> CommandLine {
        let mut text = String::new();
        let mut var_spans = Vec::new();
        let mut file_spans = Vec::new();
        for path in &opts.var_files {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str("--var-file ");
            let start = text.len();
            text.push_str(&path.display().to_string());
            file_spans.push(Span::new(start, text.len()));
        }
        for (k, v) in &opts.vars {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str("--var ");
            let start = text.len();
            text.push_str(k);
            let name = Span::new(start, text.len());
            text.push('=');
            let vstart = text.len();
            // Newlines would break the one-line rendering; they are shown escaped.
            text.push_str(&v.replace('\n', "\\n"));
            var_spans.push((name, Span::new(vstart, text.len())));
        }
        CommandLine {
            src: SourceFile::new("<command line>", text),
            var_spans,
            file_spans,
        }
    }
}

/// Reads declarations and values. Returns the table used for substitution and the stack's variables.
pub(crate) fn resolve(
    src: &SourceFile,
    node: Option<&Node>,
    opts: &LoadOptions,
    cmd: &CommandLine,
    errors: &mut Vec<Diagnostic>,
) -> (IndexMap<String, VarEntry>, IndexMap<String, Variable>) {
    let mut decls: IndexMap<String, Declared> = IndexMap::new();
    if let Some(node) = node {
        declarations(src, node, &mut decls, errors);
    }
    for (i, path) in opts.var_files.iter().enumerate() {
        let at = cmd.file_spans.get(i).copied().unwrap_or_default();
        var_file(path, &cmd.src, at, &mut decls, errors);
    }
    for (i, (name, text)) in opts.vars.iter().enumerate() {
        let (name_span, value_span) = cmd.var_spans.get(i).copied().unwrap_or_default();
        let Some(decl) = decls.get_mut(name) else {
            let help = did_you_mean(name, decls.keys().map(String::as_str)).unwrap_or_else(|| {
                format!("declare it under `variables:` first: `{name}: {{ default: ... }}`")
            });
            errors.push(
                Diagnostic::new(
                    &cmd.src,
                    name_span,
                    format!("`--var {name}=...` sets an undeclared variable `{name}`"),
                )
                .label("not declared in the stack file")
                .help(help),
            );
            continue;
        };
        if decl.broken {
            continue;
        }
        match decl.ty.parse_text(text) {
            Ok(v) => {
                decl.value = Some(v);
                decl.origin = VariableOrigin::CommandLine;
            }
            Err(why) => {
                let what = if decl.sensitive {
                    why.without_value()
                } else {
                    why.to_string()
                };
                errors.push(
                    Diagnostic::new(
                        &cmd.src,
                        value_span,
                        format!("invalid value in `--var {name}=...`: {what}"),
                    )
                    .label(format!("variable `{name}` is {}", decl.ty.describe()))
                    .note(&decl.key_loc.0, decl.key_loc.1, "declared here"),
                );
                decl.broken = true;
            }
        }
    }
    let mut entries = IndexMap::new();
    let mut variables = IndexMap::new();
    for (name, decl) in decls {
        if decl.value.is_none() && !decl.broken {
            errors.push(
                Diagnostic::new(
                    &decl.key_loc.0,
                    decl.key_loc.1,
                    format!("variable `{name}` has no value"),
                )
                .label("no default, and not set")
                .help(format!(
                    "set it with `--var {name}=VALUE` or in a `--var-file`, or give it a `default:`"
                )),
            );
        }
        entries.insert(
            name.clone(),
            VarEntry {
                value: if decl.broken {
                    None
                } else {
                    decl.value.clone()
                },
                sensitive: decl.sensitive,
            },
        );
        if let (Some(value), false) = (decl.value, decl.broken) {
            variables.insert(
                name,
                Variable {
                    value,
                    sensitive: decl.sensitive,
                    description: decl.description,
                    origin: decl.origin,
                },
            );
        }
    }
    (entries, variables)
}

fn declarations(
    src: &SourceFile,
    node: &Node,
    decls: &mut IndexMap<String, Declared>,
    errors: &mut Vec<Diagnostic>,
) {
    let entries = match &node.value {
        Value::Null => return,
        Value::Map(m) => m,
        _ => {
            errors.push(
                Diagnostic::new(
                    src,
                    node.span,
                    format!(
                        "`variables` must be a mapping of name to declaration, found {}",
                        a_kind(node)
                    ),
                )
                .label("not a mapping"),
            );
            return;
        }
    };
    for (key, body) in entries {
        let name = &key.name;
        let mut decl = Declared {
            key_loc: (src.clone(), key.span),
            ty: VarType::String,
            value: None,
            broken: false,
            origin: VariableOrigin::Default,
            description: None,
            sensitive: false,
        };
        if !valid_name(name) {
            errors.push(
                Diagnostic::new(src, key.span, format!("invalid variable name `{name}`"))
                    .label("not a valid name")
                    .help("variable names are letters, digits and underscores, starting with a letter or underscore (at most 64)"),
            );
            decl.broken = true;
        }
        let fields: &[(yaml::Key, Node)] = match &body.value {
            Value::Null => &[],
            Value::Map(m) => m,
            _ => {
                errors.push(
                    Diagnostic::new(src, body.span, format!("variable `{name}` must be a mapping such as `{{ default: ... }}`, found {}", a_kind(body)))
                        .label("not a mapping")
                        .help(format!("write `{name}: {{ default: ... }}`")),
                );
                decl.broken = true;
                decls.insert(name.clone(), decl);
                continue;
            }
        };
        // The type first: it decides how the default is read.
        if let Some(t) = body.get("type") {
            match t.as_str().and_then(VarType::parse) {
                Some(ty) => decl.ty = ty,
                None => {
                    let shown = t
                        .as_str()
                        .map_or_else(|| a_kind(t).to_string(), |s| format!("`{s}`"));
                    errors.push(
                        Diagnostic::new(
                            src,
                            t.span,
                            format!("invalid type {shown} for variable `{name}`"),
                        )
                        .label("not a variable type")
                        .help(
                            match t.as_str().and_then(|s| did_you_mean(s, TYPES)) {
                                Some(d) => format!("{d} (types: {})", TYPES.join(", ")),
                                None => format!("types: {}", TYPES.join(", ")),
                            },
                        ),
                    );
                    decl.broken = true;
                }
            }
        }
        for (k, v) in fields {
            match k.name.as_str() {
                "type" => {}
                "description" => match v.as_str() {
                    Some(s) => decl.description = Some(s.to_string()),
                    None => errors.push(
                        Diagnostic::new(src, v.span, format!("wrong type for `description` of variable `{name}`: expected a string, found {}", a_kind(v)))
                            .label("not a string"),
                    ),
                },
                "sensitive" => match v.value {
                    Value::Bool(b) => decl.sensitive = b,
                    _ => errors.push(
                        Diagnostic::new(src, v.span, format!("wrong type for `sensitive` of variable `{name}`: expected true or false, found {}", a_kind(v)))
                            .label("not a boolean"),
                    ),
                },
                "default" => {
                    if let Some(d) = literal_problem(src, v) {
                        errors.push(d);
                        decl.broken = true;
                        continue;
                    }
                    if decl.broken {
                        continue;
                    }
                    match decl.ty.accept(unescape(v.to_json())) {
                        Ok(value) => decl.value = Some(value),
                        Err(why) => {
                            errors.push(
                                Diagnostic::new(src, v.span, format!("wrong type for the default of variable `{name}`: {why}"))
                                    .label(format!("`{name}` is {}", decl.ty.describe()))
                                    .help("change the default, or the variable's `type:`"),
                            );
                            decl.broken = true;
                        }
                    }
                }
                other => {
                    let help = did_you_mean(other, DECL_KEYS)
                        .unwrap_or_else(|| format!("a variable takes: {}", DECL_KEYS.join(", ")));
                    errors.push(
                        Diagnostic::new(src, k.span, format!("unknown key `{other}` in variable `{name}`"))
                            .label("not a variable setting")
                            .help(help),
                    );
                }
            }
        }
        decls.insert(name.clone(), decl);
    }
}

/// A `${...}` in a default is refused: defaults are literal values.
fn literal_problem(src: &SourceFile, node: &Node) -> Option<Diagnostic> {
    match &node.value {
        Value::String(s) => match interp::split(s) {
            Ok(pieces) if pieces.iter().all(|p| matches!(p.segment, Segment::Text(_))) => None,
            _ => Some(
                Diagnostic::new(src, node.span, "a variable default is a literal value; it cannot use `${...}`")
                    .label("reference in a default")
                    .help("use the reference where the value is needed, or write `$${` for a literal `${`"),
            ),
        },
        Value::Seq(items) => items.iter().find_map(|n| literal_problem(src, n)),
        Value::Map(entries) => entries.iter().find_map(|(_, n)| literal_problem(src, n)),
        _ => None,
    }
}

/// Applies the `$${` escape to every string of a literal default.
fn unescape(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::String(s) => J::String(s.replace("$${", "${")),
        J::Array(items) => J::Array(items.into_iter().map(unescape).collect()),
        J::Object(m) => J::Object(m.into_iter().map(|(k, v)| (k, unescape(v))).collect()),
        other => other,
    }
}

fn var_file(
    path: &Path,
    cmd: &SourceFile,
    at: Span,
    decls: &mut IndexMap<String, Declared>,
    errors: &mut Vec<Diagnostic>,
) {
    let src = match read_source(path) {
        Ok(src) => src,
        Err(why) => {
            errors.push(
                Diagnostic::new(
                    cmd,
                    at,
                    format!("cannot read variable file {}: {why}", path.display()),
                )
                .label("named by --var-file"),
            );
            return;
        }
    };
    let node = match yaml::parse(&src, Budget::default()) {
        Ok(n) => n,
        Err(mut errs) => {
            errors.append(&mut errs);
            return;
        }
    };
    let entries = match &node.value {
        Value::Map(m) => m,
        Value::Null => return,
        _ => {
            errors.push(
                Diagnostic::new(
                    &src,
                    node.span,
                    format!(
                        "a variable file is a mapping of variable name to value, found {}",
                        a_kind(&node)
                    ),
                )
                .label("not a mapping"),
            );
            return;
        }
    };
    for (key, value) in entries {
        let Some(decl) = decls.get_mut(&key.name) else {
            let help = did_you_mean(&key.name, decls.keys().map(String::as_str))
                .unwrap_or_else(|| "declare it under `variables:` in the stack file".to_string());
            errors.push(
                Diagnostic::new(
                    &src,
                    key.span,
                    format!("unknown variable `{}` in variable file", key.name),
                )
                .label("not declared in the stack file")
                .help(help),
            );
            continue;
        };
        if decl.broken {
            continue;
        }
        match decl.ty.accept(value.to_json()) {
            Ok(v) => {
                decl.value = Some(v);
                decl.origin = VariableOrigin::VarFile(PathBuf::from(path));
            }
            Err(why) => {
                errors.push(
                    Diagnostic::new(
                        &src,
                        value.span,
                        format!("wrong type for variable `{}`: {why}", key.name),
                    )
                    .label(format!("`{}` is {}", key.name, decl.ty.describe()))
                    .note(&decl.key_loc.0, decl.key_loc.1, "declared here"),
                );
                decl.broken = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values_are_typed_by_the_declaration() {
        assert_eq!(
            VarType::Integer.parse_text("3").unwrap(),
            serde_json::json!(3)
        );
        assert!(VarType::Integer.parse_text("3.5").is_err());
        assert_eq!(
            VarType::Boolean.parse_text("true").unwrap(),
            serde_json::json!(true)
        );
        assert_eq!(
            VarType::String.parse_text("007").unwrap(),
            serde_json::json!("007")
        );
        assert_eq!(
            VarType::List.parse_text("[a, 2]").unwrap(),
            serde_json::json!(["a", 2])
        );
        assert_eq!(
            VarType::Map.parse_text("{a: b}").unwrap(),
            serde_json::json!({"a": "b"})
        );
        assert!(VarType::Map.parse_text("[1]").is_err());
        assert!(VarType::Number.parse_text("NaN").is_err());
    }

    #[test]
    fn string_variables_accept_scalars_as_text() {
        assert_eq!(
            VarType::String.accept(serde_json::json!(7)).unwrap(),
            serde_json::json!("7")
        );
        assert_eq!(
            VarType::Integer
                .accept(serde_json::json!("7"))
                .unwrap_err()
                .to_string(),
            "expected an integer, found a string"
        );
    }

    #[test]
    fn sensitive_values_are_left_out_of_the_message() {
        let err = VarType::Integer.parse_text("s3cret").unwrap_err();
        assert_eq!(err.to_string(), "expected an integer, found `s3cret`");
        assert_eq!(err.without_value(), "expected an integer");
        let err = VarType::List.parse_text("{a: s3cret}").unwrap_err();
        assert_eq!(err.to_string(), "expected a list, found a mapping");
        assert_eq!(err.without_value(), "expected a list");
    }

    #[test]
    fn names() {
        assert!(valid_name("resource_group"));
        assert!(valid_name("_x1"));
        assert!(!valid_name("1x"));
        assert!(!valid_name("a-b"));
        assert!(!valid_name(""));
    }
}
