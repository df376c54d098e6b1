//! The YAML the documentation shows parses: every ```yaml block of README.md and docs/*.md goes through
//! the same parser as a stack file. A reader copies these blocks; one that is not YAML fails at once.
use std::path::{Path, PathBuf};

use stackform::diag::SourceFile;
use stackform::yaml::{Budget, parse};

/// `(first line of the block, its text)` of each ```yaml block of `text`.
fn yaml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start();
        match &mut open {
            None if fence.starts_with("```yaml") || fence.starts_with("```yml") => {
                open = Some((i + 2, String::new()));
            }
            Some(_) if fence.starts_with("```") => blocks.extend(open.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The bug: the README's example of `moved:` wrote `name: demo${var.suffix}` inside a `{ … }` mapping,
/// where `{` ends a plain value, so the stack file a reader copied was refused as invalid YAML.
#[test]
fn every_yaml_block_in_the_documentation_parses() {
    let mut bad = Vec::new();
    let mut seen = 0;
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, block) in yaml_blocks(&text) {
            seen += 1;
            let src = SourceFile::new(file.clone(), block);
            if let Err(problems) = parse(&src, Budget::default()) {
                let first = problems
                    .first()
                    .map(|d| d.message.clone())
                    .unwrap_or_default();
                bad.push(format!("{}:{line}: {first}", file.display()));
            }
        }
    }
    assert!(
        seen >= 3,
        "only {seen} yaml blocks found: is the fence detection broken?"
    );
    assert!(
        bad.is_empty(),
        "yaml blocks that do not parse:\n{}",
        bad.join("\n")
    );
}
