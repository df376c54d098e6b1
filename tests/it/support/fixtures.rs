//! Where the test data lives and how tests get their own copy of it: the repository root, the examples,
//! `tests/fixtures`, the bad-stack corpus in `tests/bad` (with the parser of its header comments), and
//! one recursive folder copy. Nothing here writes outside a folder the caller owns.
use std::path::{Path, PathBuf};

use stackform::stack::{self, LoadOptions};

/// The crate's root folder (where `Cargo.toml` is).
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `examples/<name>`: a stack folder with its `stack.yaml` and the files it uploads.
pub(crate) fn example_dir(name: &str) -> PathBuf {
    repo_root().join("examples").join(name)
}

/// `examples/<name>/stack.yaml`.
pub(crate) fn example(name: &str) -> PathBuf {
    example_dir(name).join("stack.yaml")
}

/// `tests/fixtures/<rel>`.
pub(crate) fn fixture(rel: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(rel)
}

/// `tests/bad`: stack files that must fail to load, each saying how in its header.
pub(crate) fn bad_dir() -> PathBuf {
    repo_root().join("tests/bad")
}

/// Copies the folder `from` into `to` (created if missing), files and sub-folders alike.
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.expect("walk the source folder");
        let rel = entry.path().strip_prefix(from).expect("inside the source");
        let target = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).expect("create folder");
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// Copies the stack folder `from` into `to` like [`copy_dir`], without the state a developer's own
/// runs keep beside the stack file (`state/`, e.g. the demo's in `examples/managed-identity/state/`):
/// a test's fresh cloud would take that state for another cloud's.
pub(crate) fn copy_stack_folder(from: &Path, to: &Path) {
    copy_dir(from, to);
    let _ = std::fs::remove_dir_all(to.join("state"));
}

/// `examples/<name>` copied into `to`, without its `state/` ([`copy_stack_folder`]).
pub(crate) fn copy_example(name: &str, to: &Path) {
    copy_stack_folder(&example_dir(name), to);
}

/// Every file below `dir` whose name ends with `.ext`, sorted.
pub(crate) fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .map(walkdir::DirEntry::into_path)
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// One diagnostic a bad stack file expects: `# expect: [FILE:]LINE:COL MESSAGE FRAGMENT`.
pub(crate) struct Expect {
    pub file: Option<String>,
    pub line: usize,
    pub col: usize,
    pub fragment: String,
}

/// A file of `tests/bad` with what its header comments ask for. The header is the run of `#` lines at
/// the top of the file:
///
/// ```text
/// # expect: [FILE:]LINE:COL MESSAGE FRAGMENT   (one per expected diagnostic; FILE defaults to the stack)
/// # var: NAME=VALUE                             (a --var flag)
/// # var-file: RELATIVE/PATH.yaml                (a --var-file, relative to tests/bad)
/// # env: NAME=VALUE                             (an environment variable; the environment is otherwise empty)
/// ```
pub(crate) struct BadCase {
    pub path: PathBuf,
    pub expects: Vec<Expect>,
    pub vars: Vec<(String, String)>,
    pub var_files: Vec<PathBuf>,
    pub env: Vec<(String, String)>,
}

impl BadCase {
    /// Every `tests/bad/*.yaml`, sorted by name.
    pub(crate) fn corpus() -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(bad_dir())
            .expect("tests/bad exists")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        files
    }

    /// Reads the header of `path`; an unreadable or malformed header is an error naming the line.
    pub(crate) fn parse(path: &Path) -> Result<BadCase, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let mut case = BadCase {
            path: path.to_path_buf(),
            expects: Vec::new(),
            vars: Vec::new(),
            var_files: Vec::new(),
            env: Vec::new(),
        };
        for line in text.lines() {
            let Some(comment) = line.strip_prefix('#') else {
                break;
            };
            let comment = comment.trim();
            if let Some(rest) = comment.strip_prefix("expect:") {
                case.expects.push(parse_expect(rest.trim(), line)?);
            } else if let Some(rest) = comment.strip_prefix("var:") {
                case.vars
                    .push(stack::parse_var_arg(rest.trim()).map_err(|e| e.to_string())?);
            } else if let Some(rest) = comment.strip_prefix("var-file:") {
                case.var_files.push(bad_dir().join(rest.trim()));
            } else if let Some(rest) = comment.strip_prefix("env:") {
                let (k, v) = rest
                    .trim()
                    .split_once('=')
                    .ok_or_else(|| format!("bad env line `{line}`"))?;
                case.env.push((k.to_string(), v.to_string()));
            }
        }
        Ok(case)
    }

    /// The loader options the header asks for (the environment holds only the header's variables).
    pub(crate) fn load_options(&self) -> LoadOptions {
        LoadOptions {
            vars: self.vars.clone(),
            var_files: self.var_files.clone(),
            env: self.env.iter().cloned().collect(),
            ..LoadOptions::default()
        }
    }

    /// The same as command-line flags for `stackform validate -f <file>`.
    pub(crate) fn cli_args(&self) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> =
            vec!["validate".into(), "-f".into(), self.path.clone().into()];
        for (k, v) in &self.vars {
            args.push("--var".into());
            args.push(format!("{k}={v}").into());
        }
        for f in &self.var_files {
            args.push("--var-file".into());
            args.push(f.clone().into());
        }
        args
    }
}

fn parse_expect(rest: &str, line: &str) -> Result<Expect, String> {
    // `<command line>` contains a space; every other location does not.
    const CMD: &str = "<command line>";
    let split_at = match rest.strip_prefix(CMD) {
        Some(tail) => tail.find(' ').map(|i| i + CMD.len()),
        None => rest.find(' '),
    };
    let (loc, fragment) = split_at
        .map(|i| rest.split_at(i))
        .ok_or_else(|| format!("bad expect line `{line}`"))?;
    let mut parts = loc.rsplitn(3, ':');
    let col = parts.next().and_then(|c| c.parse().ok());
    let line_no = parts.next().and_then(|l| l.parse().ok());
    let (Some(col), Some(line_no)) = (col, line_no) else {
        return Err(format!("bad location in `{line}`"));
    };
    Ok(Expect {
        file: parts.next().map(str::to_string),
        line: line_no,
        col,
        fragment: fragment.trim().to_string(),
    })
}
