//! Reading the files a stack names (the stack file, `file:` bases, `--var-file`s) within the YAML size
//! budget, and naming a YAML node's kind for "found …" in messages. It only reads: it never parses,
//! and its errors are lowercase fragments for "cannot read … : …".
use std::io::Read as _;
use std::path::Path;

use crate::diag::SourceFile;
use crate::yaml::{Budget, Node, Value};

/// Reads a text file within the default YAML size budget.
pub(crate) fn read_source(path: &Path) -> Result<SourceFile, ReadSourceError> {
    read_source_within(path, Budget::default().max_bytes)
}

/// Reads a text file of at most `max` bytes.
pub(crate) fn read_source_within(path: &Path, max: usize) -> Result<SourceFile, ReadSourceError> {
    let file = std::fs::File::open(path).map_err(ReadSourceError::Io)?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(ReadSourceError::Folder);
    }
    let mut bytes = Vec::new();
    file.take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadSourceError::Io)?;
    if bytes.len() > max {
        return Err(ReadSourceError::TooLarge { max });
    }
    let text = String::from_utf8(bytes).map_err(|_| ReadSourceError::NotUtf8)?;
    Ok(SourceFile::new(path, text))
}

/// Why a stack file, `file:` base or variable file cannot be read. Messages are lowercase fragments
/// for "cannot read stack file X: …".
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadSourceError {
    #[error("{}", io_reason(.0))]
    Io(#[source] std::io::Error),
    #[error("it is a folder, not a file")]
    Folder,
    #[error("file is larger than the {max}-byte limit (raise it with --max-file-size)")]
    TooLarge { max: usize },
    #[error("file is not UTF-8 text")]
    NotUtf8,
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string().to_lowercase(),
    }
}

/// A node's kind with its article, for "found ..." in messages.
pub(crate) fn a_kind(node: &Node) -> &'static str {
    match node.value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Int(_) => "an integer",
        Value::Float(_) => "a number",
        Value::String(_) => "a string",
        Value::Seq(_) => "a list",
        Value::Map(_) => "a mapping",
    }
}
