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
//! * a resource with `for_each:` is one [`Resource`] per instance, keyed by its address `name["key"]`
//!   (keys are letters, digits, `_` and `-`), with `${each.key}` and `${each.value}` substituted; a
//!   reference or `depends_on` names an instance (`depends_on: [name]` names them all);
//! * `moved.from` never names an address the stack has, and no two resources move from one address;
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
mod backend;
mod check;
mod cross;
mod interp;
mod model;
mod roles;
mod shares;
mod source;
mod value;
mod vars;

pub use backend::{account_problem, container_problem, key_problem};
pub use model::*;
pub use vars::LoadOptions;

use check::Patterns;
use source::{a_kind, read_source_within};
use value::{Ctx, Each, RefPolicy, VKey, Val, ValKind};

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

const TOP_KEYS: [&str; 7] = [
    "$schema",
    "stack",
    "cloud",
    "backend",
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
/// Names a resource may not take: they start `${var.x}`, `${env.X}`, `${stack.env}` and `${each.key}`.
const RESERVED: [&str; 4] = ["var", "env", "stack", "each"];

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
    let mut root = yaml::parse(&src, Budget::with_max_bytes(max_bytes))?;
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
                "the top-level keys are stack, cloud, backend, variables, resources and outputs"
                    .to_string()
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

    let mut ctx = new_ctx(registry, var_entries, opts, errors);
    let cloud = cloud_section(&mut ctx, &src, root.get("cloud"));
    let backend = backend_of(&mut ctx, &src, &root);

    let mut pat = Patterns::default();
    // Taken out of the tree: each resource's part of it is freed once converted, so a large stack
    // never holds its whole parsed tree and its whole typed model at once.
    let resources = match take_section(&mut root, "resources") {
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
    let dir = stack_dir(&src);
    Ok(Stack {
        name: name.unwrap_or_default(),
        source: src,
        dir,
        cloud,
        backend,
        variables,
        resources,
        outputs,
    })
}

/// The context values are converted in, before any resource is read.
fn new_ctx<'a>(
    registry: &'a Registry,
    vars: IndexMap<String, value::VarEntry>,
    opts: &'a LoadOptions,
    errors: Vec<Diagnostic>,
) -> Ctx<'a> {
    Ctx {
        registry,
        vars,
        env: &opts.env,
        stack_env: opts.stack_env.as_deref(),
        resources: IndexMap::new(),
        instances: IndexMap::new(),
        each: None,
        errors,
    }
}

/// The `backend:` section of the file `root` (located at its key).
fn backend_of(ctx: &mut Ctx<'_>, src: &SourceFile, root: &Node) -> Option<BackendSection> {
    let key = match &root.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.name == "backend")
            .map(|(k, _)| k.span),
        _ => None,
    };
    backend::section(ctx, src, root.get("backend"), key)
}

/// The folder of the stack file, absolute when it can be made so.
fn stack_dir(src: &SourceFile) -> std::path::PathBuf {
    let dir = src
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The settings of a stack file, for a command that needs to know where its state is kept but not
/// its resources (`env list`): the name, the `backend:` section and, with `with_cloud`, the
/// `cloud:` section (else the default one), with variables substituted. Resources and outputs are
/// not read, so a file whose resources need `${stack.env}` loads without an environment. A variable
/// without a value is an error only when a section read here uses a variable.
pub fn load_settings(
    path: &Path,
    opts: &LoadOptions,
    registry: &Registry,
    max_bytes: usize,
    with_cloud: bool,
) -> Result<Stack, Vec<Diagnostic>> {
    let src = read_stack_source(path, max_bytes)?;
    let root = yaml::parse(&src, Budget::with_max_bytes(max_bytes))?;
    let mut errors = Vec::new();
    let name = stack_name(&src, &root, &mut errors);
    let cmd = vars::CommandLine::new(opts);
    let mut var_errors = Vec::new();
    let (var_entries, variables) =
        vars::resolve(&src, root.get("variables"), opts, &cmd, &mut var_errors);
    let sections: Vec<&Node> = [Some("backend"), with_cloud.then_some("cloud")]
        .into_iter()
        .flatten()
        .filter_map(|k| root.get(k))
        .collect();
    let uses_vars = sections.iter().any(|n| {
        src.text
            .get(n.span.start..n.span.end)
            .is_none_or(|t| t.contains("${var."))
    });
    if uses_vars {
        errors.append(&mut var_errors);
    }
    let mut ctx = new_ctx(registry, var_entries, opts, errors);
    let cloud = cloud_section(
        &mut ctx,
        &src,
        if with_cloud { root.get("cloud") } else { None },
    );
    let backend = backend_of(&mut ctx, &src, &root);
    let mut errors = ctx.errors;
    if !errors.is_empty() {
        diag::sort(&mut errors);
        return Err(errors);
    }
    Ok(Stack {
        name: name.unwrap_or_default(),
        dir: stack_dir(&src),
        source: src,
        cloud,
        backend,
        variables,
        resources: IndexMap::new(),
        outputs: IndexMap::new(),
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
        let Some(text) = ctx.string_setting(
            src,
            value,
            "the `cloud` section",
            &format!("cloud.{}", key.name),
        ) else {
            continue;
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

/// The value of `key` in the top-level mapping `root`, moved out of it (a null stays in its place).
fn take_section(root: &mut Node, key: &str) -> Option<Node> {
    let Value::Map(entries) = &mut root.value else {
        return None;
    };
    let (_, node) = entries.iter_mut().find(|(k, _)| k.name == key)?;
    let span = node.span;
    Some(std::mem::replace(
        node,
        Node {
            value: Value::Null,
            span,
        },
    ))
}

/// Converts the `resources:` section, consuming it: each resource's nodes are freed once it is
/// converted.
fn resources(
    ctx: &mut Ctx<'_>,
    pat: &mut Patterns,
    src: &SourceFile,
    node: Node,
) -> IndexMap<String, Resource> {
    let entries = match node.value {
        Value::Null => return IndexMap::new(),
        Value::Map(m) => m,
        _ => {
            ctx.error(wrong_shape(
                src,
                &node,
                "`resources`",
                "a mapping of name to resource",
                "`resources: { store: { type: storage_account, name: mystore } }`",
            ));
            return IndexMap::new();
        }
    };
    // First pass: every name and its type (and the instances of a `for_each`), so references can
    // be checked in any order.
    let mut names_ok: Vec<bool> = Vec::with_capacity(entries.len());
    let mut for_each: HashMap<usize, Vec<Each>> = HashMap::new();
    for (i, (key, body)) in entries.iter().enumerate() {
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
        names_ok.push(ok);
        match body.get("for_each") {
            Some(node) => {
                let instances = for_each_instances(ctx, src, &key.name, node);
                let addresses: Vec<String> = instances
                    .iter()
                    .map(|e| interp::instance_address(&key.name, &e.key))
                    .collect();
                for a in &addresses {
                    ctx.resources.insert(a.clone(), type_name.clone());
                }
                ctx.instances.insert(key.name.clone(), addresses);
                for_each.insert(i, instances);
            }
            None => {
                ctx.resources.insert(key.name.clone(), type_name);
            }
        }
    }
    let mut out = IndexMap::with_capacity(entries.len());
    for (i, (key, body)) in entries.into_iter().enumerate() {
        let name_ok = names_ok.get(i).copied().unwrap_or(false);
        match for_each.get(&i) {
            None => {
                if let Some(r) = resource(ctx, pat, src, &key, &body, &key.name)
                    && name_ok
                {
                    out.insert(key.name.clone(), r);
                }
            }
            Some(instances) => {
                // What does not depend on `each` would be reported once per instance: once is enough.
                let errors_before = ctx.errors.len();
                for each in instances {
                    let address = interp::instance_address(&key.name, &each.key);
                    ctx.each = Some(each.clone());
                    let r = resource(ctx, pat, src, &key, &body, &address);
                    ctx.each = None;
                    if let Some(r) = r
                        && name_ok
                    {
                        out.insert(address, r);
                    }
                }
                let tail: Vec<Diagnostic> = ctx.errors.drain(errors_before..).collect();
                let mut seen = std::collections::HashSet::new();
                ctx.errors.extend(
                    tail.into_iter()
                        .filter(|d| seen.insert((d.message.clone(), d.span))),
                );
            }
        }
    }
    check_moves(ctx, &out);
    out
}

/// A `moved.from` may not name an address the stack still has, and two resources cannot both move
/// from one address.
fn check_moves(ctx: &mut Ctx<'_>, resources: &IndexMap<String, Resource>) {
    let mut claimed: HashMap<&str, &str> = HashMap::new();
    for (address, r) in resources {
        let Some((from, loc)) = &r.moved_from else {
            continue;
        };
        if resources.contains_key(from) || ctx.instances.contains_key(from) {
            ctx.error(
                Diagnostic::new(
                    &loc.source,
                    loc.span,
                    format!("`{address}` is moved from `{from}`, which is still in the stack"),
                )
                .label("still declared")
                .help(format!(
                    "remove or rename `{from}` in the file, or remove `moved:` from `{address}`"
                )),
            );
        } else if let Some(first) = claimed.insert(from, address) {
            ctx.error(
                Diagnostic::new(
                    &loc.source,
                    loc.span,
                    format!("`{address}` and `{first}` are both moved from `{from}`"),
                )
                .label("moved twice")
                .help("one address moves to one new address"),
            );
        }
    }
}

/// The instances `for_each:` names: a list of strings or integers (each is its own key and value) or
/// a mapping (key → value). Keys become addresses (`name["key"]`), so they must be 1 to 64 letters,
/// digits, `_` and `-`, and unique; the value cannot refer to resources or be sensitive.
fn for_each_instances(ctx: &mut Ctx<'_>, src: &SourceFile, name: &str, node: &Node) -> Vec<Each> {
    let val = ctx.convert(src, node, RefPolicy::Forbidden("`for_each`"));
    if matches!(val.kind, ValKind::Invalid) {
        return Vec::new();
    }
    if val.sensitive {
        ctx.error(
            Diagnostic::new(src, node.span, format!("`for_each` of `{name}` uses a sensitive value"))
                .label("sensitive")
                .help("instance keys become addresses shown in plans and state; use a value that is not sensitive"),
        );
        return Vec::new();
    }
    let json = check::to_expr(val).resolve(&|_: &Reference| None);
    let pairs: Vec<(String, serde_json::Value)> = match json {
        Some(serde_json::Value::Array(items)) => {
            let mut pairs = Vec::new();
            for item in items {
                let key = match &item {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                    _ => {
                        ctx.error(
                            Diagnostic::new(src, node.span, format!("`for_each` of `{name}` lists {item}: a list names instances by strings"))
                                .label("not a string")
                                .help("use a list of names, or a mapping of name to value"),
                        );
                        continue;
                    }
                };
                pairs.push((key, item));
            }
            pairs
        }
        Some(serde_json::Value::Object(entries)) => entries.into_iter().collect(),
        _ => {
            ctx.error(wrong_shape(
                src,
                node,
                &format!("`for_each` of `{name}`"),
                "a list or a mapping",
                "`for_each: [a, b]` or `for_each: { a: { sku: Standard_LRS } }`",
            ));
            return Vec::new();
        }
    };
    let mut out: Vec<Each> = Vec::new();
    for (key, value) in pairs {
        if !interp::valid_instance_key(&key) {
            ctx.error(
                Diagnostic::new(src, node.span, format!("invalid instance key `{key}` in `for_each` of `{name}`"))
                    .label("not a valid instance key")
                    .help("instance keys are 1 to 64 letters, digits, `_` and `-` (they become addresses such as `name[\"key\"]`)"),
            );
            continue;
        }
        if out.iter().any(|e| e.key == key) {
            ctx.error(
                Diagnostic::new(
                    src,
                    node.span,
                    format!("`for_each` of `{name}` names instance `{key}` twice"),
                )
                .label("repeated key"),
            );
            continue;
        }
        out.push(Each { key, value });
    }
    out
}

/// One resource (or one instance of a `for_each`) at `address`: its meta keys and fields, checked.
/// `None` when its type is unknown or its body is not a mapping (already reported).
fn resource(
    ctx: &mut Ctx<'_>,
    pat: &mut Patterns,
    src: &SourceFile,
    key: &yaml::Key,
    body: &Node,
    address: &str,
) -> Option<Resource> {
    let type_name = ctx.resources.get(address).cloned().flatten()?;
    let spec = ctx.registry.get(&type_name)?;
    let fields = body.as_map()?;
    let fields = ctx.merge_keys(src, fields);
    let key_loc = Loc {
        source: src.clone(),
        span: key.span,
    };
    let owner = format!("{type_name} `{address}`");
    let mut depends_on = Vec::new();
    let mut base: Option<(PathBuf, Vec<(VKey, Val)>)> = None;
    let mut base_failed = false;
    let mut stack_fields = Vec::new();
    let mut moved_from = None;
    let mut import = None;
    for (k, v) in fields {
        match k.name.as_str() {
            "type" | "for_each" => {}
            "depends_on" => depends_on = depends(ctx, src, &key.name, v),
            "moved" => moved_from = moved(ctx, src, (&key.name, address), v),
            "import" => import = import_id(ctx, src, address, v),
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
    Some(Resource {
        name: address.to_string(),
        type_name,
        loc: key_loc,
        inputs,
        depends_on,
        base_file,
        moved_from,
        import,
    })
}

/// `moved: { from: OLD }`: the address this resource had before a rename. In a `for_each` resource,
/// `from` is read per instance (`${each.key}` works), or is a mapping of instance key → old address
/// for the instances that moved (the others have no `moved`). `OLD` must not be in the stack.
fn moved(
    ctx: &mut Ctx<'_>,
    src: &SourceFile,
    (base, address): (&str, &str),
    node: &Node,
) -> Option<(String, Loc)> {
    let example = "`moved: { from: old_name }`";
    let Some(entries) = node.as_map() else {
        ctx.error(wrong_shape(src, node, "`moved`", "a mapping", example));
        return None;
    };
    let mut from = None;
    for (k, v) in entries {
        if k.name != "from" {
            ctx.error(
                Diagnostic::new(src, k.span, format!("unknown key `{}` in `moved`", k.name))
                    .label("not a `moved` setting")
                    .help(format!("`moved` takes `from`, e.g. {example}")),
            );
            continue;
        }
        from = Some(v);
    }
    let Some(v) = from else {
        ctx.error(
            Diagnostic::new(src, node.span, "`moved` has no `from`")
                .label("missing `from:`")
                .help(format!("e.g. {example}")),
        );
        return None;
    };
    let loc = Loc {
        source: src.clone(),
        span: v.span,
    };
    // One old address per instance key.
    let v = match (&v.value, &ctx.each) {
        (Value::Map(per_key), Some(each)) => {
            let key = each.key.clone();
            let instances = ctx.instances.get(base).cloned().unwrap_or_default();
            for (k, _) in per_key {
                if !instances.contains(&interp::instance_address(base, &k.name)) {
                    ctx.error(
                        Diagnostic::new(src, k.span, format!("`moved.from` names instance `{}`, which `for_each` of `{base}` does not have", k.name))
                            .label("not an instance key")
                            .help("the keys of `from:` are instance keys of this resource; the values are the old addresses"),
                    );
                }
            }
            per_key
                .iter()
                .find(|(k, _)| k.name == key)
                .map(|(_, n)| n)?
        }
        _ => v,
    };
    let val = ctx.convert(src, v, RefPolicy::Forbidden("`moved`"));
    let text = match val.kind {
        ValKind::Invalid => return None,
        ValKind::String(s) => s,
        _ => {
            ctx.error(
                Diagnostic::new(
                    src,
                    v.span,
                    format!(
                        "`moved.from` of `{address}` must be an address (a string), found {}",
                        val.describe()
                    ),
                )
                .label("not an address")
                .help(format!("e.g. {example}, or `from: 'blue[\"a\"]'`")),
            );
            return None;
        }
    };
    if !valid_address(&text) {
        ctx.error(
            Diagnostic::new(
                src,
                v.span,
                format!("`moved.from` of `{address}`: `{text}` is not a resource address"),
            )
            .label("not an address")
            .help("an address is a resource name (`store`) or an instance (`blue[\"a\"]`)"),
        );
        return None;
    }
    if text == address {
        ctx.error(
            Diagnostic::new(src, v.span, format!("`{address}` is moved from itself"))
                .label("same address")
                .help("remove `moved:`"),
        );
        return None;
    }
    Some((text, loc))
}

/// A resource address as state and plans know it: `name` or `name["key"]`.
pub(crate) fn valid_address(text: &str) -> bool {
    match text.split_once("[\"") {
        None => valid_resource_name(text),
        Some((name, rest)) => {
            valid_resource_name(name)
                && rest
                    .strip_suffix("\"]")
                    .is_some_and(interp::valid_instance_key)
        }
    }
}

/// `import: ID`: the cloud id (or, for a blob, its URL) of an existing object to adopt at the next
/// apply. Variables and `${each...}` are substituted; resources cannot be referred to.
fn import_id(
    ctx: &mut Ctx<'_>,
    src: &SourceFile,
    address: &str,
    node: &Node,
) -> Option<(String, Loc)> {
    let val = ctx.convert(src, node, RefPolicy::Forbidden("`import`"));
    let loc = Loc {
        source: src.clone(),
        span: node.span,
    };
    match val.kind {
        ValKind::Invalid => None,
        ValKind::String(s) if !s.trim().is_empty() && !val.sensitive => Some((s, loc)),
        _ => {
            ctx.error(
                Diagnostic::new(src, node.span, format!("`import` of `{address}` must be the object's cloud id (a string), found {}", val.describe()))
                    .label("not a cloud id")
                    .help("e.g. `import: /subscriptions/…/storageAccounts/mystore` (a blob: its URL)"),
            );
            None
        }
    }
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
        if !ctx.resources.contains_key(name) && !ctx.instances.contains_key(name) {
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
        // A resource with `for_each` stands for all its instances.
        let names = match ctx.instances.get(name) {
            Some(instances) => instances.clone(),
            None => vec![name.to_string()],
        };
        for name in names {
            // A repeated name adds nothing; the first one is kept.
            if out.iter().any(|(n, _): &(String, Loc)| *n == name) {
                continue;
            }
            out.push((
                name,
                Loc {
                    source: src.clone(),
                    span: item.span,
                },
            ));
        }
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
