//! The corpus of bad stack files in `tests/bad/*.yaml`, loaded through the library. Each file opens
//! with comment lines that say what the loader must report and with which `--var`, `--var-file` and
//! environment (the format is documented on [`BadCase`]).
//!
//! Every expected diagnostic must be reported at exactly that line and column with a message containing
//! the fragment, and nothing else may be reported.
use std::path::Path;

use stackform::diag::{self, Diagnostic};
use stackform::specs::Registry;
use stackform::stack;

use crate::support::fixtures::{BadCase, Expect, bad_dir};

fn matches(e: &Expect, d: &Diagnostic, stack_path: &Path) -> bool {
    let file_ok = match &e.file {
        None => d.source.path == stack_path,
        Some(f) if f == "<command line>" => d.source.path == Path::new("<command line>"),
        Some(f) => d.source.path.ends_with(f),
    };
    file_ok && d.line_col() == (e.line, e.col) && d.message.contains(&e.fragment)
}

fn check(case: &BadCase, registry: &Registry) -> Result<(), String> {
    if case.expects.is_empty() {
        return Err("no `# expect:` line".to_string());
    }
    let diags = match stack::load(&case.path, &case.load_options(), registry) {
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
    let files = BadCase::corpus();
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
        let result = BadCase::parse(file).and_then(|case| check(&case, &registry));
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
    let diags = stack::load(&path, &stack::LoadOptions::default(), &registry).expect_err("errors");
    let positions: Vec<usize> = diags.iter().map(|d| d.span.start).collect();
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert_eq!(positions, sorted);
    assert!(diags.len() >= 7);
}
