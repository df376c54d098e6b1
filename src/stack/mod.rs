//! Reads a stack file: YAML with spans, variables, references, Azure ML CLI YAML bases, and checks every
//! field against the resource specs. Synchronous and free of network I/O; it reads only the stack file,
//! `--var-file`s, `file:` bases, path metadata and the environment map it is given (never the process
//! environment directly). All independent problems are reported together, sorted by location; only a
//! YAML syntax error or an exceeded budget stops a file early. It never panics on any input.
//!
//! Entry point: [`load`]. Reference cycles are not checked here; the graph module does that.
//!
//! What a successful [`load`] guarantees (later stages may rely on it):
//! * every resource has a known type and every input was checked against that type's spec, with absent
//!   optional fields filled from the spec's defaults (nested object defaults too, when the object is given);
//! * every [`Reference`] names a resource in [`Stack::resources`] and a path its type exports, and every
//!   `depends_on` entry names another resource in the stack;
//! * `${var.x}` and `${env.X}` are gone: only resource references remain symbolic, as [`ExprKind::Ref`]
//!   (a whole value, which keeps the referenced type) or [`ExprKind::Template`] parts (inside a string);
//! * every `type: path` input is an absolute [`ExprKind::Path`] that existed at load time, resolved
//!   against the folder of the file that wrote it (the stack file, or the `file:` base);
//! * an object with a string form (`model`, `environment`) is either a [`ExprKind::Map`] of its fields or
//!   the [`ExprKind::String`] `azureml:NAME:VERSION`;
//! * values derived from a sensitive variable are marked `sensitive`, and no error message shows them.
//!
//! Decisions: variable values (defaults, `--var-file`, `--var`) are literal — a `${` in a default is an
//! error, values from files and flags are never re-interpolated. A string variable accepts a number or a
//! boolean as its text. `${env.X}` of an unset variable is an error, and an environment value is always a
//! string. The `cloud` section, `file:`, `depends_on` and paths cannot refer to resources.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::diag::{self, Diagnostic, SourceFile, Span, did_you_mean};
use crate::specs::Registry;
use crate::yaml::{self, Budget, Node, Value};

mod aml;
mod check;
mod cross;
mod interp;
mod model;
mod roles;
mod shares;
mod source;
mod value;
mod vars;

pub use model::*;
pub use vars::LoadOptions;

use check::Patterns;
use source::{a_kind, read_source_within};
use value::{Ctx, RefPolicy, VKey, Val, ValKind};

/// Parses one `--var NAME=VALUE` argument (the value may contain `=`).
pub fn parse_var_arg(s: &str) -> Result<(String, String), VarArgError> {
    let Some((name, value)) = s.split_once('=') else {
        return Err(VarArgError::NoEquals(s.to_string()));
    };
    let name = name.trim();
    if !vars::valid_name(name) {
        return Err(VarArgError::InvalidName(name.to_string()));
    }
    Ok((name.to_string(), value.to_string()))
}

/// A `--var` argument that is not `NAME=VALUE` with a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarArgError {
    /// There is no `=`, so the argument holds no value (it is shown whole).
    #[error("expected NAME=VALUE, found `{0}`")]
    NoEquals(String),
    #[error(
        "invalid variable name `{0}`: names are letters, digits and underscores, starting with a letter or underscore"
    )]
    InvalidName(String),
}

const TOP_KEYS: [&str; 6] = [
    "$schema",
    "stack",
    "cloud",
    "variables",
    "resources",
    "outputs",
];
const CLOUD_KEYS: [&str; 9] = [
    "kind",
    "subscription",
    "resource_group",
    "workspace",
    "location",
    "tenant",
    "arm_endpoint",
    "authority_host",
    "api_versions",
];
const OUTPUT_KEYS: [&str; 3] = ["value", "description", "sensitive"];
/// Names a resource may not take: they start `${var.x}`, `${env.X}` and `${stack.env}`.
const RESERVED: [&str; 3] = ["var", "env", "stack"];

/// "`<what>` must be <expected>, found <kind>", marked "not a mapping"/"not a list", with an example:
/// the diagnostic of every section or value that has the wrong shape.
fn wrong_shape(
    src: &SourceFile,
    node: &Node,
    what: &str,
    expected: &str,
    example: &str,
) -> Diagnostic {
    let label = if expected.starts_with("a list") {
        "not a list"
    } else {
        "not a mapping"
    };
    Diagnostic::new(
        src,
        node.span,
        format!("{what} must be {expected}, found {}", a_kind(node)),
    )
    .label(label)
    .help(format!("e.g. {example}"))
}

fn valid_resource_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && s.len() <= 64
}

fn valid_stack_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && s.len() <= 64
}

/// Loads, resolves and checks a stack file of at most [`yaml::DEFAULT_MAX_BYTES`]. On failure,
/// every problem found, sorted by location.
pub fn load(
    path: &Path,
    opts: &LoadOptions,
    registry: &Registry,
) -> Result<Stack, Vec<Diagnostic>> {
    load_within(path, opts, registry, yaml::DEFAULT_MAX_BYTES)
}

/// The `stack:` name of a stack file, read without resolving anything else (for a command that
/// needs only the name, such as `env list`, of a stack whose names use `${stack.env}`).
pub fn name_of(path: &Path, max_bytes: usize) -> Result<String, Vec<Diagnostic>> {
    let src = read_stack_source(path, max_bytes)?;
    let root = yaml::parse(&src, Budget::with_max_bytes(max_bytes))?;
    let mut errors = Vec::new();
    stack_name(&src, &root, &mut errors).ok_or(errors)
}

/// The stack file's text, or the located error that it cannot be read.
fn read_stack_source(path: &Path, max_bytes: usize) -> Result<SourceFile, Vec<Diagnostic>> {
    read_source_within(path, max_bytes).map_err(|why| {
        let empty = SourceFile::new(path, "");
        vec![
            Diagnostic::new(
                &empty,
                Span::default(),
                format!("cannot read stack file {}: {why}", path.display()),
            )
            .label("here"),
        ]
    })
}

/// [`load`] with another size limit for the stack file (`--max-file-size`); the files it names
/// (`file:` bases, variable files) keep the default.
pub fn load_within(
    path: &Path,
    opts: &LoadOptions,
    registry: &Registry,
    max_bytes: usize,
) -> Result<Stack, Vec<Diagnostic>> {
    let src = read_stack_source(path, max_bytes)?;
    let root = yaml::parse(&src, Budget::with_max_bytes(max_bytes))?;
    let mut errors = Vec::new();
    let entries: &[(yaml::Key, Node)] = match &root.value {
        Value::Map(m) => m,
        Value::Null => {
            return Err(vec![
                Diagnostic::new(&src, root.span, "the stack file is empty")
                    .label("nothing here")
                    .help("a stack file needs at least `stack:` and `resources:`"),
            ]);
        }
        _ => {
            return Err(vec![
                Diagnostic::new(
                    &src,
                    root.span,
                    format!("a stack file is a mapping, found {}", a_kind(&root)),
                )
                .label("not a mapping")
                .help("a stack file has `stack:`, `cloud:`, `variables:`, `resources:` and `outputs:`"),
            ]);
        }
    };
    for (key, _) in entries {
        if !TOP_KEYS.contains(&key.name.as_str()) {
            let help = did_you_mean(&key.name, TOP_KEYS).unwrap_or_else(|| {
                "the top-level keys are stack, cloud, variables, resources and outputs".to_string()
            });
            errors.push(
                Diagnostic::new(
                    &src,
                    key.span,
                    format!("unknown top-level key `{}`", key.name),
                )
                .label("not a stack file section")
                .help(help),
            );
        }
    }
    let name = stack_name(&src, &root, &mut errors);

    let cmd = vars::CommandLine::new(opts);
    let (var_entries, variables) =
        vars::resolve(&src, root.get("variables"), opts, &cmd, &mut errors);

    let mut ctx = Ctx {
        registry,
        vars: var_entries,
        env: &opts.env,
        stack_env: opts.stack_env.as_deref(),
        resources: IndexMap::new(),
        errors,
    };
    let cloud = cloud_section(&mut ctx, &src, root.get("cloud"));

    let mut pat = Patterns::default();
    let resources = match root.get("resources") {
        Some(node) => resources(&mut ctx, &mut pat, &src, node),
        None => {
            ctx.error(
                Diagnostic::new(
                    &src,
                    Span::new(root.span.start, root.span.start),
                    "missing `resources:` section",
                )
                .label("the stack has no resources")
                .help("add `resources:` with at least one resource, or `resources: {}`"),
            );
            IndexMap::new()
        }
    };
    cross::check(registry, &resources, &mut ctx.errors);
    shares::check(registry, &resources, &mut ctx.errors);
    let outputs = match root.get("outputs") {
        Some(node) => outputs(&mut ctx, &src, node),
        None => IndexMap::new(),
    };

    let mut errors = ctx.errors;
    if !errors.is_empty() {
        diag::sort(&mut errors);
        return Err(errors);
    }
    let dir = src
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    Ok(Stack {
        name: name.unwrap_or_default(),
        source: src,
        dir,
        cloud,
        variables,
        resources,
        outputs,
    })
}

fn stack_name(src: &SourceFile, root: &Node, errors: &mut Vec<Diagnostic>) -> Option<String> {
    let Some(node) = root.get("stack") else {
        errors.push(
            Diagnostic::new(
                src,
                Span::new(root.span.start, root.span.start),
                "missing `stack:` name",
            )
            .label("the stack has no name")
            .help("add `stack: NAME` at the top; the name picks the state file (state/NAME.json)"),
        );
        return None;
    };
    let Some(name) = node.as_str() else {
        errors.push(
            Diagnostic::new(
                src,
                node.span,
                format!(
                    "wrong type for `stack`: expected a string, found {}",
                    a_kind(node)
                ),
            )
            .label("not a string"),
        );
        return None;
    };
    if !valid_stack_name(name) {
        errors.push(
            Diagnostic::new(src, node.span, format!("invalid stack name `{name}`"))
                .label("not a valid stack name")
                .help("1 to 64 letters, digits, `_`, `.` and `-`, starting with a letter or digit (it names the state file)"),
        );
        return None;
    }
    Some(name.to_string())
}

fn cloud_section(ctx: &mut Ctx<'_>, src: &SourceFile, node: Option<&Node>) -> CloudSection {
    let mut cloud = CloudSection::default();
    let Some(node) = node else {
        return cloud;
    };
    let entries = match &node.value {
        Value::Null => return cloud,
        Value::Map(m) => m,
        _ => {
            ctx.error(wrong_shape(
                src,
                node,
                "`cloud`",
                "a mapping",
                "`cloud: { kind: local }`",
            ));
            return cloud;
        }
    };
    for (key, value) in entries {
        if !CLOUD_KEYS.contains(&key.name.as_str()) {
            let help = did_you_mean(&key.name, CLOUD_KEYS)
                .unwrap_or_else(|| format!("`cloud` takes: {}", CLOUD_KEYS.join(", ")));
            ctx.error(
                Diagnostic::new(
                    src,
                    key.span,
                    format!("unknown key `{}` in `cloud`", key.name),
                )
                .label("not a cloud setting")
                .help(help),
            );
            continue;
        }
        if key.name == "api_versions" {
            cloud.api_versions = api_versions(ctx, src, value);
            continue;
        }
        let val = ctx.convert(src, value, RefPolicy::Forbidden("the `cloud` section"));
        let text = match val.kind {
            ValKind::Invalid => continue,
            ValKind::Null => None,
            ValKind::String(s) => Some(s),
            _ => {
                ctx.error(
                    Diagnostic::new(
                        src,
                        value.span,
                        format!(
                            "wrong type for `cloud.{}`: expected a string, found {}",
                            key.name,
                            val.describe()
                        ),
                    )
                    .label(format!("this is {}", val.describe())),
                );
                continue;
            }
        };
        match key.name.as_str() {
            "kind" => {
                let Some(text) = text else { continue };
                match CloudKind::parse(&text) {
                    Some(kind) => cloud.kind = kind,
                    None => {
                        let list = CloudKind::ALL.join(", ");
                        let help = match did_you_mean(&text, CloudKind::ALL) {
                            Some(d) => format!("{d} (kinds: {list})"),
                            None => format!("kinds: {list}"),
                        };
                        ctx.error(
                            Diagnostic::new(
                                src,
                                value.span,
                                format!("unknown cloud kind `{text}`"),
                            )
                            .label("not a cloud kind")
                            .help(help),
                        );
                    }
                }
            }
            "subscription" => cloud.subscription = text,
            "resource_group" => cloud.resource_group = text,
            "workspace" => cloud.workspace = text,
            "location" => cloud.location = text,
            "tenant" => cloud.tenant = text,
            "arm_endpoint" => cloud.arm_endpoint = text,
            _ => cloud.authority_host = text,
        }
    }
    cloud
}

/// `cloud.api_versions`: resource type (`storage_account`) or ARM namespace (`Microsoft.Storage`) →
/// api-version (`2025-01-01`, optionally `-preview`), overriding the specs' defaults.
fn api_versions(
    ctx: &mut Ctx<'_>,
    src: &SourceFile,
    node: &Node,
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let Some(entries) = node.as_map() else {
        ctx.error(wrong_shape(
            src,
            node,
            "`cloud.api_versions`",
            "a mapping",
            "`api_versions: { storage_account: \"2025-01-01\", Microsoft.MachineLearningServices: \"2025-04-01\" }`",
        ));
        return out;
    };
    let types: Vec<&str> = ctx.registry.type_names().collect();
    let namespaces: Vec<String> = ctx
        .registry
        .iter()
        .filter_map(|s| s.arm.resource_type.split('/').next().map(str::to_string))
        .collect();
    for (key, value) in entries {
        let known = types.contains(&key.name.as_str())
            || namespaces.iter().any(|n| n.eq_ignore_ascii_case(&key.name));
        if !known {
            let mut candidates: Vec<&str> = types.clone();
            candidates.extend(namespaces.iter().map(String::as_str));
            let help = did_you_mean(&key.name, candidates.iter().copied()).unwrap_or_else(|| {
                format!(
                    "keys are resource types ({}) or ARM namespaces",
                    types.join(", ")
                )
            });
            ctx.error(
                Diagnostic::new(
                    src,
                    key.span,
                    format!("`{}` is not a resource type or ARM namespace", key.name),
                )
                .label("unknown")
                .help(help),
            );
            continue;
        }
        match value.as_str() {
            Some(v) if crate::api_version::is_well_formed(v) => {
                out.insert(key.name.clone(), v.to_string());
            }
            _ => ctx.error(
                Diagnostic::new(src, value.span, format!("invalid api-version for `{}`", key.name))
                    .label("not YYYY-MM-DD")
                    .help("an api-version is a date such as \"2025-01-01\", optionally ending in -preview; quote it"),
            ),
        }
    }
    out
}

fn resources(
    ctx: &mut Ctx<'_>,
    pat: &mut Patterns,
    src: &SourceFile,
    node: &Node,
) -> IndexMap<String, Resource> {
    let entries = match &node.value {
        Value::Null => return IndexMap::new(),
        Value::Map(m) => m,
        _ => {
            ctx.error(wrong_shape(
                src,
                node,
                "`resources`",
                "a mapping of name to resource",
                "`resources: { store: { type: storage_account, name: mystore } }`",
            ));
            return IndexMap::new();
        }
    };
    // First pass: every name and its type, so references can be checked in any order.
    let mut names_ok: HashMap<&str, bool> = HashMap::new();
    for (key, body) in entries {
        let mut ok = true;
        if !valid_resource_name(&key.name) || RESERVED.contains(&key.name.as_str()) {
            let why = if RESERVED.contains(&key.name.as_str()) {
                format!("`{}` is reserved for `${{{}.NAME}}`", key.name, key.name)
            } else {
                "resource names are 1 to 64 letters, digits, `_` and `-`, starting with a letter or `_`".to_string()
            };
            ctx.error(
                Diagnostic::new(
                    src,
                    key.span,
                    format!("invalid resource name `{}`", key.name),
                )
                .label("not a valid resource name")
                .help(why),
            );
            ok = false;
        }
        let type_name = resource_type(ctx, src, &key.name, key.span, body);
        if type_name.is_none() {
            ok = false;
        }
        names_ok.insert(key.name.as_str(), ok);
        ctx.resources.insert(key.name.clone(), type_name);
    }
    let mut out = IndexMap::new();
    for (key, body) in entries {
        let Some(type_name) = ctx.resources.get(&key.name).cloned().flatten() else {
            continue;
        };
        let Some(spec) = ctx.registry.get(&type_name) else {
            continue;
        };
        let Some(fields) = body.as_map() else {
            continue;
        };
        let fields = ctx.merge_keys(src, fields);
        let key_loc = Loc {
            source: src.clone(),
            span: key.span,
        };
        let owner = format!("{type_name} `{}`", key.name);
        let mut depends_on = Vec::new();
        let mut base: Option<(PathBuf, Vec<(VKey, Val)>)> = None;
        let mut base_failed = false;
        let mut stack_fields = Vec::new();
        for (k, v) in fields {
            match k.name.as_str() {
                "type" => {}
                "depends_on" => depends_on = depends(ctx, src, &key.name, v),
                "file" => match spec.aml_file {
                    Some(kind) => match aml::load_base(ctx, kind, src, v) {
                        Some(b) => base = Some(b),
                        None => base_failed = true,
                    },
                    None => {
                        let with: Vec<&str> = ctx
                            .registry
                            .iter()
                            .filter(|s| s.aml_file.is_some())
                            .map(|s| s.type_name.as_str())
                            .collect();
                        ctx.error(
                            Diagnostic::new(
                                src,
                                k.span,
                                format!("`file:` is not supported by {type_name}"),
                            )
                            .label("no Azure ML YAML base for this type")
                            .help(format!(
                                "`file:` names an Azure ML CLI YAML base for: {}",
                                with.join(", ")
                            )),
                        );
                    }
                },
                _ => {
                    let val = ctx.convert(src, v, RefPolicy::Allowed);
                    stack_fields.push((
                        VKey {
                            name: k.name.clone(),
                            loc: Loc {
                                source: src.clone(),
                                span: k.span,
                            },
                        },
                        val,
                    ));
                }
            }
        }
        let (base_file, merged) = match base {
            Some((path, base_entries)) => (Some(path), aml::merge(base_entries, stack_fields)),
            None => (None, stack_fields),
        };
        let errors_before = ctx.errors.len();
        let inputs = ctx.check_fields(pat, &owner, &spec.fields, "", merged, &key_loc);
        if base_failed {
            // Without its base, "missing required field" errors would only repeat the `file:` error.
            let tail: Vec<Diagnostic> = ctx.errors.drain(errors_before..).collect();
            ctx.errors.extend(
                tail.into_iter()
                    .filter(|d| !d.message.starts_with("missing required field")),
            );
        }
        if !names_ok.get(key.name.as_str()).copied().unwrap_or(false) {
            continue;
        }
        out.insert(
            key.name.clone(),
            Resource {
                name: key.name.clone(),
                type_name,
                loc: key_loc,
                inputs,
                depends_on,
                base_file,
            },
        );
    }
    out
}

/// Reads a resource's `type:`, reporting a missing or unknown one.
fn resource_type(
    ctx: &mut Ctx<'_>,
    src: &SourceFile,
    name: &str,
    key_span: Span,
    body: &Node,
) -> Option<String> {
    let Some(entries) = body.as_map() else {
        ctx.error(
            Diagnostic::new(
                src,
                body.span,
                format!(
                    "resource `{name}` must be a mapping with a `type:`, found {}",
                    a_kind(body)
                ),
            )
            .label("not a mapping")
            .help(format!(
                "e.g. `{name}: {{ type: storage_account, name: ... }}`"
            )),
        );
        return None;
    };
    // `type:` written here, or brought in by a merge key (`<<: *anchor`).
    let merged = entries
        .iter()
        .filter(|(k, _)| k.name == "<<")
        .flat_map(|(_, v)| match &v.value {
            Value::Seq(items) => items.iter().collect::<Vec<_>>(),
            _ => vec![v],
        })
        .filter_map(|n| n.get("type"));
    let Some(t) = entries
        .iter()
        .find(|(k, _)| k.name == "type")
        .map(|(_, v)| v)
        .or_else(|| merged.into_iter().next())
    else {
        let types: Vec<&str> = ctx.registry.type_names().collect();
        ctx.error(
            Diagnostic::new(src, key_span, format!("resource `{name}` has no `type:`"))
                .label("missing `type:`")
                .help(format!("types: {}", types.join(", "))),
        );
        return None;
    };
    let Some(type_name) = t.as_str() else {
        ctx.error(
            Diagnostic::new(
                src,
                t.span,
                format!(
                    "wrong type for `type` in resource `{name}`: expected a string, found {}",
                    a_kind(t)
                ),
            )
            .label("not a type name"),
        );
        return None;
    };
    if ctx.registry.get(type_name).is_none() {
        let types: Vec<&str> = ctx.registry.type_names().collect();
        let help = match did_you_mean(type_name, types.iter().copied()) {
            Some(d) => d,
            None => format!("types: {}", types.join(", ")),
        };
        ctx.error(
            Diagnostic::new(src, t.span, format!("unknown resource type `{type_name}`"))
                .label("not a resource type")
                .help(help),
        );
        return None;
    }
    Some(type_name.to_string())
}

fn depends(ctx: &mut Ctx<'_>, src: &SourceFile, me: &str, node: &Node) -> Vec<(String, Loc)> {
    let items = match &node.value {
        Value::Seq(items) => items.as_slice(),
        Value::Null => return Vec::new(),
        _ => {
            ctx.error(wrong_shape(
                src,
                node,
                "`depends_on`",
                "a list of resource names",
                "`depends_on: [store, reader]`",
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for item in items {
        let Some(name) = item.as_str() else {
            ctx.error(
                Diagnostic::new(
                    src,
                    item.span,
                    format!("`depends_on` lists resource names, found {}", a_kind(item)),
                )
                .label("not a name"),
            );
            continue;
        };
        if name == me {
            ctx.error(
                Diagnostic::new(src, item.span, format!("resource `{me}` depends on itself"))
                    .label("a resource cannot depend on itself")
                    .help("remove it from `depends_on`"),
            );
            continue;
        }
        if !ctx.resources.contains_key(name) {
            let help = if name.starts_with("${") {
                "write the resource's name without `${...}`, e.g. `depends_on: [store]`".to_string()
            } else {
                did_you_mean(name, ctx.resources.keys().map(String::as_str)).unwrap_or_else(|| {
                    "`depends_on` names resources under `resources:`".to_string()
                })
            };
            ctx.error(
                Diagnostic::new(
                    src,
                    item.span,
                    format!("`depends_on` names an unknown resource `{name}`"),
                )
                .label("no resource with this name")
                .help(help),
            );
            continue;
        }
        // A repeated name adds nothing; the first one is kept.
        if out.iter().any(|(n, _): &(String, Loc)| n == name) {
            continue;
        }
        out.push((
            name.to_string(),
            Loc {
                source: src.clone(),
                span: item.span,
            },
        ));
    }
    out
}

fn outputs(ctx: &mut Ctx<'_>, src: &SourceFile, node: &Node) -> IndexMap<String, Output> {
    let entries = match &node.value {
        Value::Null => return IndexMap::new(),
        Value::Map(m) => m,
        _ => {
            ctx.error(wrong_shape(
                src,
                node,
                "`outputs`",
                "a mapping of name to value",
                "`outputs: { scoring_uri: ${endpoint.scoring_uri} }`",
            ));
            return IndexMap::new();
        }
    };
    let mut out = IndexMap::new();
    for (key, body) in entries {
        let loc = Loc {
            source: src.clone(),
            span: key.span,
        };
        let mut ok = vars::valid_name(&key.name);
        if !ok {
            ctx.error(
                Diagnostic::new(src, key.span, format!("invalid output name `{}`", key.name))
                    .label("not a valid name")
                    .help("output names are letters, digits and underscores, starting with a letter or underscore"),
            );
        }
        let (value_node, description, explicit_sensitive) = match body.as_map() {
            None => (Some(body), None, false),
            Some(fields) => {
                let mut value = None;
                let mut description = None;
                let mut sensitive = false;
                for (k, v) in fields {
                    match k.name.as_str() {
                        "value" => value = Some(v),
                        "description" => match v.as_str() {
                            Some(s) => description = Some(s.to_string()),
                            None => {
                                ok = false;
                                ctx.error(
                                    Diagnostic::new(src, v.span, format!("wrong type for `description` of output `{}`: expected a string, found {}", key.name, a_kind(v)))
                                        .label("not a string"),
                                );
                            }
                        },
                        "sensitive" => match v.value {
                            Value::Bool(b) => sensitive = b,
                            _ => {
                                ok = false;
                                ctx.error(
                                    Diagnostic::new(src, v.span, format!("wrong type for `sensitive` of output `{}`: expected true or false, found {}", key.name, a_kind(v)))
                                        .label("not a boolean"),
                                );
                            }
                        },
                        other => {
                            ok = false;
                            let help = did_you_mean(other, OUTPUT_KEYS).unwrap_or_else(|| {
                                "an output is a value, or a mapping with `value`, `description` and `sensitive`".to_string()
                            });
                            ctx.error(
                                Diagnostic::new(
                                    src,
                                    k.span,
                                    format!("unknown key `{other}` in output `{}`", key.name),
                                )
                                .label("not an output setting")
                                .help(help),
                            );
                        }
                    }
                }
                if value.is_none() {
                    ok = false;
                    ctx.error(
                        Diagnostic::new(src, key.span, format!("output `{}` has no `value`", key.name))
                            .label("missing `value:`")
                            .help("write `NAME: ${resource.attribute}`, or `NAME: { value: ..., description: ... }`"),
                    );
                }
                (value, description, sensitive)
            }
        };
        let Some(value_node) = value_node else {
            continue;
        };
        let val = ctx.convert(src, value_node, RefPolicy::Allowed);
        if matches!(val.kind, ValKind::Invalid) {
            continue;
        }
        let expr = check::to_expr(val);
        let sensitive = explicit_sensitive || expr.is_sensitive();
        if ok {
            out.insert(
                key.name.clone(),
                Output {
                    value: expr,
                    description,
                    sensitive,
                    loc,
                },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;
