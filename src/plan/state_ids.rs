//! The sanity check of the ids a state records, made before a plan or an apply acts on any of them:
//! each id must be an id of the type its record says (the type's id template in `specs/*.yaml`: an
//! ARM id with that type's segments, or a data-plane URL) and must name the resource the record's
//! own inputs name (its `name`, `account`, `container`, `endpoint`, `scope`, ...). A damaged id (edited
//! by hand, cut short, pasted from another stack) otherwise points apply at another object: a
//! refresh that finds "nothing" there plans a replacement, and the replacement deletes healthy
//! dependents before anything fails.
//!
//! Pure: it reads the state and the specs, never the cloud, and never changes the state.
use serde_json::Value;

use crate::specs::Registry;
use crate::state::StateFile;

/// Placeholders filled from the stack's cloud section, not from a record's inputs: any one segment.
const CONTEXT: [&str; 3] = ["subscription", "resource_group", "workspace"];

/// A state record whose id does not point at what the record describes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{address}`: the state records the id `{id}`, which {reason}")]
pub struct DamagedId {
    pub address: String,
    pub id: String,
    pub reason: String,
}

/// Checks every recorded id against its record's type and inputs; all damaged ids are reported,
/// in the state's order. Records of a type the specs do not know, and records without an id, are
/// left to the code that reads them.
pub fn check_state_ids(state: &StateFile, registry: &Registry) -> Result<(), Vec<DamagedId>> {
    let mut damaged = Vec::new();
    for (address, record) in &state.resources {
        if record.id.is_empty() {
            continue;
        }
        let Some(spec) = registry.get(&record.resource_type) else {
            continue;
        };
        if let Err(reason) = check_id(&spec.arm.path, &record.id, &record.inputs) {
            damaged.push(DamagedId {
                address: address.clone(),
                id: record.id.clone(),
                reason: format!("{reason} (a {} id)", record.resource_type),
            });
        }
    }
    if damaged.is_empty() {
        Ok(())
    } else {
        Err(damaged)
    }
}

/// Whether `id` can be the id of a resource of `spec`'s type with `inputs` (the stack file's
/// inputs, as far as they are known): the check an id to import passes before the cloud is read.
/// The error reads after "the id …".
pub(crate) fn check_import_id(
    spec: &crate::specs::ResourceSpec,
    id: &str,
    inputs: &Value,
) -> Result<(), String> {
    check_id(&spec.arm.path, id, inputs).map_err(|e| {
        format!(
            "{} (a {} id)",
            e.replace("the record's inputs", "the stack file's inputs"),
            spec.type_name
        )
    })
}

/// Whether `id` fits the id template `template` with the record's `inputs`; the error says why not.
fn check_id(template: &str, id: &str, inputs: &Value) -> Result<(), String> {
    // An ARM id: the template starts with `/`, or with an input that is itself an ARM id (a role
    // assignment's `{scope}`); else a data-plane URL (a blob's `{primary_blob_endpoint}`).
    let arm = template.starts_with('/')
        || template
            .strip_prefix('{')
            .and_then(|t| t.split_once('}'))
            .and_then(|(first, _)| inputs.get(first).and_then(Value::as_str))
            .is_some_and(|v| v.starts_with('/'));
    let subject = if arm {
        if !id.starts_with("/subscriptions/") {
            return Err("is not an ARM id (it does not start with /subscriptions/)".into());
        }
        id.to_string()
    } else {
        let url = url::Url::parse(id).map_err(|_| "is not a URL".to_string())?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err("is not an http(s) URL".into());
        }
        // The data plane encodes names in the URL's path; compare them decoded.
        percent_encoding::percent_decode_str(id)
            .decode_utf8_lossy()
            .into_owned()
    };
    // The template as pieces matched case-insensitively against the whole id (a trailing `/`
    // allowed). Matched by hand, not by a regex built per record: compiling one took most of a
    // large plan's CPU.
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        pieces.push(Piece::Text(&rest[..open]));
        let Some(close) = rest[open..].find('}') else {
            return Ok(()); // a template the specs loader would have refused
        };
        let name = &rest[open + 1..open + close];
        rest = &rest[open + close + 1..];
        let input = inputs.get(name).and_then(Value::as_str);
        pieces.push(if CONTEXT.contains(&name) {
            Piece::Segment
        } else if name.starts_with("uuid5(") {
            Piece::Uuid
        } else if let Some(v) = input {
            Piece::Text(v.trim_end_matches('/'))
        } else {
            // Filled from another resource's outputs (a blob's account endpoint): any prefix.
            Piece::Any
        });
    }
    pieces.push(Piece::Text(rest));
    if fits(&pieces, &subject) {
        return Ok(());
    }
    Err(format!(
        "does not fit `{template}` with the record's inputs{}",
        named_by(template, inputs)
    ))
}

/// A part of an id template.
#[derive(Debug, Clone, Copy)]
enum Piece<'a> {
    /// Exactly this text, in any case.
    Text(&'a str),
    /// One path segment or more characters without `/` (a context placeholder).
    Segment,
    /// A lowercase-or-uppercase hexadecimal UUID (`uuid5(...)`).
    Uuid,
    /// One character or more (a value filled from another resource's outputs).
    Any,
}

/// Whether `subject` is exactly `pieces` followed by an optional `/`.
fn fits(pieces: &[Piece<'_>], subject: &str) -> bool {
    let Some((first, rest)) = pieces.split_first() else {
        return subject.is_empty() || subject == "/";
    };
    match *first {
        Piece::Text(text) => {
            strip_prefix_ignoring_case(subject, text).is_some_and(|s| fits(rest, s))
        }
        Piece::Uuid => {
            let groups = [8, 4, 4, 4, 12];
            let len = 36;
            let Some(head) = subject.get(..len) else {
                return false;
            };
            debug_assert_eq!(groups.iter().sum::<usize>() + groups.len() - 1, len);
            let mut at = 0;
            let shaped = groups.iter().enumerate().all(|(i, &n)| {
                let bytes = head.as_bytes();
                let ok = bytes[at..at + n].iter().all(u8::is_ascii_hexdigit)
                    && (i == groups.len() - 1 || bytes[at + n] == b'-');
                at += n + 1;
                ok
            });
            shaped && fits(rest, &subject[len..])
        }
        Piece::Segment | Piece::Any => {
            // A segment stops at `/`; anything else (as a regex's `.`) at a line break.
            let stop = if matches!(first, Piece::Segment) {
                '/'
            } else {
                '\n'
            };
            let run = subject.find(stop).unwrap_or(subject.len());
            subject[..run]
                .char_indices()
                .skip(1)
                .map(|(i, _)| i)
                .chain((run > 0).then_some(run))
                .any(|end| fits(rest, &subject[end..]))
        }
    }
}

/// `subject` without its prefix `prefix`, comparing characters case-insensitively.
fn strip_prefix_ignoring_case<'s>(subject: &'s str, prefix: &str) -> Option<&'s str> {
    let mut chars = subject.char_indices();
    for p in prefix.chars() {
        let (_, c) = chars.next()?;
        if c != p && !c.to_lowercase().eq(p.to_lowercase()) {
            return None;
        }
    }
    Some(chars.next().map_or("", |(i, _)| &subject[i..]))
}

/// `" (name `x`, account `y`)"`: the inputs the template names, to show what the id should name.
fn named_by(template: &str, inputs: &Value) -> String {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        if let Some(v) = inputs.get(name).and_then(Value::as_str) {
            parts.push(format!("{name} `{v}`"));
        }
        rest = &rest[open + close + 1..];
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ACCOUNT: &str = "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Storage/storageAccounts/{name}";
    const CONTAINER: &str = "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Storage/storageAccounts/{account}/blobServices/default/containers/{name}";
    const BLOB: &str = "{primary_blob_endpoint}{container}/{name}";
    const ROLE: &str = "{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid5(scope, role, principal_id)}";
    const ACCOUNT_ID: &str =
        "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/store1";

    /// The matcher that replaced a regex compiled per record keeps the regex's rules: whole id, any
    /// case, a trailing `/`, a segment never spans `/`, a UUID is 8-4-4-4-12 hex, `Any` takes one
    /// character or more.
    #[test]
    fn pieces_match_as_the_regex_did() {
        use Piece::{Any, Segment, Text, Uuid};
        let uuid = "0F8FAD5B-d9cb-469f-a165-70867728950e";
        assert!(fits(&[Text("/a/"), Segment, Text("/b")], "/A/x y/B/"));
        assert!(!fits(&[Text("/a/"), Segment, Text("/b")], "/a/x/y/b"));
        assert!(!fits(&[Text("/a/"), Segment, Text("/b")], "/a//b"));
        assert!(!fits(&[Text("/a")], "/a/b"));
        assert!(fits(&[Text("/r/"), Uuid], &format!("/r/{uuid}")));
        assert!(!fits(&[Text("/r/"), Uuid], &format!("/r/{}", &uuid[1..])));
        assert!(!fits(
            &[Text("/r/"), Uuid],
            "/r/0f8fad5b-d9cb-469f-a165-70867728950g"
        ));
        assert!(fits(&[Any, Text("c/dir/b.txt")], "https://x/c/dir/b.txt"));
        assert!(!fits(&[Any, Text("c/b")], "c/b"));
        assert!(fits(&[Text("é/"), Segment], "É/ü"));
    }

    #[test]
    fn ids_that_name_the_recorded_resource_pass() {
        fn ok(t: &str, id: &str, inputs: Value) {
            assert_eq!(check_id(t, id, &inputs), Ok(()), "{id}");
        }
        ok(ACCOUNT, ACCOUNT_ID, json!({"name": "store1"}));
        // ARM ids compare case-insensitively.
        ok(
            ACCOUNT,
            "/subscriptions/S1/resourcegroups/RG/providers/microsoft.storage/storageaccounts/STORE1",
            json!({"name": "store1"}),
        );
        ok(
            CONTAINER,
            &format!("{ACCOUNT_ID}/blobServices/default/containers/hello"),
            json!({"account": "store1", "name": "hello"}),
        );
        ok(
            BLOB,
            "https://store1.blob.localhost:4443/hello/dir/hello%20there.txt",
            json!({"account": "store1", "container": "hello", "name": "dir/hello there.txt"}),
        );
        ok(
            ROLE,
            &format!(
                "{ACCOUNT_ID}/providers/Microsoft.Authorization/roleAssignments/6b1f3c2e-9d4a-4f5e-8a7b-2c1d0e9f3a5b"
            ),
            json!({"scope": ACCOUNT_ID, "role": "Reader", "principal_id": "p"}),
        );
    }

    #[test]
    fn ids_of_another_object_or_shape_are_refused() {
        fn bad(t: &str, id: &str, inputs: Value) {
            check_id(t, id, &inputs).expect_err(id);
        }
        // Another account, a cut id, another type, not an id at all.
        bad(
            ACCOUNT,
            &ACCOUNT_ID.replace("store1", "store2"),
            json!({"name": "store1"}),
        );
        bad(
            ACCOUNT,
            "/subscriptions/s1/resourceGroups/rg",
            json!({"name": "store1"}),
        );
        bad(
            ACCOUNT,
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Web/sites/store1",
            json!({"name": "store1"}),
        );
        bad(ACCOUNT, "store1", json!({"name": "store1"}));
        bad(
            CONTAINER,
            &format!("{ACCOUNT_ID}/blobServices/default/containers/other"),
            json!({"account": "store1", "name": "hello"}),
        );
        bad(
            BLOB,
            "https://store1.blob.localhost/hello/other.txt",
            json!({"container": "hello", "name": "hello.txt"}),
        );
        bad(
            BLOB,
            "hello/hello.txt",
            json!({"container": "hello", "name": "hello.txt"}),
        );
        bad(
            ROLE,
            &format!("{ACCOUNT_ID}/providers/Microsoft.Authorization/roleAssignments/not-a-guid"),
            json!({"scope": ACCOUNT_ID}),
        );
        let msg = check_id(ACCOUNT, "/subscriptions/x", &json!({"name": "store1"})).unwrap_err();
        assert!(
            msg.contains("does not fit") && msg.contains("name `store1`"),
            "{msg}"
        );
    }
}
