//! JSON Schema (draft 2020-12) of the stack file, generated from the resource specs, for editors' YAML
//! language servers (`# yaml-language-server: $schema=...`). It checks shape only; `stackform validate`
//! checks references, cycles and names. Any value may also be a `${...}` reference, which the schema allows
//! wherever a typed scalar is expected.
use serde_json::{Map, Value, json};

use super::registry::Registry;
use super::spec::{FieldSpec, FieldType, ResourceSpec};

/// A string that is exactly one `${...}` reference (it keeps the referenced value's type).
const REFERENCE_PATTERN: &str = r"^\$\{[^}]+\}$";

/// The whole stack-file schema.
pub(crate) fn stack_json_schema(registry: &Registry) -> Value {
    let type_names: Vec<&str> = registry.type_names().collect();
    let per_type: Vec<Value> = registry
        .iter()
        .map(|spec| {
            json!({
                "if": { "properties": { "type": { "const": spec.type_name } }, "required": ["type"] },
                "then": resource_schema(spec),
            })
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://stackform.dev/schema/stack.json",
        "title": "stackform stack file",
        "description": "A stackform stack: where it goes (cloud), inputs (variables), what to create (resources) and what to print (outputs).",
        "type": "object",
        "additionalProperties": false,
        "required": ["stack", "resources"],
        "properties": {
            "$schema": { "type": "string" },
            "stack": {
                "type": "string",
                "description": "Name of the stack; names its state file (state/<stack>.json).",
                "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
            },
            "cloud": cloud_schema(),
            "backend": backend_schema(),
            "variables": {
                "type": "object",
                "description": "Inputs, set by default, --var k=v, --var-file or ${env.X}.",
                "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" },
                "additionalProperties": variable_schema()
            },
            "resources": {
                "type": "object",
                "description": "Resources by name; other resources refer to them as ${name.attribute}.",
                "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_-]*$" },
                "additionalProperties": {
                    "type": "object",
                    "required": ["type"],
                    "properties": { "type": { "enum": type_names, "description": "The resource type (see specs/)." } },
                    "allOf": per_type
                }
            },
            "outputs": {
                "type": "object",
                "description": "Values printed after apply and shown by `stackform output`.",
                "additionalProperties": {
                    "anyOf": [
                        { "type": ["string", "number", "boolean"] },
                        {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["value"],
                            "properties": {
                                "value": {},
                                "description": { "type": "string" },
                                "sensitive": { "type": "boolean" }
                            }
                        }
                    ]
                }
            }
        }
    })
}

fn cloud_schema() -> Value {
    let text = |d: &str| json!({ "type": "string", "description": d });
    json!({
        "type": "object",
        "description": "Where the stack goes. `--cloud azure|local` overrides `kind`.",
        "additionalProperties": false,
        "properties": {
            "kind": {
                "enum": ["local", "azure", "azure_china", "azure_us_government", "custom"],
                "default": "local",
                "description": "local: the built-in local cloud; azure: the public cloud; or a sovereign/custom cloud."
            },
            "subscription": text("Subscription id."),
            "resource_group": text("Resource group that holds the stack's resources."),
            "workspace": text("Azure ML workspace of the endpoint."),
            "location": text("Default region of tracked resources."),
            "tenant": text("Entra tenant id (optional; taken from the credential when absent)."),
            "arm_endpoint": text("ARM endpoint of a custom cloud (its metadata endpoint is read from it)."),
            "authority_host": text("Login endpoint of a custom cloud."),
            "api_versions": {
                "type": "object",
                "description": "api-version overrides, by resource type (storage_account) or ARM namespace (Microsoft.Storage).",
                "additionalProperties": { "type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$" }
            }
        }
    })
}

fn backend_schema() -> Value {
    let text = |d: &str| json!({ "type": "string", "description": d });
    json!({
        "type": "object",
        "description": "Where the state is kept. `--backend` and `--backend-config NAME=VALUE` override it. Never an access key: that comes from ARM_ACCESS_KEY.",
        "additionalProperties": false,
        "properties": {
            "kind": {
                "enum": ["local", "azure_blob"],
                "default": "local",
                "description": "local: a state file beside the stack file; azure_blob: a blob in an Azure Storage container, locked by a finite blob lease."
            },
            "account": { "type": "string", "pattern": "^[a-z0-9]{3,24}$", "description": "Storage account of the state blob." },
            "container": text("Blob container of the state blob (it must exist)."),
            "key": text("Name of the state blob (default: <stack>.json; an environment's is env/NAME/<key>)."),
            "resource_group": text("Resource group of the account (default: the cloud's)."),
            "endpoint": text("Blob endpoint to use instead of the account's (an emulator's, e.g. Azurite's).")
        }
    })
}

fn variable_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "default": { "description": "Value used when none is given." },
            "description": { "type": "string" },
            "type": { "enum": ["string", "integer", "number", "boolean", "list", "map"], "default": "string" },
            "sensitive": { "type": "boolean", "default": false, "description": "Never printed; shown as (sensitive)." }
        }
    })
}

fn resource_schema(spec: &ResourceSpec) -> Value {
    let mut properties = Map::new();
    properties.insert("type".into(), json!({ "const": spec.type_name }));
    properties.insert(
        "depends_on".into(),
        json!({
            "type": "array",
            "items": { "type": "string" },
            "description": "Resources that must be applied first (beyond those referenced)."
        }),
    );
    properties.insert(
        "for_each".into(),
        json!({
            "anyOf": [
                { "type": "array", "items": { "type": ["string", "integer"] } },
                { "type": "object" },
                reference()
            ],
            "description": "One instance per list item or mapping key, addressed name[\"key\"]; ${each.key} and ${each.value} in the fields."
        }),
    );
    properties.insert(
        "moved".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["from"],
            "properties": {
                "from": {
                    "anyOf": [{ "type": "string" }, { "type": "object", "additionalProperties": { "type": "string" } }],
                    "description": "The address this resource had in state (with for_each: per instance, or instance key -> old address)."
                }
            },
            "description": "Renamed in the file: the state record moves to this address instead of a delete and a create."
        }),
    );
    properties.insert(
        "import".into(),
        json!({ "type": "string", "description": "Cloud id of an existing object: adopted at the next apply instead of created." }),
    );
    if spec.aml_file.is_some() {
        properties.insert(
            "file".into(),
            json!({ "type": "string", "description": "An Azure ML CLI v2 YAML used as the base; fields here override it." }),
        );
    }
    for (name, field) in &spec.fields {
        properties.insert(name.clone(), field_schema(field));
    }
    let required: Vec<&String> = spec
        .fields
        .iter()
        .filter(|(_, f)| f.required)
        .map(|(n, _)| n)
        .collect();
    let mut schema = json!({
        "type": "object",
        "description": spec.description,
        "additionalProperties": false,
        "properties": properties,
    });
    if !required.is_empty() {
        // A `file:` base may supply the required fields, so they are only required without one.
        schema["anyOf"] = if spec.aml_file.is_some() {
            json!([{ "required": ["file"] }, { "required": required }])
        } else {
            json!([{ "required": required }])
        };
    }
    schema
}

fn field_schema(f: &FieldSpec) -> Value {
    let mut s = match f.kind {
        FieldType::String | FieldType::Path => {
            let mut s = json!({ "type": "string" });
            if let Some(allowed) = &f.allowed {
                s = json!({ "anyOf": [{ "enum": allowed }, reference()] });
            } else if let Some(p) = &f.pattern {
                s = json!({ "anyOf": [{ "type": "string", "pattern": p }, { "type": "string", "pattern": r"\$\{" }] });
            }
            s
        }
        FieldType::Integer => {
            let mut n = json!({ "type": "integer" });
            if let Some(min) = f.minimum {
                n["minimum"] = json!(min);
            }
            if let Some(max) = f.maximum {
                n["maximum"] = json!(max);
            }
            json!({ "anyOf": [n, reference()] })
        }
        FieldType::Number => json!({ "anyOf": [{ "type": "number" }, reference()] }),
        FieldType::Boolean => json!({ "anyOf": [{ "type": "boolean" }, reference()] }),
        FieldType::Map => json!({
            "anyOf": [{ "type": "object", "additionalProperties": scalar_schema(f.values.unwrap_or(FieldType::String)) }, reference()]
        }),
        FieldType::List => json!({
            "anyOf": [{ "type": "array", "items": scalar_schema(f.items.unwrap_or(FieldType::String)) }, reference()]
        }),
        FieldType::Object => {
            let mut props = Map::new();
            for (name, child) in f.fields.iter().flatten() {
                props.insert(name.clone(), field_schema(child));
            }
            let required: Vec<&String> = f
                .fields
                .iter()
                .flatten()
                .filter(|(_, c)| c.required)
                .map(|(n, _)| n)
                .collect();
            let mut obj =
                json!({ "type": "object", "additionalProperties": false, "properties": props });
            if !required.is_empty() {
                obj["required"] = json!(required);
            }
            match &f.string_form {
                Some(form) => {
                    json!({ "anyOf": [obj, { "type": "string", "pattern": form.pattern, "description": form.help }, reference()] })
                }
                None => json!({ "anyOf": [obj, reference()] }),
            }
        }
    };
    let mut description = f.description.clone();
    if f.immutable {
        description.push_str(" Changing it replaces the resource.");
    }
    s["description"] = json!(description);
    if let Some(default) = &f.default {
        s["default"] = default.clone();
    }
    if let Some(examples) = &f.examples {
        s["examples"] = json!(examples);
    }
    s
}

fn scalar_schema(kind: FieldType) -> Value {
    match kind {
        FieldType::Integer => json!({ "type": ["integer", "string"] }),
        FieldType::Number => json!({ "type": ["number", "string"] }),
        FieldType::Boolean => json!({ "type": ["boolean", "string"] }),
        _ => json!({ "type": ["string", "number", "boolean"] }),
    }
}

fn reference() -> Value {
    json!({ "type": "string", "pattern": REFERENCE_PATTERN })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_a_valid_draft_2020_12_schema() {
        let reg = Registry::embedded().unwrap();
        let schema = stack_json_schema(&reg);
        jsonschema::draft202012::meta::validate(&schema).expect("valid JSON Schema");
    }

    #[test]
    fn schema_rejects_unknown_fields_and_accepts_references() {
        let reg = Registry::embedded().unwrap();
        let validator = jsonschema::validator_for(&stack_json_schema(&reg)).unwrap();
        let good = json!({
            "stack": "s",
            "resources": {
                "store": { "type": "storage_account", "name": "abc123" },
                "blue": { "type": "online_deployment", "file": "d.yml", "instance_count": "${var.n}" }
            }
        });
        assert!(
            validator.is_valid(&good),
            "{:?}",
            validator
                .iter_errors(&good)
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        );
        let bad = json!({ "stack": "s", "resources": { "store": { "type": "storage_account", "name": "abc", "skuu": "x" } } });
        assert!(!validator.is_valid(&bad));
        let missing =
            json!({ "stack": "s", "resources": { "store": { "type": "storage_account" } } });
        assert!(!validator.is_valid(&missing));
    }
}
