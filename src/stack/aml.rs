//! Azure ML CLI v2 YAML files (`managedOnlineEndpoint`, `managedOnlineDeployment`) named by `file:` and
//! used as the base of a resource: their keys are mapped onto the resource's fields (`endpoint_name` →
//! `endpoint`, `identity.user_assigned_identities[].resource_id` → a list of ids), then the stack's own
//! fields are merged over them key by key. Values keep their place in the Azure ML file, so type errors
//! and relative paths refer to that file. It never writes anything and refuses keys it does not
//! understand rather than dropping them.
//!
//! Decisions: `$schema` is checked (a deployment schema on an endpoint is an error) and otherwise ignored;
//! `scale_settings: { type: default }` is accepted and ignored (the only managed scale type); an endpoint
//! file's `traffic` / `mirror_traffic` are refused, because stackform sets the endpoint's traffic from each
//! online_deployment's own `traffic:` and silently dropping a traffic map would route nothing.
use std::path::PathBuf;

use super::source::{a_kind, read_source};
use super::value::{Ctx, RefPolicy, VKey, Val, ValKind};
use crate::diag::{Diagnostic, SourceFile, did_you_mean};
use crate::specs::AmlFileKind;
use crate::yaml::{self, Budget, Node};

/// How each top-level key of an Azure ML file maps onto a stack field.
enum KeyRule {
    Field(&'static str),
    Ignore,
    ScaleSettings,
    Refuse(&'static str),
}

const ENDPOINT_KEYS: &[(&str, KeyRule)] = &[
    ("$schema", KeyRule::Ignore),
    ("name", KeyRule::Field("name")),
    ("description", KeyRule::Field("description")),
    ("tags", KeyRule::Field("tags")),
    ("auth_mode", KeyRule::Field("auth_mode")),
    ("identity", KeyRule::Field("identity")),
    (
        "public_network_access",
        KeyRule::Field("public_network_access"),
    ),
    (
        "traffic",
        KeyRule::Refuse(
            "set `traffic:` on each online_deployment instead; stackform builds the endpoint's traffic map from them",
        ),
    ),
    (
        "mirror_traffic",
        KeyRule::Refuse("mirrored traffic is not supported by stackform"),
    ),
];

const DEPLOYMENT_KEYS: &[(&str, KeyRule)] = &[
    ("$schema", KeyRule::Ignore),
    ("name", KeyRule::Field("name")),
    ("endpoint_name", KeyRule::Field("endpoint")),
    ("description", KeyRule::Field("description")),
    ("tags", KeyRule::Field("tags")),
    ("model", KeyRule::Field("model")),
    ("code_configuration", KeyRule::Field("code_configuration")),
    ("environment", KeyRule::Field("environment")),
    ("instance_type", KeyRule::Field("instance_type")),
    ("instance_count", KeyRule::Field("instance_count")),
    (
        "environment_variables",
        KeyRule::Field("environment_variables"),
    ),
    (
        "app_insights_enabled",
        KeyRule::Field("app_insights_enabled"),
    ),
    ("request_settings", KeyRule::Field("request_settings")),
    ("liveness_probe", KeyRule::Field("liveness_probe")),
    ("readiness_probe", KeyRule::Field("readiness_probe")),
    (
        "egress_public_network_access",
        KeyRule::Field("egress_public_network_access"),
    ),
    ("scale_settings", KeyRule::ScaleSettings),
    (
        "data_collector",
        KeyRule::Refuse("data collection is not supported by stackform"),
    ),
];

fn schema_name(kind: AmlFileKind) -> &'static str {
    match kind {
        AmlFileKind::ManagedOnlineEndpoint => "managedOnlineEndpoint",
        AmlFileKind::ManagedOnlineDeployment => "managedOnlineDeployment",
    }
}

fn what(kind: AmlFileKind) -> &'static str {
    match kind {
        AmlFileKind::ManagedOnlineEndpoint => "Azure ML endpoint file",
        AmlFileKind::ManagedOnlineDeployment => "Azure ML deployment file",
    }
}

/// Loads the base named by a `file:` node. Returns its absolute path and its entries under stack field
/// names (keys it refused are reported and left out, so the rest is still checked), or `None` after
/// reporting why the file cannot be read at all.
pub(crate) fn load_base(
    ctx: &mut Ctx<'_>,
    kind: AmlFileKind,
    stack_src: &SourceFile,
    file_node: &Node,
) -> Option<(PathBuf, Vec<(VKey, Val)>)> {
    let val = ctx.convert(stack_src, file_node, RefPolicy::Forbidden("`file:`"));
    let ValKind::String(rel) = &val.kind else {
        if !matches!(val.kind, ValKind::Invalid) {
            ctx.error(
                Diagnostic::new(
                    stack_src,
                    file_node.span,
                    format!(
                        "`file:` must be a path to an Azure ML YAML file, found {}",
                        val.describe()
                    ),
                )
                .label("not a path"),
            );
        }
        return None;
    };
    let base_dir = stack_src
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let joined = base_dir.join(rel);
    let absolute = std::path::absolute(&joined).unwrap_or_else(|_| joined.clone());
    let src = match read_source(&joined) {
        Ok(src) => src,
        Err(why) => {
            ctx.error(
                Diagnostic::new(
                    stack_src,
                    file_node.span,
                    format!(
                        "cannot read `file:` {rel}: {why} (looked for {})",
                        absolute.display()
                    ),
                )
                .label("named here")
                .help("relative paths are resolved against the stack file's folder"),
            );
            return None;
        }
    };
    let root = match yaml::parse(&src, Budget::default()) {
        Ok(n) => n,
        Err(errs) => {
            ctx.errors.extend(errs);
            return None;
        }
    };
    let Some(entries) = root.as_map() else {
        ctx.error(
            Diagnostic::new(
                &src,
                root.span,
                format!("an {} is a mapping, found {}", what(kind), a_kind(&root)),
            )
            .label("not a mapping"),
        );
        return None;
    };
    // The wrong kind of file would give one error per key; say it once instead.
    if let Some(schema) = root.get("$schema")
        && !check_schema(ctx, &src, kind, schema)
    {
        return None;
    }
    let rules = match kind {
        AmlFileKind::ManagedOnlineEndpoint => ENDPOINT_KEYS,
        AmlFileKind::ManagedOnlineDeployment => DEPLOYMENT_KEYS,
    };
    let mut out = Vec::new();
    for (key, node) in entries {
        let Some((_, rule)) = rules.iter().find(|(k, _)| *k == key.name) else {
            let help =
                did_you_mean(&key.name, rules.iter().map(|(k, _)| *k)).unwrap_or_else(|| {
                    format!(
                        "the {} keys stackform reads are: {}",
                        schema_name(kind),
                        rules.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                    )
                });
            ctx.error(
                Diagnostic::new(
                    &src,
                    key.span,
                    format!("unknown key `{}` in {}", key.name, what(kind)),
                )
                .label(format!("not a {} key", schema_name(kind)))
                .help(help),
            );
            continue;
        };
        match rule {
            KeyRule::Ignore => {}
            KeyRule::Refuse(why) => {
                ctx.error(
                    Diagnostic::new(
                        &src,
                        key.span,
                        format!(
                            "`{}` in an {} is not used by stackform",
                            key.name,
                            what(kind)
                        ),
                    )
                    .label("refused")
                    .help(*why),
                );
            }
            KeyRule::ScaleSettings => {
                let is_default = node
                    .get("type")
                    .and_then(Node::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case("default"))
                    && node.as_map().is_some_and(|m| m.len() == 1);
                if !is_default {
                    ctx.error(
                        Diagnostic::new(
                            &src,
                            node.span,
                            "managed online deployments only support `scale_settings: { type: default }`",
                        )
                        .label("unsupported scale settings"),
                    );
                }
            }
            KeyRule::Field(field) => {
                let mut val = ctx.convert(&src, node, RefPolicy::Allowed);
                if *field == "identity" {
                    flatten_identities(ctx, &mut val);
                }
                out.push((
                    VKey {
                        name: (*field).to_string(),
                        loc: super::model::Loc {
                            source: src.clone(),
                            span: key.span,
                        },
                    },
                    val,
                ));
            }
        }
    }
    let path = std::fs::canonicalize(&absolute).unwrap_or(absolute);
    Some((path, out))
}

/// A `$schema` naming another Azure ML schema means the wrong file was named; reports it and returns
/// false. Anything else in `$schema` is ignored.
fn check_schema(ctx: &mut Ctx<'_>, src: &SourceFile, kind: AmlFileKind, node: &Node) -> bool {
    let Some(name) = node
        .as_str()
        .and_then(|url| url.rsplit('/').next())
        .and_then(|file| file.strip_suffix(".schema.json"))
    else {
        return true;
    };
    if name != schema_name(kind) {
        ctx.error(
            Diagnostic::new(
                src,
                node.span,
                format!(
                    "this file's schema is `{name}`, but the resource needs a `{}` file",
                    schema_name(kind)
                ),
            )
            .label("wrong kind of Azure ML file")
            .help(match kind {
                AmlFileKind::ManagedOnlineEndpoint => {
                    "an online_endpoint's `file:` names an endpoint YAML"
                }
                AmlFileKind::ManagedOnlineDeployment => {
                    "an online_deployment's `file:` names a deployment YAML"
                }
            }),
        );
        return false;
    }
    true
}

/// `user_assigned_identities: [{ resource_id: X }]` → `[X]`.
fn flatten_identities(ctx: &mut Ctx<'_>, identity: &mut Val) {
    let ValKind::Map(entries) = &mut identity.kind else {
        return;
    };
    for (key, val) in entries.iter_mut() {
        if key.name != "user_assigned_identities" {
            continue;
        }
        let ValKind::List(items) = &mut val.kind else {
            continue;
        };
        for item in items.iter_mut() {
            let id = match &item.kind {
                ValKind::Map(fields) => match fields.as_slice() {
                    [(k, v)] if k.name == "resource_id" => Some(v.clone()),
                    _ => None,
                },
                ValKind::String(_) | ValKind::Template(_) | ValKind::Ref(_) | ValKind::Invalid => {
                    continue;
                }
                _ => None,
            };
            match id {
                Some(v) => *item = v,
                None => {
                    ctx.error(
                        Diagnostic::new(
                            &item.loc.source,
                            item.loc.span,
                            "each entry of `identity.user_assigned_identities` is `- resource_id: <ARM id>`",
                        )
                        .label("expected a mapping with only `resource_id`"),
                    );
                    item.kind = ValKind::Invalid;
                }
            }
        }
    }
}

/// Lays the stack's entries over the base: mappings merge key by key (recursively), anything else is
/// replaced. The stack always wins.
pub(crate) fn merge(base: Vec<(VKey, Val)>, over: Vec<(VKey, Val)>) -> Vec<(VKey, Val)> {
    let mut out = base;
    for (key, val) in over {
        match out.iter().position(|(k, _)| k.name == key.name) {
            Some(i) => {
                let (_, old) = out.remove(i);
                let merged = match (old.kind, val.kind) {
                    (ValKind::Map(a), ValKind::Map(b)) => Val {
                        kind: ValKind::Map(merge(a, b)),
                        loc: val.loc,
                        sensitive: val.sensitive || old.sensitive,
                    },
                    (_, kind) => Val {
                        kind,
                        loc: val.loc,
                        sensitive: val.sensitive,
                    },
                };
                out.insert(i, (key, merged));
            }
            None => out.push((key, val)),
        }
    }
    out
}
