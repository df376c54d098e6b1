//! Keeping secrets out of the state file: sensitive field paths and the marker that replaces values.
//!
//! A sensitive value (an account key, a client secret) is never written in clear. It is replaced by a
//! marker object `{"$sensitive": "hmac-sha256:<hex>"}` whose digest is keyed with the state's lineage,
//! so the planner can still tell "this secret changed" by digesting the desired value the same way
//! ([`sensitive_digest`]) without the state holding the secret. The digest is a change detector, not
//! a vault: a weak secret could be guessed offline by someone who can read the state file, which is why
//! the file is also mode 0600. This module must never log, print or return a secret in an error.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::Sha256;
use uuid::Uuid;

/// The single key of a marker object that stands in for a sensitive value.
pub(crate) const SENSITIVE_MARKER_KEY: &str = "$sensitive";
const DIGEST_PREFIX: &str = "hmac-sha256:";

/// A path to a field inside a resource's inputs or outputs: dot-separated segments, where a segment
/// names an object key, an array index (`0`), or every element/value (`*`).
///
/// Examples: `account_key`, `credentials.client_secret`, `environment_variables.*`, `keys.0.value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    segments: Vec<String>,
}

/// A field path that cannot be parsed (empty, or with an empty segment such as `a..b`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid field path `{path}`: {reason}")]
pub struct FieldPathError {
    pub path: String,
    pub reason: &'static str,
}

impl FieldPath {
    /// Parses `a.b.*.c`.
    pub fn parse(text: &str) -> Result<Self, FieldPathError> {
        if text.is_empty() {
            return Err(FieldPathError {
                path: text.to_owned(),
                reason: "it is empty",
            });
        }
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(FieldPathError {
                path: text.to_owned(),
                reason: "it has an empty segment",
            });
        }
        Ok(Self { segments })
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("."))
    }
}

impl std::str::FromStr for FieldPath {
    type Err = FieldPathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for FieldPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FieldPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The digest that stands for `value` in a state of this lineage: `hmac-sha256:<64 hex>`.
///
/// Objects are digested with their keys sorted, so key order does not count as a change.
pub(crate) fn sensitive_digest(lineage: &Uuid, value: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(value, &mut canonical);
    // HMAC accepts keys of any length; this cannot fail for a 16-byte key.
    let mut mac = match Hmac::<Sha256>::new_from_slice(lineage.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("hmac accepts keys of any length"),
    };
    mac.update(canonical.as_bytes());
    format!(
        "{DIGEST_PREFIX}{}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The marker object that replaces `value` in a state of this lineage.
pub fn redacted(lineage: &Uuid, value: &Value) -> Value {
    let mut marker = Map::new();
    marker.insert(
        SENSITIVE_MARKER_KEY.to_owned(),
        Value::String(sensitive_digest(lineage, value)),
    );
    Value::Object(marker)
}

/// Whether `value` is a marker written by [`redacted`].
pub(crate) fn is_redacted(value: &Value) -> bool {
    marker_digest(value).is_some()
}

/// The digest inside a marker, if `value` is one.
pub(crate) fn marker_digest(value: &Value) -> Option<&str> {
    let Value::Object(map) = value else {
        return None;
    };
    if map.len() != 1 {
        return None;
    }
    match map.get(SENSITIVE_MARKER_KEY) {
        Some(Value::String(digest)) if digest.starts_with(DIGEST_PREFIX) => Some(digest),
        _ => None,
    }
}

/// Whether a stored (redacted) value stands for `desired`: true when the marker's digest matches,
/// or, for a value that was not sensitive when stored, when the values are equal.
pub fn stored_matches(lineage: &Uuid, stored: &Value, desired: &Value) -> bool {
    match marker_digest(stored) {
        Some(digest) => digest == sensitive_digest(lineage, desired),
        None => stored == desired,
    }
}

/// Replaces every value `paths` select in `value` with its marker. Values that are already markers
/// and `null`s (nothing secret about "unset") are left alone, so redacting twice changes nothing.
/// Returns how many values were replaced.
pub(crate) fn redact_paths(value: &mut Value, paths: &[FieldPath], lineage: &Uuid) -> usize {
    paths
        .iter()
        .map(|path| redact_at(value, path.segments(), lineage))
        .sum()
}

fn redact_at(value: &mut Value, segments: &[String], lineage: &Uuid) -> usize {
    let Some((first, rest)) = segments.split_first() else {
        if value.is_null() || is_redacted(value) {
            return 0;
        }
        *value = redacted(lineage, value);
        return 1;
    };
    if is_redacted(value) {
        // A whole parent is already hidden; there is nothing in clear below it.
        return 0;
    }
    match value {
        Value::Object(map) if first == "*" => map
            .values_mut()
            .map(|child| redact_at(child, rest, lineage))
            .sum(),
        Value::Object(map) => map
            .get_mut(first.as_str())
            .map_or(0, |child| redact_at(child, rest, lineage)),
        Value::Array(items) if first == "*" => items
            .iter_mut()
            .map(|child| redact_at(child, rest, lineage))
            .sum(),
        Value::Array(items) => first
            .parse::<usize>()
            .ok()
            .and_then(|index| items.get_mut(index))
            .map_or(0, |child| redact_at(child, rest, lineage)),
        _ => 0,
    }
}

/// Compact JSON with object keys sorted, recursively.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn paths(list: &[&str]) -> Vec<FieldPath> {
        list.iter()
            .map(|p| FieldPath::parse(p).expect("valid test path"))
            .collect()
    }

    #[test]
    fn parse_rejects_empty_paths_and_segments() {
        assert!(FieldPath::parse("").is_err());
        assert!(FieldPath::parse("a..b").is_err());
        assert!(FieldPath::parse(".a").is_err());
        assert_eq!(
            FieldPath::parse("a.*.0").map(|p| p.to_string()),
            Ok(String::from("a.*.0"))
        );
    }

    #[test]
    fn redacts_keys_wildcards_and_indices_without_leaving_the_secret() {
        let lineage = Uuid::new_v4();
        let mut inputs = json!({
            "name": "store",
            "account_key": "s3cr3t-key",
            "env": { "A": "alpha-secret", "B": "beta-secret" },
            "keys": [ { "value": "k0-secret" }, { "value": "k1-secret" } ],
            "unset": null
        });
        let count = redact_paths(
            &mut inputs,
            &paths(&["account_key", "env.*", "keys.1.value", "unset", "missing.x"]),
            &lineage,
        );
        assert_eq!(count, 4);
        let text = inputs.to_string();
        for secret in ["s3cr3t-key", "alpha-secret", "beta-secret", "k1-secret"] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
        assert!(text.contains("k0-secret"), "index 0 was not selected");
        assert_eq!(inputs["name"], "store");
        assert!(inputs["unset"].is_null());
        assert!(is_redacted(&inputs["account_key"]));
        assert!(stored_matches(
            &lineage,
            &inputs["account_key"],
            &json!("s3cr3t-key")
        ));
        assert!(!stored_matches(
            &lineage,
            &inputs["account_key"],
            &json!("other")
        ));
    }

    #[test]
    fn redacting_twice_changes_nothing() {
        let lineage = Uuid::new_v4();
        let mut once = json!({ "secret": { "a": 1 } });
        redact_paths(&mut once, &paths(&["secret"]), &lineage);
        let mut twice = once.clone();
        assert_eq!(
            redact_paths(&mut twice, &paths(&["secret", "secret.a"]), &lineage),
            0
        );
        assert_eq!(once, twice);
    }

    #[test]
    fn digest_depends_on_lineage_and_value_but_not_key_order() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let v1 = json!({ "x": 1, "y": [true, null, "s"] });
        let v2: Value =
            serde_json::from_str(r#"{ "y": [true, null, "s"], "x": 1 }"#).expect("valid json");
        assert_eq!(sensitive_digest(&a, &v1), sensitive_digest(&a, &v2));
        assert_ne!(sensitive_digest(&a, &v1), sensitive_digest(&b, &v1));
        assert_ne!(sensitive_digest(&a, &v1), sensitive_digest(&a, &json!("x")));
        assert!(sensitive_digest(&a, &v1).starts_with("hmac-sha256:"));
    }

    #[test]
    fn plain_values_compare_by_equality() {
        let lineage = Uuid::new_v4();
        assert!(stored_matches(&lineage, &json!("a"), &json!("a")));
        assert!(!stored_matches(&lineage, &json!("a"), &json!("b")));
        assert!(!is_redacted(&json!({ "$sensitive": "plain" })));
        assert!(!is_redacted(
            &json!({ "$sensitive": "hmac-sha256:00", "x": 1 })
        ));
    }
}
