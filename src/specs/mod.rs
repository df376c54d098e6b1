//! Resource type specifications: the embedded `specs/*.yaml` files loaded into typed schemas.
//!
//! Everything that varies by resource type — fields, defaults, immutability, sensitivity, computed
//! attributes, the ARM path and api-version — lives in those files and drives validation, diffing, the
//! JSON Schema (`stackform schema`) and the provider's ARM mapping. This module only reads and checks them;
//! it does no I/O beyond the embedded text. A malformed spec is a bug caught by this module's tests.
use indexmap::IndexMap;
use serde::Deserialize;

use crate::diag::SourceFile;
use crate::yaml;

mod schema;

pub use schema::stack_json_schema;

/// The embedded spec files, one per resource type, in the order they are documented.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "storage_account",
        include_str!("../../specs/storage_account.yaml"),
    ),
    (
        "blob_container",
        include_str!("../../specs/blob_container.yaml"),
    ),
    ("blob", include_str!("../../specs/blob.yaml")),
    (
        "user_assigned_identity",
        include_str!("../../specs/user_assigned_identity.yaml"),
    ),
    (
        "online_endpoint",
        include_str!("../../specs/online_endpoint.yaml"),
    ),
    (
        "role_assignment",
        include_str!("../../specs/role_assignment.yaml"),
    ),
    (
        "online_deployment",
        include_str!("../../specs/online_deployment.yaml"),
    ),
];

/// A problem in an embedded spec file (a bug in stackform, never a user error).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("spec `{file}` is not valid YAML: {message}")]
    Yaml { file: String, message: String },
    #[error("spec `{file}` does not match the spec schema: {source}")]
    Shape {
        file: String,
        source: serde_json::Error,
    },
    #[error("spec `{file}`: {message}")]
    Invalid { file: String, message: String },
}

/// All resource types stackform knows, by type name.
#[derive(Debug, Clone)]
pub struct Registry {
    types: IndexMap<String, ResourceSpec>,
}

impl Registry {
    /// Loads and checks the specs embedded in the binary.
    pub fn embedded() -> Result<Registry, SpecError> {
        let mut types = IndexMap::new();
        for (name, text) in EMBEDDED {
            let spec = ResourceSpec::parse(name, text)?;
            types.insert(spec.type_name.clone(), spec);
        }
        Ok(Registry { types })
    }

    pub fn get(&self, type_name: &str) -> Option<&ResourceSpec> {
        self.types.get(type_name)
    }

    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ResourceSpec> {
        self.types.values()
    }
}

/// One resource type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    #[serde(rename = "type")]
    pub type_name: String,
    pub description: String,
    pub arm: ArmMapping,
    /// The Azure ML CLI v2 YAML schema a `file:` key may load as the base of this resource.
    #[serde(default)]
    pub aml_file: Option<AmlFileKind>,
    pub fields: IndexMap<String, FieldSpec>,
    /// Values the cloud computes; dotted names (`identity.principal_id`) are nested attributes.
    pub attributes: IndexMap<String, AttributeSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AmlFileKind {
    #[serde(rename = "managedOnlineEndpoint")]
    ManagedOnlineEndpoint,
    #[serde(rename = "managedOnlineDeployment")]
    ManagedOnlineDeployment,
}

/// How a resource type maps onto the Azure REST contract.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmMapping {
    /// ARM resource type, e.g. `Microsoft.Storage/storageAccounts`.
    pub resource_type: String,
    /// Default api-version (ARM) or `x-ms-version` (blob data plane); overridable per cloud.
    pub api_version: String,
    /// Template of the resource's id: `{subscription}`, `{resource_group}`, `{workspace}` come from the
    /// stack's cloud section, other `{placeholders}` from the resource's fields.
    pub path: String,
    /// What the resource lives under (`resource_group`, `workspace`, `scope`, or another type).
    pub parent: String,
    pub lro: Lro,
    /// Tracked resources take a `location` in their PUT body.
    pub tracked: bool,
    #[serde(default)]
    pub plane: Plane,
}

/// The long-running-operation pattern of the type's create call (contract section 3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lro {
    None,
    /// Pattern A: 202 + `Location` until done.
    Location,
    /// Pattern B: `Azure-AsyncOperation` status polling, then GET the resource.
    AsyncOperation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plane {
    #[default]
    Arm,
    Blob,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Integer,
    Number,
    Boolean,
    /// A local file or folder, relative to the file that names it.
    Path,
    /// String keys to `values`.
    Map,
    /// A list of `items`.
    List,
    /// Nested `fields`.
    Object,
}

impl FieldType {
    pub fn describe(self) -> &'static str {
        match self {
            FieldType::String => "a string",
            FieldType::Integer => "an integer",
            FieldType::Number => "a number",
            FieldType::Boolean => "true or false",
            FieldType::Path => "a file path",
            FieldType::Map => "a mapping",
            FieldType::List => "a list",
            FieldType::Object => "a mapping",
        }
    }

    pub fn is_scalar(self) -> bool {
        !matches!(self, FieldType::Map | FieldType::List | FieldType::Object)
    }
}

/// One input field of a resource type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    #[serde(rename = "type")]
    pub kind: FieldType,
    pub required: bool,
    /// A change forces replacement of the resource.
    pub immutable: bool,
    /// Shown in plans when the field forces a replacement.
    #[serde(default)]
    pub immutable_reason: Option<String>,
    /// Never printed, never stored in plain text.
    pub sensitive: bool,
    pub description: String,
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    #[serde(default, rename = "enum")]
    pub allowed: Option<Vec<String>>,
    #[serde(default)]
    pub pattern: Option<String>,
    /// Human phrasing of `pattern` for error messages.
    #[serde(default)]
    pub pattern_help: Option<String>,
    #[serde(default)]
    pub minimum: Option<i64>,
    #[serde(default)]
    pub maximum: Option<i64>,
    /// Value type of a `map`.
    #[serde(default)]
    pub values: Option<FieldType>,
    /// Item type of a `list`.
    #[serde(default)]
    pub items: Option<FieldType>,
    /// Nested fields of an `object`.
    #[serde(default)]
    pub fields: Option<IndexMap<String, FieldSpec>>,
    /// An `object` that may instead be written as one string of this form (e.g. `azureml:name:1`).
    #[serde(default)]
    pub string_form: Option<StringForm>,
    /// Fields sharing a group are alternatives: exactly one of them must be given.
    #[serde(default)]
    pub one_of_group: Option<String>,
    /// The ARM body path this field maps to (documentation for the provider and the docs).
    #[serde(default)]
    pub arm: Option<String>,
    /// The field names a resource of this type that this one lives in (its parent).
    #[serde(default)]
    pub parent_ref: Option<String>,
    /// Typical values, offered as completions by editors.
    #[serde(default)]
    pub examples: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringForm {
    pub pattern: String,
    pub help: String,
}

/// A value the cloud computes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeSpec {
    #[serde(rename = "type")]
    pub kind: FieldType,
    pub description: String,
    #[serde(default)]
    pub arm: Option<String>,
}

impl ResourceSpec {
    fn parse(file: &str, text: &str) -> Result<ResourceSpec, SpecError> {
        let src = SourceFile::new(format!("specs/{file}.yaml"), text);
        let node = yaml::parse(&src, yaml::Budget::default()).map_err(|errs| SpecError::Yaml {
            file: file.to_string(),
            message: errs
                .iter()
                .map(|d| format!("{} at {}", d.message, d.location()))
                .collect::<Vec<_>>()
                .join("; "),
        })?;
        let spec: ResourceSpec =
            serde_json::from_value(node.to_json()).map_err(|source| SpecError::Shape {
                file: file.to_string(),
                source,
            })?;
        if spec.type_name != file {
            return Err(invalid(
                file,
                format!(
                    "declares type `{}` but the file is named `{file}`",
                    spec.type_name
                ),
            ));
        }
        for (name, field) in &spec.fields {
            check_field(file, name, field)?;
        }
        for (name, attr) in &spec.attributes {
            if spec.fields.contains_key(name) {
                return Err(invalid(
                    file,
                    format!("`{name}` is both a field and an attribute"),
                ));
            }
            if !attr.kind.is_scalar() {
                return Err(invalid(
                    file,
                    format!("attribute `{name}` must be a scalar"),
                ));
            }
        }
        if !spec.attributes.contains_key("id") {
            return Err(invalid(
                file,
                "every type must export an `id` attribute".to_string(),
            ));
        }
        Ok(spec)
    }

    /// Looks up a field by dotted path (`code_configuration.scoring_script`).
    pub fn field(&self, path: &str) -> Option<&FieldSpec> {
        let mut parts = path.split('.');
        let mut field = self.fields.get(parts.next()?)?;
        for part in parts {
            field = field.fields.as_ref()?.get(part)?;
        }
        Some(field)
    }

    /// Whether `path` (after the resource name in a reference) names something this type exports:
    /// an input field (or a path inside an object or map field) or a computed attribute.
    pub fn exports(&self, path: &str) -> bool {
        if self.attributes.contains_key(path) {
            return true;
        }
        let mut parts = path.split('.');
        let Some(first) = parts.next() else {
            return false;
        };
        let Some(mut field) = self.fields.get(first) else {
            return false;
        };
        for part in parts {
            match field.kind {
                FieldType::Map => return true,
                FieldType::Object => match field.fields.as_ref().and_then(|f| f.get(part)) {
                    Some(next) => field = next,
                    None => return false,
                },
                _ => return false,
            }
        }
        true
    }

    /// Every name a reference `${res.NAME}` may use, for "did you mean" hints.
    pub fn export_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.fields.keys().cloned().collect();
        names.extend(self.attributes.keys().cloned());
        names
    }

    /// Whether `path` is a computed attribute (known only after apply).
    pub fn is_computed(&self, path: &str) -> bool {
        self.attributes.contains_key(path)
    }
}

fn invalid(file: &str, message: String) -> SpecError {
    SpecError::Invalid {
        file: file.to_string(),
        message,
    }
}

fn check_field(file: &str, name: &str, f: &FieldSpec) -> Result<(), SpecError> {
    let err = |m: String| invalid(file, format!("field `{name}`: {m}"));
    if f.required && f.default.is_some() {
        return Err(err("a required field cannot have a default".into()));
    }
    if f.immutable_reason.is_some() && !f.immutable {
        return Err(err("immutable_reason on a mutable field".into()));
    }
    match f.kind {
        FieldType::Map if f.values.is_none() => return Err(err("a map needs `values`".into())),
        FieldType::List if f.items.is_none() => return Err(err("a list needs `items`".into())),
        FieldType::Object if f.fields.is_none() => {
            return Err(err("an object needs `fields`".into()));
        }
        _ => {}
    }
    if f.allowed.is_some() && f.kind != FieldType::String {
        return Err(err("`enum` is only for strings".into()));
    }
    for pattern in [
        f.pattern.as_deref(),
        f.string_form.as_ref().map(|s| s.pattern.as_str()),
    ]
    .into_iter()
    .flatten()
    {
        regex::Regex::new(pattern).map_err(|e| err(format!("bad pattern: {e}")))?;
    }
    if f.pattern.is_some() != f.pattern_help.is_some() {
        return Err(err("`pattern` and `pattern_help` go together".into()));
    }
    if let Some(default) = &f.default {
        let ok = match f.kind {
            FieldType::String | FieldType::Path => default
                .as_str()
                .is_some_and(|s| f.allowed.as_ref().is_none_or(|a| a.iter().any(|v| v == s))),
            FieldType::Integer => default.as_i64().is_some_and(|i| {
                f.minimum.is_none_or(|m| i >= m) && f.maximum.is_none_or(|m| i <= m)
            }),
            FieldType::Number => default.is_number(),
            FieldType::Boolean => default.is_boolean(),
            FieldType::Map | FieldType::Object => default.is_object(),
            FieldType::List => default.is_array(),
        };
        if !ok {
            return Err(err(format!(
                "default {default} does not fit the field's type or constraints"
            )));
        }
    }
    if let Some(children) = &f.fields {
        for (child, spec) in children {
            check_field(file, &format!("{name}.{child}"), spec)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_spec_loads() {
        let reg = Registry::embedded().expect("embedded specs are valid");
        let names: Vec<_> = reg.type_names().collect();
        assert_eq!(
            names,
            [
                "storage_account",
                "blob_container",
                "blob",
                "user_assigned_identity",
                "online_endpoint",
                "role_assignment",
                "online_deployment"
            ]
        );
    }

    #[test]
    fn references_resolve_to_fields_attributes_and_nested_paths() {
        let reg = Registry::embedded().unwrap();
        let ep = reg.get("online_endpoint").unwrap();
        assert!(ep.exports("identity.principal_id"));
        assert!(ep.exports("name"));
        assert!(ep.exports("identity.type"));
        assert!(!ep.exports("identity.nope"));
        assert!(ep.is_computed("scoring_uri"));
        let dep = reg.get("online_deployment").unwrap();
        assert!(dep.exports("environment_variables.ANY"));
        assert_eq!(
            dep.field("code_configuration.scoring_script").unwrap().kind,
            FieldType::String
        );
    }

    #[test]
    fn immutable_fields_say_why() {
        let reg = Registry::embedded().unwrap();
        let identity = reg
            .get("online_endpoint")
            .unwrap()
            .field("identity")
            .unwrap();
        assert!(identity.immutable);
        assert_eq!(
            identity.immutable_reason.as_deref(),
            Some("identity cannot change after the endpoint is created")
        );
        assert!(
            reg.get("storage_account")
                .unwrap()
                .field("name")
                .unwrap()
                .immutable
        );
    }

    #[test]
    fn a_malformed_spec_is_refused() {
        let bad = "type: x\ndescription: d\narm: {resource_type: a, api_version: b, path: c, parent: d, lro: none, tracked: false}\nfields:\n  n: {type: string, required: true, immutable: false, sensitive: false, description: d, default: x}\nattributes:\n  id: {type: string, description: d}\n";
        let err = ResourceSpec::parse("x", bad).unwrap_err();
        assert!(
            err.to_string()
                .contains("required field cannot have a default"),
            "{err}"
        );
        let unknown = bad.replace("default: x", "colour: red");
        assert!(matches!(
            ResourceSpec::parse("x", &unknown),
            Err(SpecError::Shape { .. })
        ));
        let missing_flag = bad.replace("sensitive: false, ", "");
        assert!(matches!(
            ResourceSpec::parse("x", &missing_flag),
            Err(SpecError::Shape { .. })
        ));
    }
}
