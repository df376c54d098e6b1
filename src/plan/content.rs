//! The one I/O step of planning: hashing the local files and folders a stack's path fields name (a
//! blob's `source`, a deployment's code and model folders, its conda file), so the pure planner can
//! tell a changed file from an unchanged one and show small text files as line diffs.
//!
//! Run it before [`super::plan`] and pass the result in. It only reads files; it never writes, never
//! touches the network, and hashes a folder's files as `crate::folder` walks them (following links,
//! refusing a dangling link or a loop), the very files an upload sends.
use std::io::Read;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use sha2::{Digest, Sha256};

use super::snapshot::{DesiredExtras, FileContent};
use crate::specs::{FieldSpec, FieldType, Registry};
use crate::stack::{Expr, ExprKind, Stack};

/// Files larger than this are hashed but not kept as text.
pub(crate) const MAX_TEXT_BYTES: u64 = 64 * 1024;

/// A local file or folder that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("read `{}` (named by `{address}.{field}`): {source}", path.display())]
pub struct ContentError {
    pub address: String,
    pub field: String,
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Hashes every file and folder the stack's path fields name. All unreadable paths are reported.
pub fn desired_extras(
    stack: &Stack,
    registry: &Registry,
) -> Result<DesiredExtras, Vec<ContentError>> {
    let mut extras = DesiredExtras::default();
    let mut errors = Vec::new();
    for (address, res) in &stack.resources {
        let Some(spec) = registry.get(&res.type_name) else {
            continue;
        };
        let mut found = Vec::new();
        path_exprs(&spec.fields, "", &res.inputs, &mut found);
        let mut files = IndexMap::new();
        for (field, path) in found {
            match path_content(&path) {
                Ok(c) => {
                    files.insert(field, c);
                }
                Err(source) => errors.push(ContentError {
                    address: address.clone(),
                    field,
                    path,
                    source,
                }),
            }
        }
        if !files.is_empty() {
            extras.resources.insert(address.clone(), files);
        }
    }
    if errors.is_empty() {
        Ok(extras)
    } else {
        Err(errors)
    }
}

/// Every `(field path, local path)` among the inputs, in spec order.
pub(crate) fn path_exprs(
    fields: &IndexMap<String, FieldSpec>,
    prefix: &str,
    inputs: &IndexMap<String, Expr>,
    out: &mut Vec<(String, PathBuf)>,
) {
    for (name, f) in fields {
        let Some(expr) = inputs.get(name) else {
            continue;
        };
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match (&expr.kind, f.kind, &f.fields) {
            (ExprKind::Path(p), FieldType::Path, _) => out.push((path, p.clone())),
            (ExprKind::Map(entries), FieldType::Object, Some(nested)) => {
                path_exprs(nested, &path, entries, out);
            }
            _ => {}
        }
    }
}

/// The content of a file (hash of its bytes, text when small UTF-8) or a folder (hash of the sorted
/// list of its files' relative paths and hashes, the files being those [`crate::folder::files`] walks,
/// the ones an upload sends; no text).
pub(crate) fn path_content(path: &Path) -> std::io::Result<FileContent> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        let mut listing = String::new();
        let entries = crate::folder::files(path)?;
        for f in entries {
            let (hash, _) = hash_file(&f.path)?;
            listing.push_str(&f.rel);
            listing.push('\0');
            listing.push_str(&hash);
            listing.push('\n');
        }
        Ok(FileContent {
            sha256: hex::encode(Sha256::digest(listing.as_bytes())),
            text: None,
        })
    } else {
        let (sha256, text) = hash_file(path)?;
        Ok(FileContent { sha256, text })
    }
}

fn hash_file(path: &Path) -> std::io::Result<(String, Option<String>)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut kept: Vec<u8> = Vec::new();
    let mut total: u64 = 0;
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
        if total <= MAX_TEXT_BYTES {
            kept.extend_from_slice(&buf[..n]);
        }
    }
    let text = (total <= MAX_TEXT_BYTES)
        .then(|| String::from_utf8(kept).ok())
        .flatten();
    Ok((hex::encode(hasher.finalize()), text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_keep_small_text_and_folders_hash_their_listing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("hello.txt");
        std::fs::write(&file, "hello\n").expect("write");
        let c = path_content(&file).expect("read");
        assert_eq!(c.text.as_deref(), Some("hello\n"));
        assert_eq!(
            c.sha256,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );

        let folder = dir.path().join("code");
        std::fs::create_dir_all(folder.join("sub")).expect("mkdir");
        std::fs::write(folder.join("a.py"), "a").expect("write");
        std::fs::write(folder.join("sub/b.py"), "b").expect("write");
        let before = path_content(&folder).expect("read");
        assert!(before.text.is_none());
        assert_eq!(before, path_content(&folder).expect("read again"));
        std::fs::write(folder.join("sub/b.py"), "b2").expect("write");
        assert_ne!(before.sha256, path_content(&folder).expect("read").sha256);

        let binary = dir.path().join("bin");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).expect("write");
        assert!(path_content(&binary).expect("read").text.is_none());
        assert!(path_content(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn extras_cover_every_path_field_and_report_every_missing_one() {
        use crate::plan::testing::{StackBuilder, map, s};
        use crate::stack::ExprKind;

        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("hello.txt"), "hi\n").expect("write");
        std::fs::create_dir_all(dir.path().join("code")).expect("mkdir");
        std::fs::write(dir.path().join("code/score.py"), "def run(): pass\n").expect("write");
        let p = |rel: &str| ExprKind::Path(dir.path().join(rel));
        let stack = StackBuilder::new()
            .res(
                "greeting",
                "blob",
                vec![
                    ("account", s("a")),
                    ("container", s("c")),
                    ("name", s("hello.txt")),
                    ("source", p("hello.txt")),
                ],
            )
            .res(
                "blue",
                "online_deployment",
                vec![
                    ("name", s("blue")),
                    ("endpoint", s("ep")),
                    ("model", s("azureml:model:1")),
                    (
                        "code_configuration",
                        map(vec![("code", p("code")), ("scoring_script", s("score.py"))]),
                    ),
                    ("environment", map(vec![("conda_file", p("missing.yaml"))])),
                ],
            )
            .build();
        let registry = Registry::embedded().expect("specs");
        let errors = desired_extras(&stack, &registry).expect_err("conda file is missing");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "environment.conda_file");
        assert!(
            errors[0]
                .to_string()
                .contains("named by `blue.environment.conda_file`")
        );

        std::fs::write(dir.path().join("missing.yaml"), "name: env\n").expect("write");
        let extras = desired_extras(&stack, &registry).expect("all present");
        assert_eq!(
            extras
                .content("greeting", "source")
                .and_then(|c| c.text.as_deref()),
            Some("hi\n")
        );
        let blue = &extras.resources["blue"];
        assert_eq!(
            blue.keys().collect::<Vec<_>>(),
            vec!["code_configuration.code", "environment.conda_file"]
        );
    }
}
