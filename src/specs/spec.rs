//! The typed schema of one spec file (`specs/*.yaml`): a resource type's fields, attributes and ARM
//! mapping, how it is parsed and checked, and the questions the rest of stackform asks of it (a field by
//! dotted path, its wire form, what a rollback restores). Pure data and functions; it never names a
//! resource type in its logic.
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::compare::Comparison;
use crate::diag::SourceFile;
use crate::yaml;

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
    /// Values every body of the type carries whatever the inputs (`properties.endpointComputeType:
    /// Managed`), by dotted ARM path.
    #[serde(default)]
    pub fixed: IndexMap<String, serde_json::Value>,
    /// What takes effect only after the cloud has replicated it; resources that depend on a changed one
    /// wait according to the apply's propagation policy.
    #[serde(default)]
    pub propagation: Option<Propagation>,
    /// The resource's name is derived from its identifying inputs (a `{uuid5(…)}` last path segment),
    /// so an object found at that name is this very resource: a create adopts it, as ARM does, instead
    /// of refusing to take over an object the state does not know.
    #[serde(default)]
    pub(crate) adopt_existing: bool,
    /// Where stackform writes the stamp naming the stack that owns an object (its lineage and name):
    /// the string-map field of that name (`tags`, `metadata`: two entries), the string field of that
    /// name (`description`: a marker after the user's text), or, for the blob data plane without such a
    /// field, the blob's `x-ms-meta-*` `metadata`. `None`: the type carries no stamp.
    #[serde(default)]
    pub(crate) stamp: Option<String>,
    /// The collection that lists resources of this type together, which refresh reads instead of one
    /// GET per resource.
    #[serde(default)]
    pub list: Option<ListMapping>,
}

/// How resources of a type are read together: one listing (with its paging) per group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListMapping {
    /// Template of the collection's path (ARM) with the same placeholders as `path`; for the blob data
    /// plane, the container whose blobs are listed.
    pub path: String,
    /// What the resources listed together share (`resource_group`, a field such as `account`): one
    /// listing per distinct value. Must appear as a placeholder of `path`.
    pub group_by: String,
    /// Whether an entry of the listing carries everything the observer reads; when false, each
    /// resource the listing finds is then read by GET (the listing still tells what is gone).
    pub complete: bool,
}

/// A change the cloud applies only after replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Propagation {
    /// A role grant: data-plane checks see it minutes after the assignment exists.
    Role,
}

/// How a value is written on the wire when that differs from the stack's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireFormat {
    /// A number of `unit`s in the stack, an ISO 8601 duration (`PT10S`) on the wire.
    Iso8601Duration,
}

/// The unit of a number written as a duration on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurationUnit {
    #[default]
    Seconds,
    Milliseconds,
}

impl DurationUnit {
    fn per_second(self) -> f64 {
        match self {
            DurationUnit::Seconds => 1.0,
            DurationUnit::Milliseconds => 1000.0,
        }
    }
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
    pub(crate) fn describe(self) -> &'static str {
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

    pub(crate) fn is_scalar(self) -> bool {
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
    /// The ARM body path this field maps to; a nested field's path is relative to its object's. The
    /// provider's common body builder and observer place and read the value there.
    #[serde(default)]
    pub arm: Option<String>,
    /// ARM spellings of enum values whose wire form differs (`aml_token: AMLToken`); a value not
    /// listed travels as written, and a value read back matches the enum without regard to case.
    #[serde(default)]
    pub wire: Option<IndexMap<String, String>>,
    /// How the value is written on the wire when that differs from the stack's form.
    #[serde(default)]
    pub format: Option<WireFormat>,
    /// The unit of a duration (`format: iso8601_duration`); seconds when absent.
    #[serde(default)]
    pub unit: Option<DurationUnit>,
    /// How values compare (when planning, and which spelling the observer keeps); when absent an enum
    /// compares as a word, a path as a path, anything else exactly.
    #[serde(default)]
    pub compare: Option<Comparison>,
    /// Why the type's own Rust maps this field: the common body builder and observer leave it alone.
    #[serde(default)]
    pub custom: Option<String>,
    /// The attribute holding the id of the registered version this field was deployed as: a rollback
    /// restores the field as that version (`azureml:NAME:VERSION`), not as the local folder, which may
    /// have changed since.
    #[serde(default)]
    pub restore_from: Option<String>,
    /// The field names a resource of this type that this one lives in (its parent).
    #[serde(default)]
    pub parent_ref: Option<String>,
    /// Typical values, offered as completions by editors.
    #[serde(default)]
    pub examples: Option<Vec<String>>,
    /// The resource's code runs as the identity of the resource this field names (its `parent_ref`),
    /// so it waits for every role grant to that identity's principals (an inferred graph edge).
    #[serde(default)]
    pub runs_as: bool,
    /// A list of ids of identities attached to the resource: their principals are the resource's too.
    #[serde(default)]
    pub attached_identities: bool,
    /// The principal a grant (a type with `arm.propagation: role`) gives its role to.
    #[serde(default)]
    pub grantee: bool,
    /// For a `path` field whose bytes the cloud stores (a blob's `source`): the attribute holding the
    /// hex SHA-256 of what the cloud holds. Refresh reads the live text when it no longer matches the
    /// file, and the planner compares the file with the live bytes by that hash.
    #[serde(default)]
    pub(crate) content_hash: Option<String>,
    /// The field is one entry of a map held by another resource (a deployment's `traffic` share in its
    /// endpoint's `properties.traffic`): the planner gathers the entries of every resource naming the
    /// same owner into one map change, and the resource's own create, update and delete leave it alone.
    #[serde(default)]
    pub aggregate: Option<Aggregate>,
}

/// Where an `aggregate` field goes: the map at ARM path `map` in the body of the resource that the
/// field `owner` names (of that field's `parent_ref` type), under the key that the field `key` holds.
/// The owner's map must add up to 100 or be empty (the only kind of map this describes today).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    /// ARM path of the map in the owner's body (`properties.traffic`).
    pub map: String,
    /// The field of this resource that names the owner (`endpoint`).
    pub owner: String,
    /// The field of this resource whose value is its key in the map (`name`).
    pub key: String,
}

impl FieldSpec {
    /// How values of this field compare: as declared, else by kind (enum → word, path → path).
    pub(crate) fn comparison(&self) -> Comparison {
        match (self.compare, self.kind) {
            (Some(c), _) => c,
            (None, FieldType::Path) => Comparison::Path,
            (None, _) if self.allowed.is_some() => Comparison::Word,
            (None, _) => Comparison::Exact,
        }
    }

    /// A stack value in its wire form: an enum word in its ARM spelling, a duration as ISO 8601.
    pub(crate) fn to_wire(&self, value: &Value) -> Value {
        if let (Some(wire), Some(s)) = (&self.wire, value.as_str())
            && let Some(spelled) = wire.get(s)
        {
            return Value::String(spelled.clone());
        }
        if self.format == Some(WireFormat::Iso8601Duration)
            && let Some(n) = value.as_f64()
        {
            let seconds = n / self.unit.unwrap_or_default().per_second();
            return Value::String(crate::iso8601::format_seconds(seconds));
        }
        value.clone()
    }

    /// A wire value in the stack's form: enum words matched without regard to case to the spec's
    /// spelling, an ISO 8601 duration as a number of the field's unit.
    #[expect(
        clippy::wrong_self_convention,
        reason = "the inverse of `to_wire`: the field spec converts a wire value, it is not built from one"
    )]
    pub(crate) fn from_wire(&self, value: &Value) -> Value {
        if let (Some(allowed), Some(s)) = (&self.allowed, value.as_str()) {
            if let Some((stack, _)) = self
                .wire
                .iter()
                .flatten()
                .find(|(_, wire)| wire.eq_ignore_ascii_case(s))
            {
                return Value::String(stack.clone());
            }
            if let Some(a) = allowed.iter().find(|a| a.eq_ignore_ascii_case(s)) {
                return Value::String(a.clone());
            }
        }
        if self.format == Some(WireFormat::Iso8601Duration)
            && let Some(seconds) = value.as_str().and_then(crate::iso8601::parse_seconds)
        {
            let n = seconds * self.unit.unwrap_or_default().per_second();
            return if n.fract() == 0.0 && n.abs() < 9.0e15 {
                Value::from(n as i64)
            } else {
                Value::from(n)
            };
        }
        value.clone()
    }
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
    /// Where to read the value when the response has nothing at `arm` (e.g. the principal of the first
    /// attached identity when there is no own one).
    #[serde(default)]
    pub arm_fallback: Option<String>,
    /// The object id of the principal of the resource's identity (what role grants name).
    #[serde(default)]
    pub principal: bool,
}

impl ResourceSpec {
    pub(super) fn parse(file: &str, text: &str) -> Result<ResourceSpec, SpecError> {
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
        if let Some(missing) = spec
            .all_fields()
            .into_iter()
            .filter_map(|(_, f)| f.restore_from.as_deref())
            .find(|a| !spec.attributes.contains_key(*a))
        {
            return Err(invalid(
                file,
                format!("`restore_from: {missing}` names no attribute"),
            ));
        }
        let stored: Vec<(String, &str)> = spec
            .all_fields()
            .into_iter()
            .filter_map(|(path, f)| f.content_hash.as_deref().map(|a| (path, a)))
            .collect();
        if let Some((path, attr)) = stored.iter().find(|(path, _)| path.contains('.')) {
            return Err(invalid(
                file,
                format!("`{path}`: `content_hash: {attr}` is only for a top-level field"),
            ));
        }
        if let Some((path, attr)) = stored
            .iter()
            .find(|(_, attr)| !spec.attributes.contains_key(*attr))
        {
            return Err(invalid(
                file,
                format!("`{path}`: `content_hash: {attr}` names no attribute"),
            ));
        }
        if stored.len() > 1 {
            return Err(invalid(
                file,
                "only one field may name a `content_hash` (the cloud keeps one body per resource)"
                    .to_string(),
            ));
        }
        for (name, field) in &spec.fields {
            let Some(agg) = &field.aggregate else {
                continue;
            };
            let err = |m: &str| invalid(file, format!("field `{name}`: {m}"));
            if field.kind != FieldType::Integer || field.custom.is_none() || field.arm.is_some() {
                return Err(err(
                    "an `aggregate` field is an integer the type maps itself (`custom`, no `arm:`)",
                ));
            }
            if spec
                .fields
                .get(&agg.owner)
                .is_none_or(|f| f.parent_ref.is_none() || f.kind != FieldType::String)
            {
                return Err(err(
                    "`aggregate.owner` must name a string field with a `parent_ref`",
                ));
            }
            if spec
                .fields
                .get(&agg.key)
                .is_none_or(|f| f.kind != FieldType::String || !f.required)
            {
                return Err(err("`aggregate.key` must name a required string field"));
            }
        }
        if spec.arm.adopt_existing {
            let last = spec.arm.path.rsplit('/').next().unwrap_or_default();
            if !(last.starts_with('{') && last.contains('(')) {
                return Err(invalid(
                    file,
                    "`adopt_existing` is for a type whose name is derived from its inputs (a `{fn(…)}` last path segment)"
                        .to_string(),
                ));
            }
        }
        if let Some(place) = &spec.arm.stamp {
            let fits = match spec.fields.get(place) {
                Some(f) => {
                    matches!(f.kind, FieldType::Map | FieldType::String) && f.custom.is_none()
                }
                None => spec.arm.plane == Plane::Blob && place == "metadata",
            };
            if !fits {
                return Err(invalid(
                    file,
                    format!(
                        "`stamp: {place}` must name a string or string-map field (or `metadata` of a blob-plane type)"
                    ),
                ));
            }
        }
        if let Some(list) = &spec.arm.list
            && !list.path.contains(&format!("{{{}}}", list.group_by))
        {
            return Err(invalid(
                file,
                format!(
                    "`arm.list.group_by: {}` is not a placeholder of `arm.list.path`",
                    list.group_by
                ),
            ));
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

    /// Changes the default of a field (by dotted path), for tests that prove a spec change reaches
    /// every consumer. Whether the field exists.
    #[cfg(test)]
    pub(crate) fn set_default(&mut self, path: &str, value: Value) -> bool {
        fn walk(fields: &mut IndexMap<String, FieldSpec>, path: &str, value: Value) -> bool {
            match path.split_once('.') {
                None => fields
                    .get_mut(path)
                    .map(|f| f.default = Some(value))
                    .is_some(),
                Some((head, rest)) => fields
                    .get_mut(head)
                    .and_then(|f| f.fields.as_mut())
                    .is_some_and(|nested| walk(nested, rest, value)),
            }
        }
        walk(&mut self.fields, path, value)
    }

    /// Every field, nested ones after their object, with its dotted path, in spec order.
    pub(crate) fn all_fields(&self) -> Vec<(String, &FieldSpec)> {
        fn walk<'a>(
            fields: &'a IndexMap<String, FieldSpec>,
            prefix: &str,
            out: &mut Vec<(String, &'a FieldSpec)>,
        ) {
            for (name, f) in fields {
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                out.push((path.clone(), f));
                if let Some(nested) = &f.fields {
                    walk(nested, &path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.fields, "", &mut out);
        out
    }

    /// Whether `path` (after the resource name in a reference) names something this type exports:
    /// an input field (or a path inside an object or map field) or a computed attribute.
    pub(crate) fn exports(&self, path: &str) -> bool {
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
    pub(crate) fn export_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.fields.keys().cloned().collect();
        names.extend(self.attributes.keys().cloned());
        names
    }

    /// The inputs that bring a resource back to what it ran before (a rollback): each field with
    /// `restore_from` becomes the registered version its attribute recorded in `outputs`, when it did;
    /// a nested field only inside an object the inputs hold.
    pub(crate) fn restore_inputs(
        &self,
        mut inputs: Map<String, Value>,
        outputs: &Value,
    ) -> Map<String, Value> {
        fn walk(
            fields: &IndexMap<String, FieldSpec>,
            target: &mut Map<String, Value>,
            outputs: &Value,
        ) {
            for (name, f) in fields {
                let recorded = f.restore_from.as_deref().and_then(|attr| {
                    attr.split('.')
                        .try_fold(outputs, |v, part| v.get(part))
                        .and_then(Value::as_str)
                        .and_then(registered_version)
                });
                if let Some(version) = recorded {
                    target.insert(name.clone(), Value::String(version));
                } else if let (Some(nested), Some(Value::Object(obj))) =
                    (&f.fields, target.get_mut(name))
                {
                    walk(nested, obj, outputs);
                }
            }
        }
        walk(&self.fields, &mut inputs, outputs);
        inputs
    }

    /// Whether resources that depend on a changed resource of this type wait for its propagation.
    pub(crate) fn waits_for_propagation(&self) -> bool {
        self.arm.propagation.is_some()
    }

    /// The field whose bytes the cloud stores and the attribute holding their SHA-256, when the type
    /// has one (`content_hash`).
    pub(crate) fn stored_content(&self) -> Option<(&str, &str)> {
        self.fields
            .iter()
            .find_map(|(name, f)| f.content_hash.as_deref().map(|attr| (name.as_str(), attr)))
    }

    /// The top-level fields whose value is an entry of a map another resource holds (`aggregate`).
    pub(crate) fn aggregates(&self) -> impl Iterator<Item = (&str, &FieldSpec, &Aggregate)> {
        self.fields
            .iter()
            .filter_map(|(name, f)| f.aggregate.as_ref().map(|a| (name.as_str(), f, a)))
    }

    /// Whether `path` is a computed attribute (known only after apply).
    pub(crate) fn is_computed(&self, path: &str) -> bool {
        self.attributes.contains_key(path)
    }
}

/// A registered asset version's ARM id (`…/{kind}/{name}/versions/{version}`) as the stack names it:
/// `azureml:{name}:{version}`.
pub(crate) fn registered_version(id: &str) -> Option<String> {
    let parts: Vec<&str> = id.trim_end_matches('/').rsplit('/').take(4).collect();
    match parts.as_slice() {
        [version, "versions", name, _] => Some(format!("azureml:{name}:{version}")),
        _ => None,
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
    if let Some(wire) = &f.wire {
        let allowed = f.allowed.as_deref().unwrap_or_default();
        if let Some(stray) = wire.keys().find(|k| !allowed.contains(k)) {
            return Err(err(format!(
                "`wire` spells `{stray}`, which `enum` does not list"
            )));
        }
    }
    if f.format.is_some() && !matches!(f.kind, FieldType::Integer | FieldType::Number) {
        return Err(err("a duration `format` is only for numbers".into()));
    }
    if f.unit.is_some() && f.format.is_none() {
        return Err(err("`unit` goes with `format: iso8601_duration`".into()));
    }
    let compare_fits = match f.compare {
        None | Some(Comparison::Exact) => true,
        Some(Comparison::Id | Comparison::Role | Comparison::Word) => f.kind == FieldType::String,
        Some(Comparison::IdSet) => f.kind == FieldType::List && f.items == Some(FieldType::String),
        Some(Comparison::Path) => f.kind == FieldType::Path,
    };
    if !compare_fits {
        return Err(err(format!(
            "`compare: {:?}` does not fit {}",
            f.compare,
            f.kind.describe()
        )));
    }
    if f.runs_as && f.parent_ref.is_none() {
        return Err(err(
            "`runs_as` names the identity of the field's `parent_ref`".into(),
        ));
    }
    if f.attached_identities && !(f.kind == FieldType::List && f.items == Some(FieldType::String)) {
        return Err(err("`attached_identities` is for a list of ids".into()));
    }
    if f.content_hash.is_some() && f.kind != FieldType::Path {
        return Err(err(
            "`content_hash` is for a `path` field whose bytes the cloud stores".into(),
        ));
    }
    if f.grantee && f.kind != FieldType::String {
        return Err(err("a `grantee` is a principal id (a string)".into()));
    }
    if f.restore_from.is_some() && f.custom.is_none() {
        return Err(err(
            "`restore_from` is for a field the type maps itself (`custom`)".into(),
        ));
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
            if spec.arm.is_some() && f.arm.is_none() {
                return Err(err(format!(
                    "`{child}` has an `arm:` path but its object has none to be relative to"
                )));
            }
            check_field(file, &format!("{name}.{child}"), spec)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_goes_into_a_string_or_string_map_field() {
        let spec = |arm_extra: &str, field: &str| {
            format!(
                "type: x\ndescription: d\narm: {{resource_type: a, api_version: b, path: c, parent: d, lro: none, tracked: false{arm_extra}}}\nfields:\n  n: {{{field}, required: false, immutable: false, sensitive: false, description: d, arm: properties.n}}\nattributes:\n  id: {{type: string, description: d}}\n"
            )
        };
        assert!(ResourceSpec::parse("x", &spec(", stamp: n", "type: string")).is_ok());
        assert!(ResourceSpec::parse("x", &spec(", stamp: n", "type: map, values: string")).is_ok());
        for (extra, field) in [
            (", stamp: n", "type: integer"),
            (", stamp: other", "type: string"),
            (", stamp: metadata", "type: string"),
        ] {
            let err = ResourceSpec::parse("x", &spec(extra, field)).unwrap_err();
            assert!(
                err.to_string().contains("`stamp:"),
                "{extra} {field}: {err}"
            );
        }
        // A blob-plane type may stamp its metadata without a field of that name.
        assert!(
            ResourceSpec::parse("x", &spec(", plane: blob, stamp: metadata", "type: string"))
                .is_ok()
        );
    }

    #[test]
    fn a_spec_field_must_fit_its_wire_format_and_comparison() {
        let base = "type: x\ndescription: d\narm: {resource_type: a, api_version: b, path: c, parent: d, lro: none, tracked: false}\nfields:\n  n: {type: string, required: false, immutable: false, sensitive: false, description: d, EXTRA}\nattributes:\n  id: {type: string, description: d}\n";
        for (extra, complaint) in [
            ("compare: id_set", "does not fit"),
            ("format: iso8601_duration", "only for numbers"),
            ("enum: [a], wire: {b: B}", "which `enum` does not list"),
            ("custom: why, restore_from: nothing", "names no attribute"),
            ("restore_from: id", "`custom`"),
            ("content_hash: id", "is for a `path` field"),
        ] {
            let text = base.replace("EXTRA", extra);
            let err = ResourceSpec::parse("x", &text).unwrap_err();
            assert!(err.to_string().contains(complaint), "{extra}: {err}");
        }
        let path_field = base.replace("type: string", "type: path");
        for (extra, complaint) in [
            ("content_hash: nothing", "names no attribute"),
            ("content_hash: id", ""),
        ] {
            let text = path_field.replace("EXTRA", extra);
            match ResourceSpec::parse("x", &text) {
                Err(err) => assert!(
                    !complaint.is_empty() && err.to_string().contains(complaint),
                    "{extra}: {err}"
                ),
                Ok(spec) => assert!(complaint.is_empty() && spec.stored_content().is_some()),
            }
        }
        let adopting = base
            .replace("tracked: false}", "tracked: false, adopt_existing: true}")
            .replace(", EXTRA", "");
        let err = ResourceSpec::parse("x", &adopting).unwrap_err();
        assert!(err.to_string().contains("derived from its inputs"), "{err}");
        let derived = adopting.replace("path: c,", "\"path\": \"/a/{uuid5(n)}\",");
        assert!(ResourceSpec::parse("x", &derived).is_ok());
        let fine = base.replace("EXTRA", "enum: [a], wire: {a: A}, compare: word");
        assert!(ResourceSpec::parse("x", &fine).is_ok());
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
