//! The files of a local folder a stack uploads (a deployment's code or model folder), walked one way
//! for both users: planning hashes exactly these files (`plan::content`) and the provider uploads
//! exactly these files (`provider::resources::online_deployment`), so the hash a plan shows is the
//! hash of what is sent.
//!
//! Symbolic links are followed, to files and folders inside or outside the folder, each one noted
//! in the log (`-v`); a link that leads nowhere (dangling) or back into a folder it is in (a loop) is
//! an error naming it, never skipped. `__pycache__` and `.git` folders are left out. It only reads
//! the file system; it never writes, and never reads a file's bytes.
use std::path::{Path, PathBuf};

/// Folders never uploaded nor hashed: Python's byte-code cache and a Git repository.
const SKIPPED: [&str; 2] = ["__pycache__", ".git"];

/// One file of a walked folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FolderFile {
    /// Its path relative to the folder, with `/` between components.
    pub rel: String,
    /// Its path on disk (through any link that led to it).
    pub path: PathBuf,
}

/// A link in the folder that cannot be followed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FolderError {
    #[error(
        "the symbolic link {} in {} leads to {}, which does not exist",
        .link.display(), .root.display(), .target.display()
    )]
    Dangling {
        root: PathBuf,
        link: PathBuf,
        target: PathBuf,
    },
    #[error(
        "the symbolic link {} in {} leads back to {}, a folder it is in (a loop)",
        .link.display(), .root.display(), .ancestor.display()
    )]
    Loop {
        root: PathBuf,
        link: PathBuf,
        ancestor: PathBuf,
    },
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<FolderError> for std::io::Error {
    fn from(e: FolderError) -> Self {
        let kind = match &e {
            FolderError::Dangling { .. } => std::io::ErrorKind::NotFound,
            FolderError::Read { source, .. } => source.kind(),
            FolderError::Loop { .. } => std::io::ErrorKind::InvalidData,
        };
        std::io::Error::new(kind, e.to_string())
    }
}

/// The files under `root` (a folder), sorted by relative path, following symbolic links.
pub(crate) fn files(root: &Path) -> Result<Vec<FolderFile>, FolderError> {
    let mut out = Vec::new();
    let walk = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !SKIPPED
                    .iter()
                    .any(|s| e.file_name() == std::ffi::OsStr::new(s))
        });
    for entry in walk {
        let entry = entry.map_err(|e| walk_error(root, e))?;
        if entry.path_is_symlink() && entry.depth() > 0 {
            let target = std::fs::read_link(entry.path()).unwrap_or_default();
            tracing::info!(
                "following the symbolic link {} -> {} (in {})",
                entry.path().display(),
                target.display(),
                root.display()
            );
        }
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        out.push(FolderFile {
            rel,
            path: entry.path().to_path_buf(),
        });
    }
    out.sort();
    Ok(out)
}

fn walk_error(root: &Path, e: walkdir::Error) -> FolderError {
    let path = e
        .path()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.into());
    if let Some(ancestor) = e.loop_ancestor() {
        return FolderError::Loop {
            root: root.into(),
            link: path,
            ancestor: ancestor.to_path_buf(),
        };
    }
    let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link && std::fs::metadata(&path).is_err() {
        return FolderError::Dangling {
            root: root.into(),
            target: std::fs::read_link(&path).unwrap_or_default(),
            link: path,
        };
    }
    let source = e
        .into_io_error()
        .unwrap_or_else(|| std::io::Error::other("cannot walk the folder"));
    FolderError::Read { path, source }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn rels(root: &Path) -> Vec<String> {
        files(root).unwrap().into_iter().map(|f| f.rel).collect()
    }

    #[test]
    fn links_to_files_and_folders_inside_and_outside_are_followed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("shared.py"), "x = 1\n").unwrap();
        std::fs::create_dir(outside.path().join("lib")).unwrap();
        std::fs::write(outside.path().join("lib/util.py"), "y = 2\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("score.py"), "print(1)\n").unwrap();
        std::fs::create_dir(dir.path().join("__pycache__")).unwrap();
        std::fs::write(dir.path().join("__pycache__/score.pyc"), "c").unwrap();
        symlink(
            outside.path().join("shared.py"),
            dir.path().join("shared.py"),
        )
        .unwrap();
        symlink(outside.path().join("lib"), dir.path().join("lib")).unwrap();
        symlink("score.py", dir.path().join("again.py")).unwrap();
        assert_eq!(
            rels(dir.path()),
            ["again.py", "lib/util.py", "score.py", "shared.py"]
        );
    }

    #[test]
    fn a_dangling_link_and_a_loop_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("score.py"), "").unwrap();
        symlink("gone.py", dir.path().join("broken.py")).unwrap();
        let msg = files(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("broken.py") && msg.contains("gone.py") && msg.contains("does not exist"),
            "{msg}"
        );
        std::fs::remove_file(dir.path().join("broken.py")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        symlink("..", dir.path().join("sub/up")).unwrap();
        let msg = files(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("up") && msg.contains("a loop"), "{msg}");
    }
}
