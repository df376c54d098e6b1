//! Turns parsed YAML nodes into [`Val`]s: values with their location, with `${var.x}` and `${env.X}`
//! substituted and `${resource.path}` kept as symbolic references (checked against the resources the stack
//! declares and the attributes their types export). It never reads files; every problem becomes a
//! located diagnostic in the shared [`Ctx`], and the offending value becomes [`ValKind::Invalid`] so later
//! checks stay quiet about it instead of piling up knock-on errors.
use std::collections::HashMap;

use indexmap::IndexMap;

use super::interp::{self, Segment};
use super::model::{Loc, Reference, TemplatePart};
use crate::diag::{Diagnostic, SourceFile, Span, did_you_mean};
use crate::specs::{FieldType, Registry};
use crate::yaml::{Node, Value};

/// A resolved variable; `value` is `None` when its own definition was wrong (already reported).
#[derive(Debug, Clone)]
pub(crate) struct VarEntry {
    pub value: Option<serde_json::Value>,
    pub sensitive: bool,
}

/// Everything value conversion needs, and the errors found so far.
pub(crate) struct Ctx<'a> {
    pub registry: &'a Registry,
    pub vars: IndexMap<String, VarEntry>,
    pub env: &'a HashMap<String, String>,
    /// What `${stack.env}` gives: the `--env` chosen, if any.
    pub stack_env: Option<&'a str>,
    /// Resource address → its type, when the type is known (each instance of a resource with
    /// `for_each` is an address of its own).
    pub resources: IndexMap<String, Option<String>>,
    /// Name of each resource with `for_each` → its instance addresses, in key order.
    pub instances: IndexMap<String, Vec<String>>,
    /// `each.key` and `each.value` while the fields of one instance are converted.
    pub each: Option<Each>,
    pub errors: Vec<Diagnostic>,
}

/// The instance of a `for_each` resource whose fields are being converted.
#[derive(Debug, Clone)]
pub(crate) struct Each {
    pub key: String,
    pub value: serde_json::Value,
}

/// A value before it is checked against a field spec.
#[derive(Debug, Clone)]
pub(crate) struct Val {
    pub kind: ValKind,
    pub loc: Loc,
    pub sensitive: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum ValKind {
    /// Already reported; accepted silently by every later check.
    Invalid,
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    List(Vec<Val>),
    Map(Vec<(VKey, Val)>),
    Ref(Reference),
    Template(Vec<TemplatePart>),
}

/// A mapping key with its location.
#[derive(Debug, Clone)]
pub(crate) struct VKey {
    pub name: String,
    pub loc: Loc,
}

/// Whether `${resource.path}` may appear in a value, and if not, what to call the place in the error.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RefPolicy {
    Allowed,
    Forbidden(&'static str),
}

impl Val {
    /// "a string", "an integer", ... for messages.
    pub(crate) fn describe(&self) -> &'static str {
        match &self.kind {
            ValKind::Invalid => "an invalid value",
            ValKind::Null => "null",
            ValKind::Bool(_) => "a boolean",
            ValKind::Int(_) => "an integer",
            ValKind::Float(_) => "a number",
            ValKind::String(_) | ValKind::Template(_) => "a string",
            ValKind::List(_) => "a list",
            ValKind::Map(_) => "a mapping",
            ValKind::Ref(_) => "a reference",
        }
    }

    pub(super) fn span(&self) -> Span {
        self.loc.span
    }

    /// Converts a plain JSON value (a variable's value, a spec default) into a value located at `loc`.
    pub(super) fn from_json(json: &serde_json::Value, loc: &Loc, sensitive: bool) -> Val {
        use serde_json::Value as J;
        let kind = match json {
            J::Null => ValKind::Null,
            J::Bool(b) => ValKind::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => ValKind::Int(i),
                None => ValKind::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => ValKind::String(s.clone()),
            J::Array(items) => ValKind::List(
                items
                    .iter()
                    .map(|v| Val::from_json(v, loc, sensitive))
                    .collect(),
            ),
            J::Object(entries) => ValKind::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        (
                            VKey {
                                name: k.clone(),
                                loc: loc.clone(),
                            },
                            Val::from_json(v, loc, sensitive),
                        )
                    })
                    .collect(),
            ),
        };
        Val {
            kind,
            loc: loc.clone(),
            sensitive,
        }
    }
}

/// The byte offset in `src` of the first character of a scalar's value, when the value is written
/// verbatim (plain, or quoted without escapes), so positions inside it map onto the file exactly.
fn value_base(src: &SourceFile, span: Span, value: &str) -> Option<usize> {
    // Scanners may include trailing blanks in a flow scalar's span.
    let raw = src
        .text
        .get(span.start..span.end)?
        .trim_end_matches([' ', '\t']);
    if raw == value {
        return Some(span.start);
    }
    let quoted = raw.len() >= 2
        && ((raw.starts_with('"') && raw.ends_with('"'))
            || (raw.starts_with('\'') && raw.ends_with('\'')));
    if quoted && raw.get(1..raw.len() - 1) == Some(value) {
        return Some(span.start + 1);
    }
    // Some scanners end a plain scalar's span early or late; accept a raw text that starts with the value.
    if raw.starts_with(value) && !raw.starts_with(['"', '\'']) {
        return Some(span.start);
    }
    None
}

/// The span of `value[start..end]` in the file, or the whole scalar when the value is not verbatim.
pub(crate) fn sub_span(
    src: &SourceFile,
    span: Span,
    value: &str,
    start: usize,
    end: usize,
) -> Span {
    match value_base(src, span, value) {
        Some(base) => Span::new(base + start, base + end),
        None => span,
    }
}

impl Ctx<'_> {
    pub(super) fn error(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    /// A setting of a top-level section (`cloud`, `backend`) that takes a string, `setting` named as
    /// in messages (`cloud.location`): `Some(Some(text))`, `Some(None)` when null, `None` when it
    /// is invalid or of another type (then the error is recorded). References are refused there.
    pub(crate) fn string_setting(
        &mut self,
        src: &SourceFile,
        node: &Node,
        section: &'static str,
        setting: &str,
    ) -> Option<Option<String>> {
        let val = self.convert(src, node, RefPolicy::Forbidden(section));
        match val.kind {
            ValKind::Invalid => None,
            ValKind::Null => Some(None),
            ValKind::String(s) => Some(Some(s)),
            _ => {
                self.error(
                    Diagnostic::new(
                        src,
                        node.span,
                        format!(
                            "wrong type for `{setting}`: expected a string, found {}",
                            val.describe()
                        ),
                    )
                    .label(format!("this is {}", val.describe())),
                );
                None
            }
        }
    }

    /// Converts a node and everything in it.
    pub(crate) fn convert(&mut self, src: &SourceFile, node: &Node, refs: RefPolicy) -> Val {
        let loc = Loc {
            source: src.clone(),
            span: node.span,
        };
        let kind = match &node.value {
            Value::Null => ValKind::Null,
            Value::Bool(b) => ValKind::Bool(*b),
            Value::Int(i) => ValKind::Int(*i),
            Value::Float(f) => ValKind::Float(*f),
            Value::String(s) => return self.interpolate(src, node.span, s, refs),
            Value::Seq(items) => {
                ValKind::List(items.iter().map(|n| self.convert(src, n, refs)).collect())
            }
            Value::Map(entries) => {
                let entries = self.merge_keys(src, entries);
                ValKind::Map(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            (
                                VKey {
                                    name: k.name.clone(),
                                    loc: Loc {
                                        source: src.clone(),
                                        span: k.span,
                                    },
                                },
                                self.convert(src, v, refs),
                            )
                        })
                        .collect(),
                )
            }
        };
        Val {
            kind,
            loc,
            sensitive: false,
        }
    }

    /// Applies YAML merge keys: `<<: *anchor` (or a list of them) adds the anchored mapping's entries that
    /// the mapping does not set itself; earlier sources win over later ones. Anything else under `<<` is
    /// reported and dropped.
    pub(crate) fn merge_keys<'n>(
        &mut self,
        src: &SourceFile,
        entries: &'n [(crate::yaml::Key, Node)],
    ) -> Vec<&'n (crate::yaml::Key, Node)> {
        if !entries.iter().any(|(k, _)| k.name == "<<") {
            return entries.iter().collect();
        }
        let mut out: Vec<&(crate::yaml::Key, Node)> =
            entries.iter().filter(|(k, _)| k.name != "<<").collect();
        for (key, value) in entries.iter().filter(|(k, _)| k.name == "<<") {
            let sources: Vec<&Node> = match &value.value {
                Value::Map(_) => vec![value],
                Value::Seq(items) if items.iter().all(|n| matches!(n.value, Value::Map(_))) => {
                    items.iter().collect()
                }
                _ => {
                    self.error(
                        Diagnostic::new(src, key.span, "`<<` merges a mapping into this one")
                            .label("not a mapping or a list of mappings")
                            .help("write `<<: *anchor` where `&anchor` marks a mapping"),
                    );
                    continue;
                }
            };
            for source in sources {
                for entry in source.as_map().unwrap_or_default() {
                    if entry.0.name != "<<" && !out.iter().any(|(k, _)| k.name == entry.0.name) {
                        out.push(entry);
                    }
                }
            }
        }
        out
    }

    /// Substitutes variables and environment values in a string scalar and keeps resource references.
    pub(crate) fn interpolate(
        &mut self,
        src: &SourceFile,
        span: Span,
        text: &str,
        refs: RefPolicy,
    ) -> Val {
        let loc = Loc {
            source: src.clone(),
            span,
        };
        let invalid = |loc: Loc| Val {
            kind: ValKind::Invalid,
            loc,
            sensitive: false,
        };
        let pieces = match interp::split(text) {
            Ok(p) => p,
            Err(errs) => {
                for e in errs {
                    let d =
                        Diagnostic::new(src, sub_span(src, span, text, e.start, e.end), e.message)
                            .label("malformed reference")
                            .maybe_help(e.help);
                    self.error(d);
                }
                return invalid(loc);
            }
        };
        // A value that is exactly one reference keeps the referenced value's type.
        if let [piece] = pieces.as_slice()
            && !matches!(piece.segment, Segment::Text(_))
        {
            let pspan = sub_span(src, span, text, piece.start, piece.end);
            return match &piece.segment {
                Segment::Var(name) => match self.var(src, pspan, name) {
                    Some((value, sensitive)) => Val::from_json(&value, &loc, sensitive),
                    None => invalid(loc),
                },
                Segment::Env(name) | Segment::Stack(name) => {
                    match self.text_value(src, pspan, &piece.segment, name) {
                        Some(v) => Val {
                            kind: ValKind::String(v),
                            loc,
                            sensitive: false,
                        },
                        None => invalid(loc),
                    }
                }
                Segment::Each(path) => match self.each_value(src, pspan, path) {
                    Some(value) => Val::from_json(&value, &loc, false),
                    None => invalid(loc),
                },
                Segment::Ref { resource, path } => {
                    match self.reference(src, pspan, resource, path, refs) {
                        Some(r) => Val {
                            kind: ValKind::Ref(r),
                            loc,
                            sensitive: false,
                        },
                        None => invalid(loc),
                    }
                }
                Segment::Text(_) => invalid(loc),
            };
        }
        let mut parts: Vec<TemplatePart> = Vec::new();
        let mut sensitive = false;
        let mut ok = true;
        let push_text = |parts: &mut Vec<TemplatePart>, t: &str| {
            if let Some(TemplatePart::Text(last)) = parts.last_mut() {
                last.push_str(t);
            } else {
                parts.push(TemplatePart::Text(t.to_string()));
            }
        };
        for piece in &pieces {
            let pspan = sub_span(src, span, text, piece.start, piece.end);
            match &piece.segment {
                Segment::Text(t) => push_text(&mut parts, t),
                Segment::Var(name) => match self.var(src, pspan, name) {
                    Some((value, s)) => {
                        sensitive |= s;
                        match scalar_text(&value) {
                            Some(t) => push_text(&mut parts, &t),
                            None => {
                                ok = false;
                                let what = if value.is_array() {
                                    "a list"
                                } else {
                                    "a mapping"
                                };
                                self.error(
                                    Diagnostic::new(src, pspan, format!("variable `{name}` is {what}; it cannot be placed inside a string"))
                                        .label("used inside a string")
                                        .help(format!("use `${{var.{name}}}` as the whole value, or declare the variable as a string")),
                                );
                            }
                        }
                    }
                    None => ok = false,
                },
                Segment::Env(name) | Segment::Stack(name) => {
                    match self.text_value(src, pspan, &piece.segment, name) {
                        Some(v) => push_text(&mut parts, &v),
                        None => ok = false,
                    }
                }
                Segment::Each(path) => match self.each_value(src, pspan, path) {
                    Some(value) => match scalar_text(&value) {
                        Some(t) => push_text(&mut parts, &t),
                        None => {
                            ok = false;
                            self.error(
                                Diagnostic::new(src, pspan, format!("`each.{path}` is a list or a mapping; it cannot be placed inside a string"))
                                    .label("used inside a string")
                                    .help(format!("use `${{each.{path}}}` as the whole value, or name one of its entries")),
                            );
                        }
                    },
                    None => ok = false,
                },
                Segment::Ref { resource, path } => {
                    match self.reference(src, pspan, resource, path, refs) {
                        Some(r) => parts.push(TemplatePart::Ref(r)),
                        None => ok = false,
                    }
                }
            }
        }
        if !ok {
            return invalid(loc);
        }
        let kind = match parts.as_slice() {
            [] => ValKind::String(String::new()),
            [TemplatePart::Text(t)] => ValKind::String(t.clone()),
            _ => ValKind::Template(parts),
        };
        Val {
            kind,
            loc,
            sensitive,
        }
    }

    fn var(
        &mut self,
        src: &SourceFile,
        span: Span,
        name: &str,
    ) -> Option<(serde_json::Value, bool)> {
        match self.vars.get(name) {
            Some(entry) => entry.value.clone().map(|v| (v, entry.sensitive)),
            None => {
                let help =
                    did_you_mean(name, self.vars.keys().map(String::as_str)).unwrap_or_else(|| {
                        format!("declare it under `variables:`, e.g. `{name}: {{ default: ... }}`")
                    });
                self.error(
                    Diagnostic::new(src, span, format!("unknown variable `{name}`"))
                        .label("not declared under `variables:`")
                        .help(help),
                );
                None
            }
        }
    }

    /// `${each.key}` or `${each.value...}` of the instance being converted; an error outside
    /// `for_each` or for a path the value does not have.
    fn each_value(
        &mut self,
        src: &SourceFile,
        span: Span,
        path: &str,
    ) -> Option<serde_json::Value> {
        let Some(each) = &self.each else {
            self.error(
                Diagnostic::new(
                    src,
                    span,
                    format!("`${{each.{path}}}` is only known in a resource with `for_each`"),
                )
                .label("no `for_each` here")
                .help("add `for_each:` (a list or a mapping) to the resource, or use a variable"),
            );
            return None;
        };
        if path == "key" {
            return Some(serde_json::Value::String(each.key.clone()));
        }
        let mut cur = &each.value;
        for part in path.split('.').skip(1) {
            match cur.get(part) {
                Some(v) => cur = v,
                None => {
                    let key = each.key.clone();
                    self.error(
                        Diagnostic::new(
                            src,
                            span,
                            format!(
                                "`${{each.{path}}}`: the value of instance `{key}` has no `{part}`"
                            ),
                        )
                        .label("not in this instance's value"),
                    );
                    return None;
                }
            }
        }
        Some(cur.clone())
    }

    /// The text of an `${env.NAME}` or `${stack.NAME}`.
    fn text_value(
        &mut self,
        src: &SourceFile,
        span: Span,
        segment: &Segment,
        name: &str,
    ) -> Option<String> {
        match segment {
            Segment::Stack(_) => self.stack_value(src, span, name),
            _ => self.env_value(src, span, name),
        }
    }

    /// `${stack.env}`: the environment `--env` (or `STACKFORM_ENV`) chose; an error without one, so
    /// two copies of a stack never share a name by accident.
    fn stack_value(&mut self, src: &SourceFile, span: Span, name: &str) -> Option<String> {
        if name != "env" {
            self.error(
                Diagnostic::new(src, span, format!("unknown stack value `{name}`"))
                    .label("not a value of the stack")
                    .help(
                        "`${stack.env}` (the environment chosen with --env) is the one stack value",
                    ),
            );
            return None;
        }
        if let Some(env) = self.stack_env {
            return Some(env.to_string());
        }
        self.error(
            Diagnostic::new(src, span, "`${stack.env}` is used but no environment was chosen")
                .label("the environment's name")
                .help("pass --env NAME (or set STACKFORM_ENV=NAME) to choose the copy of the stack to work on"),
        );
        None
    }

    fn env_value(&mut self, src: &SourceFile, span: Span, name: &str) -> Option<String> {
        match self.env.get(name) {
            Some(v) => Some(v.clone()),
            None => {
                self.error(
                    Diagnostic::new(
                        src,
                        span,
                        format!("environment variable `{name}` is not set"),
                    )
                    .label("read from the environment")
                    .help(format!(
                        "set it (`export {name}=...`), or use a variable with a default instead"
                    )),
                );
                None
            }
        }
    }

    fn reference(
        &mut self,
        src: &SourceFile,
        span: Span,
        resource: &str,
        path: &str,
        refs: RefPolicy,
    ) -> Option<Reference> {
        if let RefPolicy::Forbidden(place) = refs {
            self.error(
                Diagnostic::new(
                    src,
                    span,
                    format!("{place} cannot refer to a resource (`${{{resource}.{path}}}`)"),
                )
                .label("resource reference")
                .help(
                    "resource values are only known during apply; use a variable or a literal here",
                ),
            );
            return None;
        }
        if let Some(instances) = self.instances.get(resource) {
            let example = instances
                .first()
                .map_or_else(|| format!("{resource}[\"KEY\"]"), Clone::clone);
            self.error(
                Diagnostic::new(
                    src,
                    span,
                    format!("`{resource}` has `for_each`: `${{{resource}.{path}}}` must name one instance"),
                )
                .label("a resource with instances")
                .help(format!("e.g. `${{{example}.{path}}}`")),
            );
            return None;
        }
        let Some(type_name) = self.resources.get(resource) else {
            let help = did_you_mean(resource, self.resources.keys().map(String::as_str))
                .unwrap_or_else(|| {
                    "references name a resource under `resources:`, a `var.` or an `env.` value"
                        .to_string()
                });
            self.error(
                Diagnostic::new(
                    src,
                    span,
                    format!("unknown resource `{resource}` in reference `${{{resource}.{path}}}`"),
                )
                .label("no resource with this name")
                .help(help),
            );
            return None;
        };
        if let Some(spec) = type_name.as_deref().and_then(|t| self.registry.get(t))
            && !spec.exports(path)
        {
            let names = spec.export_names();
            let help = did_you_mean(path, names.iter().map(String::as_str))
                .unwrap_or_else(|| format!("{} exports: {}", spec.type_name, names.join(", ")));
            self.error(
                Diagnostic::new(
                    src,
                    span,
                    format!("{} `{resource}` has no attribute `{path}`", spec.type_name),
                )
                .label("not exported by this resource type")
                .help(help),
            );
            return None;
        }
        Some(Reference {
            resource: resource.to_string(),
            path: path.to_string(),
            loc: Loc {
                source: src.clone(),
                span,
            },
        })
    }

    /// The type of what a reference points at, when the spec says.
    pub(crate) fn reference_type(&self, r: &Reference) -> Option<FieldType> {
        let type_name = self.resources.get(&r.resource)?.as_deref()?;
        let spec = self.registry.get(type_name)?;
        if let Some(attr) = spec.attributes.get(&r.path) {
            return Some(attr.kind);
        }
        if let Some(field) = spec.field(&r.path) {
            return Some(field.kind);
        }
        // A key inside a map field: its values' type.
        let (head, _) = r.path.rsplit_once('.')?;
        let field = spec.field(head)?;
        if field.kind == FieldType::Map {
            return field.values;
        }
        None
    }
}

/// How a scalar variable value reads inside a string; `None` for lists and mappings.
pub(crate) fn scalar_text(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value as J;
    match value {
        J::Null => Some(String::new()),
        J::Bool(b) => Some(b.to_string()),
        J::Number(n) => Some(n.to_string()),
        J::String(s) => Some(s.clone()),
        J::Array(_) | J::Object(_) => None,
    }
}
