//! Checks values against the resource specs and turns them into [`Expr`]s: unknown and missing fields,
//! value types, enums, ranges, patterns, alternatives (`one_of_group`), objects written in their string
//! form, and local paths (resolved against the folder of the file that names them, and required to exist).
//! Absent optional fields get the spec's default. It reads nothing but file metadata for path checks.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::model::{Expr, ExprKind, Loc};
use super::value::{Ctx, VKey, Val, ValKind};
use crate::diag::{Diagnostic, did_you_mean};
use crate::specs::{Comparison, FieldSpec, FieldType};

/// Compiled patterns, so each spec pattern is compiled once per load.
#[derive(Default)]
pub(crate) struct Patterns(HashMap<String, Option<regex::Regex>>);

impl Patterns {
    fn is_match(&mut self, pattern: &str, text: &str) -> bool {
        let re = self
            .0
            .entry(pattern.to_string())
            .or_insert_with(|| regex::Regex::new(pattern).ok());
        // A pattern that does not compile is a spec bug caught by the spec tests; accept the value.
        re.as_ref().is_none_or(|re| re.is_match(text))
    }
}

/// Converts a value without a spec (outputs): structure only.
pub(crate) fn to_expr(val: Val) -> Expr {
    let kind = match val.kind {
        ValKind::Invalid | ValKind::Null => ExprKind::Null,
        ValKind::Bool(b) => ExprKind::Bool(b),
        ValKind::Int(i) => ExprKind::Int(i),
        ValKind::Float(f) => ExprKind::Float(f),
        ValKind::String(s) => ExprKind::String(s),
        ValKind::List(items) => ExprKind::List(items.into_iter().map(to_expr).collect()),
        ValKind::Map(entries) => ExprKind::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.name, to_expr(v)))
                .collect(),
        ),
        ValKind::Ref(r) => ExprKind::Ref(r),
        ValKind::Template(parts) => ExprKind::Template(parts),
    };
    Expr {
        kind,
        loc: val.loc,
        sensitive: val.sensitive,
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

impl Ctx<'_> {
    /// Checks the entries of a resource (or of an object field) against `fields`. `owner` names the
    /// resource in messages ("storage_account `store`"); `prefix` is the dotted path of the object;
    /// `at` is where a missing field is reported (the resource's key, or the object value).
    pub(crate) fn check_fields(
        &mut self,
        pat: &mut Patterns,
        owner: &str,
        fields: &IndexMap<String, FieldSpec>,
        prefix: &str,
        entries: Vec<(VKey, Val)>,
        at: &Loc,
    ) -> IndexMap<String, Expr> {
        let mut present: IndexMap<String, (VKey, Option<Expr>)> = IndexMap::new();
        for (key, val) in entries {
            let Some(spec) = fields.get(&key.name) else {
                let help = did_you_mean(&key.name, fields.keys().map(String::as_str))
                    .unwrap_or_else(|| {
                        format!(
                            "the fields here are: {}",
                            fields.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    });
                let shown = join(prefix, &key.name);
                self.error(
                    Diagnostic::new(
                        &key.loc.source,
                        key.loc.span,
                        format!("unknown field `{shown}` in {owner}"),
                    )
                    .label("not a field of this resource type")
                    .help(help),
                );
                continue;
            };
            let path = join(prefix, &key.name);
            let expr = self.check_value(pat, owner, &path, spec.kind, Some(spec), val);
            present.insert(key.name.clone(), (key, expr));
        }

        // Alternatives: exactly one field of each group.
        let mut groups: IndexMap<&str, Vec<&str>> = IndexMap::new();
        for (name, spec) in fields {
            if let Some(g) = &spec.one_of_group {
                groups.entry(g.as_str()).or_default().push(name.as_str());
            }
        }
        for members in groups.values() {
            // In file order, so "first" and "second" read as the user wrote them.
            let mut given: Vec<(&str, usize)> = members
                .iter()
                .filter_map(|m| present.get(*m).map(|(k, _)| (*m, k.loc.span.start)))
                .collect();
            given.sort_by_key(|(_, at)| *at);
            let given: Vec<&str> = given.into_iter().map(|(m, _)| m).collect();
            let names = members
                .iter()
                .map(|m| format!("`{}`", join(prefix, m)))
                .collect::<Vec<_>>()
                .join(" or ");
            match given.as_slice() {
                [] => self.error(
                    Diagnostic::new(
                        &at.source,
                        at.span,
                        format!("{owner} needs exactly one of {names}"),
                    )
                    .label("neither is set")
                    .help("set one of them"),
                ),
                [_] => {}
                [first, rest @ ..] => {
                    for other in rest {
                        if let Some((key, _)) = present.get(*other) {
                            let first_key = present.get(*first).map(|(k, _)| k.loc.clone());
                            let mut d = Diagnostic::new(
                                &key.loc.source,
                                key.loc.span,
                                format!(
                                    "`{}` and `{}` cannot both be set in {owner}",
                                    join(prefix, first),
                                    join(prefix, other)
                                ),
                            )
                            .label("second alternative")
                            .help(format!("set exactly one of {names}"));
                            if let Some(l) = first_key {
                                d = d.note(&l.source, l.span, "first alternative");
                            }
                            self.error(d);
                        }
                    }
                }
            }
        }

        let mut out = IndexMap::new();
        for (name, spec) in fields {
            match present.shift_remove(name) {
                Some((_, Some(expr))) => {
                    out.insert(name.clone(), expr);
                }
                Some((_, None)) => {}
                None => {
                    if spec.required {
                        let path = join(prefix, name);
                        self.error(
                            Diagnostic::new(
                                &at.source,
                                at.span,
                                format!("missing required field `{path}` in {owner}"),
                            )
                            .label(format!("`{path}` is not set"))
                            .maybe_help(
                                spec.description
                                    .lines()
                                    .next()
                                    .map(|d| format!("`{path}`: {d}")),
                            ),
                        );
                    } else if let Some(default) = &spec.default {
                        let val = Val::from_json(default, at, false);
                        let path = join(prefix, name);
                        if let Some(expr) =
                            self.check_value(pat, owner, &path, spec.kind, Some(spec), val)
                        {
                            out.insert(name.clone(), expr);
                        }
                    }
                }
            }
        }
        // Grown by doubling; a large stack holds one of these per resource for the whole run.
        out.shrink_to_fit();
        out
    }

    fn type_error(&mut self, owner: &str, path: &str, expected: FieldType, val: &Val) {
        let mut d = Diagnostic::new(
            &val.loc.source,
            val.span(),
            format!(
                "wrong type for `{path}` in {owner}: expected {}, found {}",
                expected.describe(),
                val.describe()
            ),
        )
        .label(format!("this is {}", val.describe()));
        // Hints about quoting only fit values written literally, not ones that came from a variable.
        let raw = val.loc.source.text.get(val.span().start..val.span().end);
        let literal = raw.is_some_and(|r| !r.contains("${"));
        if literal
            && matches!(expected, FieldType::String | FieldType::Path)
            && matches!(
                val.kind,
                ValKind::Int(_) | ValKind::Float(_) | ValKind::Bool(_)
            )
        {
            d = d.help("quote the value to make it a string");
        }
        let quoted = literal && raw.is_some_and(|r| r.starts_with(['"', '\'']));
        if let (ValKind::String(s), true) = (&val.kind, quoted) {
            let parses = match expected {
                FieldType::Integer => s.trim().parse::<i64>().is_ok(),
                FieldType::Number => s.trim().parse::<f64>().is_ok(),
                FieldType::Boolean => matches!(s.trim(), "true" | "false"),
                _ => false,
            };
            if parses {
                d = d.help("remove the quotes: a quoted value is a string");
            }
        }
        self.error(d);
    }

    /// Checks one value against a type and, when given, the field's constraints.
    pub(crate) fn check_value(
        &mut self,
        pat: &mut Patterns,
        owner: &str,
        path: &str,
        kind: FieldType,
        spec: Option<&FieldSpec>,
        val: Val,
    ) -> Option<Expr> {
        let sensitive = val.sensitive || spec.is_some_and(|s| s.sensitive);
        let loc = val.loc.clone();
        let make = |kind: ExprKind| {
            Some(Expr {
                kind,
                loc: loc.clone(),
                sensitive,
            })
        };
        if matches!(val.kind, ValKind::Invalid) {
            return None;
        }
        if let ValKind::Ref(r) = &val.kind {
            if kind == FieldType::Path {
                self.path_reference_error(owner, path, &val);
                return None;
            }
            if let Some(found) = self.reference_type(r)
                && !compatible(kind, found)
            {
                self.error(
                    Diagnostic::new(
                        &val.loc.source,
                        val.span(),
                        format!(
                            "wrong type for `{path}` in {owner}: expected {}, found a reference to {} (`${{{}.{}}}`)",
                            kind.describe(),
                            found.describe(),
                            r.resource,
                            r.path
                        ),
                    )
                    .label("reference of another type"),
                );
                return None;
            }
            let r = r.clone();
            return make(ExprKind::Ref(r));
        }
        match kind {
            FieldType::String => match val.kind {
                ValKind::String(ref s) => {
                    if let Some(spec) = spec {
                        self.check_string(pat, owner, path, spec, s, &val)?;
                    }
                    make(ExprKind::String(s.clone()))
                }
                ValKind::Template(parts) => make(ExprKind::Template(parts)),
                _ => {
                    self.type_error(owner, path, kind, &val);
                    None
                }
            },
            FieldType::Integer => match val.kind {
                ValKind::Int(i) => {
                    if let Some(spec) = spec {
                        self.check_range(owner, path, spec, i, &val)?;
                    }
                    make(ExprKind::Int(i))
                }
                _ => {
                    self.type_error(owner, path, kind, &val);
                    None
                }
            },
            FieldType::Number => match val.kind {
                #[expect(
                    clippy::cast_precision_loss,
                    reason = "a YAML integer used as a number"
                )]
                ValKind::Int(i) => make(ExprKind::Float(i as f64)),
                ValKind::Float(f) => make(ExprKind::Float(f)),
                _ => {
                    self.type_error(owner, path, kind, &val);
                    None
                }
            },
            FieldType::Boolean => match val.kind {
                ValKind::Bool(b) => make(ExprKind::Bool(b)),
                _ => {
                    self.type_error(owner, path, kind, &val);
                    None
                }
            },
            FieldType::Path => match &val.kind {
                ValKind::String(s) => {
                    let p = self.resolve_path(owner, path, s, &val)?;
                    make(ExprKind::Path(p))
                }
                ValKind::Template(_) => {
                    self.path_reference_error(owner, path, &val);
                    None
                }
                _ => {
                    self.type_error(owner, path, kind, &val);
                    None
                }
            },
            FieldType::Map => match val.kind {
                ValKind::Map(entries) => {
                    let value_kind = spec.and_then(|s| s.values).unwrap_or(FieldType::String);
                    let mut out = IndexMap::new();
                    let mut ok = true;
                    for (k, v) in entries {
                        let p = join(path, &k.name);
                        match self.check_value(pat, owner, &p, value_kind, None, v) {
                            Some(e) => {
                                out.insert(k.name, e);
                            }
                            None => ok = false,
                        }
                    }
                    if ok { make(ExprKind::Map(out)) } else { None }
                }
                _ => {
                    self.type_error(owner, path, kind, &val);
                    None
                }
            },
            FieldType::List => match val.kind {
                ValKind::List(items) => {
                    let item_kind = spec.and_then(|s| s.items).unwrap_or(FieldType::String);
                    let mut out = Vec::new();
                    let mut ok = true;
                    for (i, v) in items.into_iter().enumerate() {
                        let p = format!("{path}[{i}]");
                        match self.check_value(pat, owner, &p, item_kind, None, v) {
                            Some(e) => out.push(e),
                            None => ok = false,
                        }
                    }
                    if ok { make(ExprKind::List(out)) } else { None }
                }
                _ => {
                    self.type_error(owner, path, kind, &val);
                    None
                }
            },
            FieldType::Object => {
                let string_form = spec.and_then(|s| s.string_form.as_ref());
                match (val.kind, string_form) {
                    (ValKind::Map(entries), _) => {
                        let Some(nested) = spec.and_then(|s| s.fields.as_ref()) else {
                            return make(ExprKind::Map(
                                entries
                                    .into_iter()
                                    .map(|(k, v)| (k.name, super::check::to_expr(v)))
                                    .collect(),
                            ));
                        };
                        let out = self.check_fields(pat, owner, nested, path, entries, &loc);
                        make(ExprKind::Map(out))
                    }
                    (ValKind::String(s), Some(form)) => {
                        if pat.is_match(&form.pattern, &s) {
                            make(ExprKind::String(s))
                        } else {
                            let shown = if sensitive {
                                "the value".to_string()
                            } else {
                                format!("`{s}`")
                            };
                            self.error(
                                Diagnostic::new(
                                    &loc.source,
                                    loc.span,
                                    format!(
                                        "invalid `{path}` in {owner}: {shown} is not {}",
                                        form.help
                                    ),
                                )
                                .label("neither a mapping nor the string form")
                                .help(format!(
                                    "write {}, or a mapping with the fields of `{path}`",
                                    form.help
                                )),
                            );
                            None
                        }
                    }
                    (ValKind::Template(parts), Some(_)) => make(ExprKind::Template(parts)),
                    (other, form) => {
                        let v = Val {
                            kind: other,
                            loc: loc.clone(),
                            sensitive,
                        };
                        let mut d = Diagnostic::new(
                            &loc.source,
                            loc.span,
                            format!(
                                "wrong type for `{path}` in {owner}: expected a mapping, found {}",
                                v.describe()
                            ),
                        )
                        .label(format!("this is {}", v.describe()));
                        if let Some(form) = form {
                            d = d.help(format!("write a mapping, or {}", form.help));
                        }
                        self.error(d);
                        None
                    }
                }
            }
        }
    }

    fn path_reference_error(&mut self, owner: &str, path: &str, val: &Val) {
        self.error(
            Diagnostic::new(
                &val.loc.source,
                val.span(),
                format!("`{path}` in {owner} is a local path and cannot refer to a resource"),
            )
            .label("resource reference in a path")
            .help("paths are read when the plan is made; use a literal path or a `${var.x}`"),
        );
    }

    fn check_string(
        &mut self,
        pat: &mut Patterns,
        owner: &str,
        path: &str,
        spec: &FieldSpec,
        s: &str,
        val: &Val,
    ) -> Option<()> {
        let shown = if val.sensitive {
            "(sensitive)".to_string()
        } else {
            format!("`{s}`")
        };
        if let Some(allowed) = &spec.allowed
            && !allowed.iter().any(|a| a == s)
        {
            let list = allowed.join(", ");
            let help = match did_you_mean(s, allowed.iter().map(String::as_str)) {
                Some(dym) => format!("{dym} (allowed: {list})"),
                None => format!("allowed values: {list}"),
            };
            self.error(
                Diagnostic::new(
                    &val.loc.source,
                    val.span(),
                    format!("invalid value {shown} for `{path}` in {owner}"),
                )
                .label("not an allowed value")
                .help(help),
            );
            return None;
        }
        if let (Some(pattern), Some(help)) = (&spec.pattern, &spec.pattern_help)
            && !pat.is_match(pattern, s)
        {
            self.error(
                Diagnostic::new(
                    &val.loc.source,
                    val.span(),
                    format!("invalid `{path}` {shown} in {owner}: it must be {help}"),
                )
                .label("does not match the required form")
                .help(format!("`{path}` must be {help}")),
            );
            return None;
        }
        if spec.comparison() == Comparison::Role {
            self.check_role(owner, path, s, val)?;
        }
        Some(())
    }

    fn check_range(
        &mut self,
        owner: &str,
        path: &str,
        spec: &FieldSpec,
        i: i64,
        val: &Val,
    ) -> Option<()> {
        let bad = match (spec.minimum, spec.maximum) {
            (Some(min), _) if i < min => Some(format!("at least {min}")),
            (_, Some(max)) if i > max => Some(format!("at most {max}")),
            _ => None,
        };
        if let Some(bound) = bad {
            let range = match (spec.minimum, spec.maximum) {
                (Some(a), Some(b)) => format!("from {a} to {b}"),
                (Some(a), None) => format!("{a} or more"),
                (None, Some(b)) => format!("{b} or less"),
                (None, None) => String::new(),
            };
            self.error(
                Diagnostic::new(
                    &val.loc.source,
                    val.span(),
                    format!("`{path}` in {owner} must be {bound}, found {i}"),
                )
                .label("out of range")
                .help(format!("`{path}` takes values {range}")),
            );
            return None;
        }
        Some(())
    }

    /// Resolves a local path against the folder of the file that names it; it must exist.
    fn resolve_path(&mut self, owner: &str, path: &str, s: &str, val: &Val) -> Option<PathBuf> {
        if s.is_empty() {
            self.error(
                Diagnostic::new(
                    &val.loc.source,
                    val.span(),
                    format!("`{path}` in {owner} is an empty path"),
                )
                .label("empty"),
            );
            return None;
        }
        let base = val
            .loc
            .source
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let joined = base.join(s);
        let absolute = std::path::absolute(&joined).unwrap_or(joined);
        match std::fs::canonicalize(&absolute) {
            Ok(p) => Some(p),
            Err(_) => {
                self.error(
                    Diagnostic::new(
                        &val.loc.source,
                        val.span(),
                        format!(
                            "path `{s}` for `{path}` in {owner} does not exist (looked for {})",
                            absolute.display()
                        ),
                    )
                    .label("no such file or folder")
                    .help(format!(
                        "relative paths are resolved against the folder of {}",
                        val.loc.source.display_path()
                    )),
                );
                None
            }
        }
    }
}

/// Whether a value of type `found` (from a reference) fits a field of type `expected`.
fn compatible(expected: FieldType, found: FieldType) -> bool {
    match expected {
        FieldType::String => matches!(found, FieldType::String | FieldType::Path),
        FieldType::Number => matches!(found, FieldType::Number | FieldType::Integer),
        FieldType::Object => matches!(
            found,
            FieldType::Object | FieldType::Map | FieldType::String
        ),
        FieldType::Path => false,
        other => other == found,
    }
}
