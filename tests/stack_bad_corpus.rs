//! The corpus of bad stack files in `tests/bad/*.yaml`. Each file opens with comment lines that say what
//! the loader must report:
//!
//! ```text
//! # expect: [FILE:]LINE:COL MESSAGE FRAGMENT   (one per expected diagnostic; FILE defaults to the stack)
//! # var: NAME=VALUE                             (a --var flag)
//! # var-file: RELATIVE/PATH.yaml                (a --var-file, relative to tests/bad)
//! # env: NAME=VALUE                             (an environment variable; the environment is otherwise empty)
//! ```
//!
//! Every expected diagnostic must be reported at exactly that line and column with a message containing
//! the fragment, and nothing else may be reported.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use stackform::diag::{self, Diagnostic};
use stackform::specs::Registry;
use stackform::stack::{self, LoadOptions};

struct Expect {
    file: Option<String>,
    line: usize,
    col: usize,
    fragment: String,
}

struct Case {
    path: PathBuf,
    expects: Vec<Expect>,
    opts: LoadOptions,
}

fn bad_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad")
}

fn parse_case(path: &Path) -> Result<Case, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut expects = Vec::new();
    let mut opts = LoadOptions {
        env: HashMap::new(),
        ..LoadOptions::default()
    };
    for line in text.lines() {
        let Some(comment) = line.strip_prefix('#') else {
            break;
        };
        let comment = comment.trim();
        if let Some(rest) = comment.strip_prefix("expect:") {
            let rest = rest.trim();
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
            expects.push(Expect {
                file: parts.next().map(str::to_string),
                line: line_no,
                col,
                fragment: fragment.trim().to_string(),
            });
        } else if let Some(rest) = comment.strip_prefix("var:") {
            let (k, v) = stack::parse_var_arg(rest.trim()).map_err(|e| e.to_string())?;
            opts.vars.push((k, v));
        } else if let Some(rest) = comment.strip_prefix("var-file:") {
            opts.var_files.push(bad_dir().join(rest.trim()));
        } else if let Some(rest) = comment.strip_prefix("env:") {
            let (k, v) = rest
                .trim()
                .split_once('=')
                .ok_or_else(|| format!("bad env line `{line}`"))?;
            opts.env.insert(k.to_string(), v.to_string());
        }
    }
    if expects.is_empty() {
        return Err("no `# expect:` line".to_string());
    }
    Ok(Case {
        path: path.to_path_buf(),
        expects,
        opts,
    })
}

fn matches(e: &Expect, d: &Diagnostic, stack_path: &Path) -> bool {
    let file_ok = match &e.file {
        None => d.source.path == stack_path,
        Some(f) if f == "<command line>" => d.source.path == Path::new("<command line>"),
        Some(f) => d.source.path.ends_with(f),
    };
    file_ok && d.line_col() == (e.line, e.col) && d.message.contains(&e.fragment)
}

fn check(case: &Case, registry: &Registry) -> Result<(), String> {
    let diags = match stack::load(&case.path, &case.opts, registry) {
        Ok(_) => return Err("loaded without errors".to_string()),
        Err(d) => d,
    };
    let mut used = vec![false; diags.len()];
    let mut problems = Vec::new();
    for e in &case.expects {
        let found = diags
            .iter()
            .enumerate()
            .find(|(i, d)| !used[*i] && matches(e, d, &case.path));
        match found {
            Some((i, _)) => used[i] = true,
            None => problems.push(format!(
                "missing: {}{}:{} {}",
                e.file.as_deref().map_or(String::new(), |f| format!("{f}:")),
                e.line,
                e.col,
                e.fragment
            )),
        }
    }
    for (d, u) in diags.iter().zip(&used) {
        if !u {
            let (l, c) = d.line_col();
            problems.push(format!(
                "unexpected: {}:{l}:{c} {}",
                d.source.path.display(),
                d.message
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n--- rendered ---\n{}",
            problems.join("\n"),
            diag::render(&diags, diag::Style::default())
        ))
    }
}

#[test]
fn every_bad_stack_reports_exactly_its_expected_diagnostics() {
    let registry = Registry::embedded().expect("embedded specs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(bad_dir())
        .expect("tests/bad exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 30,
        "the corpus should hold at least 30 files, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let name = file
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let result = parse_case(file).and_then(|case| check(&case, &registry));
        if let Err(why) = result {
            failures.push(format!("== {name}\n{why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad stacks failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn diagnostics_are_sorted_by_location() {
    let registry = Registry::embedded().expect("embedded specs");
    let path = bad_dir().join("several-errors.yaml");
    let diags = stack::load(&path, &LoadOptions::default(), &registry).expect_err("errors");
    let positions: Vec<usize> = diags.iter().map(|d| d.span.start).collect();
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert_eq!(positions, sorted);
    assert!(diags.len() >= 7);
}
