//! What the planner is given besides the stack: the state as last written, what a refresh read from
//! the cloud ([`Snapshot`]), and the content of the local files the stack names ([`DesiredExtras`]).
//! Plain data. Producing it is someone else's job (the refresh step reads the cloud;
//! [`super::content::desired_extras`] reads the files); the planner only reads it.
use std::collections::HashMap;

use indexmap::IndexMap;
use serde_json::Value;

use crate::state::StateFile;

/// The prior state and the live cloud, as read just before planning.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The state file; `None` when the stack was never applied.
    pub state: Option<StateFile>,
    /// What a refresh read, by address. A resource in state that is missing here counts as
    /// [`Live::NotRefreshed`].
    pub live: HashMap<String, Live>,
}

/// One resource as the refresh found it.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per resource, built once per refresh; boxing would only add noise"
)]
pub enum Live {
    /// The cloud has it. `inputs` are normalised to the stack-file field names (as the provider's read
    /// returns them); `outputs` are the computed attributes, nested (`{"identity": {"principal_id": …}}`).
    Present {
        id: String,
        inputs: Value,
        outputs: Value,
        /// Content the cloud holds for path fields, by field path, when the refresh read it (a blob's
        /// body). Empty when not read; the planner then uses the hash attribute the spec names
        /// (`content_hash`) or state.
        content: IndexMap<String, FileContent>,
    },
    /// The cloud does not have it (404).
    Gone,
    /// It was not read (`--refresh=false`); the planner trusts state.
    NotRefreshed,
}

impl Live {
    /// A present resource with no content read.
    pub fn present(id: impl Into<String>, inputs: Value, outputs: Value) -> Live {
        Live::Present {
            id: id.into(),
            inputs,
            outputs,
            content: IndexMap::new(),
        }
    }
}

/// The content of one local file or folder a path field names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    /// Hex SHA-256: of the bytes for a file; of the sorted `(relative path, file hash)` list for a folder.
    pub sha256: String,
    /// The text, when it is a small UTF-8 file (so a change can be shown as a line diff).
    pub text: Option<String>,
}

/// Per-resource facts about local files, computed outside the pure planner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredExtras {
    /// Address → field path (`source`, `code_configuration.code`, `model.path`) → content.
    pub resources: HashMap<String, IndexMap<String, FileContent>>,
}

impl DesiredExtras {
    pub fn content(&self, address: &str, field: &str) -> Option<&FileContent> {
        self.resources.get(address)?.get(field)
    }
}

/// The `content_hash` the apply engine records in state for a resource whose path fields name these
/// files: `field=hex` entries joined by `;`, in the given order (e.g.
/// `code_configuration.code=ab12…;model.path=cd34…`). `None` when there are no files.
pub(crate) fn content_hash_record(files: &IndexMap<String, FileContent>) -> Option<String> {
    if files.is_empty() {
        return None;
    }
    Some(
        files
            .iter()
            .map(|(field, c)| format!("{field}={}", c.sha256))
            .collect::<Vec<_>>()
            .join(";"),
    )
}

/// Reads a `content_hash` written by [`content_hash_record`] back into field → hash. A bare hash (no
/// `=`) is returned under the empty key, meaning "the resource's only path field".
pub(crate) fn parse_content_hash(record: &str) -> IndexMap<String, String> {
    record
        .split(';')
        .filter(|s| !s.is_empty())
        .map(|entry| match entry.split_once('=') {
            Some((field, hash)) => (field.to_string(), hash.to_string()),
            None => (String::new(), entry.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_record_round_trips() {
        let mut files = IndexMap::new();
        files.insert(
            "code_configuration.code".to_string(),
            FileContent {
                sha256: "ab".into(),
                text: None,
            },
        );
        files.insert(
            "model.path".to_string(),
            FileContent {
                sha256: "cd".into(),
                text: Some("x".into()),
            },
        );
        let record = content_hash_record(&files).expect("files present");
        assert_eq!(record, "code_configuration.code=ab;model.path=cd");
        let back = parse_content_hash(&record);
        assert_eq!(back["code_configuration.code"], "ab");
        assert_eq!(back["model.path"], "cd");
        assert_eq!(parse_content_hash("ff")[""], "ff");
        assert!(content_hash_record(&IndexMap::new()).is_none());
    }
}
