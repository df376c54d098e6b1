//! The boundaries `docs/ARCHITECTURE.md` promises, checked by reading `src/`: no file imports a file
//! that imports it back (directly or through a longer circle), the local cloud and the engine never
//! import each other, and no resource type's name is written as a string in `plan/` or `apply/`.
//!
//! The reader is textual (it follows `use` items and `crate::`/`super::`/`self::` paths, and a parent
//! module's references to its children), which is all these rules need; code inside
//! `#[cfg(test)] mod tests { … }` blocks is left out, since test modules are allowed to reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::repo_root;

/// One source file: its module path (`["cloud", "arm", "route"]`; a `mod.rs` is its folder's module) and its code without comments,
/// string contents and unit-test blocks.
struct SourceFile {
    path: PathBuf,
    module: Vec<String>,
    code: String,
    /// The code with string literals kept (for the type-name rule).
    code_with_strings: String,
}

fn source_files() -> Vec<SourceFile> {
    let src = repo_root().join("src");
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(&src).sort_by_file_name() {
        let entry = entry.expect("src/ is readable");
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(&src).expect("under src/");
        let mut module: Vec<String> = rel
            .with_extension("")
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let stem = module.last().cloned().unwrap_or_default();
        let is_mod_file = matches!(stem.as_str(), "mod" | "lib" | "main");
        if is_mod_file {
            module.pop();
        }
        if stem == "main" && module.is_empty() {
            continue; // the binary's entry point is its own crate
        }
        let text = std::fs::read_to_string(path).expect("source is UTF-8");
        let code = mask(&text, false);
        let tests = test_block_lines(&code);
        out.push(SourceFile {
            path: path.to_path_buf(),
            module,
            code: blank_lines(&code, &tests),
            code_with_strings: blank_lines(&mask(&text, true), &tests),
        });
    }
    out
}

/// The lines of every `#[cfg(test)] mod … { … }` block, found in masked code (so braces in strings
/// and comments do not count).
fn test_block_lines(masked: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = masked[from..].find("#[cfg(test)]") {
        let start = from + at;
        from = start + 1;
        let after = &masked[start..];
        let Some(open) = after.find(['{', ';']) else {
            break;
        };
        if !after[..open].contains("mod ") || !after[open..].starts_with('{') {
            continue;
        }
        let mut depth = 0usize;
        let mut end = masked.len();
        for (i, ch) in after[open..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = start + open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let line_of = |byte: usize| masked[..byte].matches('\n').count();
        out.push(line_of(start)..line_of(end) + 1);
        from = end;
    }
    out
}

/// The text with the given lines emptied (line numbers stay true).
fn blank_lines(text: &str, ranges: &[std::ops::Range<usize>]) -> String {
    text.split('\n')
        .enumerate()
        .map(|(n, line)| {
            if ranges.iter().any(|r| r.contains(&n)) {
                ""
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Comments and char literals become spaces, and string contents too unless `keep_strings`;
/// newlines stay, so line numbers in the result are those of the file.
fn mask(text: &str, keep_strings: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, part: &[char]| {
        out.extend(part.iter().map(|c| if *c == '\n' { '\n' } else { ' ' }));
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let end = chars[i..]
                .iter()
                .position(|c| *c == '\n')
                .map_or(chars.len(), |p| i + p);
            blank(&mut out, &chars[i..end]);
            i = end;
        } else if c == '/' && next == Some('*') {
            let mut end = i + 2;
            while end + 1 < chars.len() && !(chars[end] == '*' && chars[end + 1] == '/') {
                end += 1;
            }
            let end = (end + 2).min(chars.len());
            blank(&mut out, &chars[i..end]);
            i = end;
        } else if c == '"'
            || (c == 'r' && matches!(next, Some('#' | '"')) && !prev_is_ident(&chars, i))
        {
            // A string: "…" with escapes, or raw r"…" / r#"…"#.
            let raw = c == 'r';
            let mut j = i + usize::from(raw);
            let mut hashes = 0;
            while raw && chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let start = j + 1;
            let mut k = start;
            while k < chars.len() {
                if !raw && chars[k] == '\\' {
                    k += 2;
                    continue;
                }
                if chars[k] == '"' && (0..hashes).all(|h| chars.get(k + 1 + h) == Some(&'#')) {
                    break;
                }
                k += 1;
            }
            let k = k.min(chars.len());
            out.extend(&chars[i..start]);
            if keep_strings {
                out.extend(&chars[start..k]);
            } else {
                blank(&mut out, &chars[start..k]);
            }
            let close = (k + 1 + hashes).min(chars.len());
            out.extend(&chars[k..close]);
            i = close;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            out.push_str("' '");
            i += 3;
        } else if c == '\'' && next == Some('\\') {
            let end = chars[i + 2..]
                .iter()
                .position(|c| *c == '\'')
                .map_or(chars.len(), |p| i + 3 + p);
            blank(&mut out, &chars[i..end]);
            i = end;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// Every path a file names: `use` trees expanded, plus `crate::…`, `super::…` and `self::…` paths in
/// code. Each path is a list of segments starting with `crate`, `super`, `self` or a plain name.
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = find_keyword(rest, "use") {
        let after = &rest[at + 3..];
        let end = after.find(';').unwrap_or(after.len());
        let tree = after[..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        expand_use_tree(&[], &tree, &mut out);
        rest = &after[end..];
    }
    let chars: Vec<char> = code.chars().collect();
    let text: String = chars.iter().collect();
    for root in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = text[from..].find(root) {
            let start = from + at;
            from = start + root.len();
            if start > 0 {
                let prev = text[..start].chars().next_back().unwrap_or(' ');
                if prev.is_alphanumeric() || prev == '_' || prev == ':' {
                    continue;
                }
            }
            let path: String = text[start..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            // `super::{a, b}` is a use tree, counted above; a path here names something after its root.
            let segments = segments(&path);
            if segments.len() > 1 {
                out.push(segments);
            }
        }
    }
    out
}

fn find_keyword(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = text[from..].find(word) {
        let start = from + at;
        let before_ok = start == 0
            || !text[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
        let after_ok = text[start + word.len()..].starts_with(char::is_whitespace);
        if before_ok && after_ok {
            return Some(start);
        }
        from = start + word.len();
    }
    None
}

/// `a::{b, c::{d, e as f}}` → `[a, b]`, `[a, c, d]`, `[a, c, e]`.
fn expand_use_tree(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim().trim_start_matches("::");
    if let Some(open) = tree.find('{') {
        let mut base = prefix.to_vec();
        base.extend(segments(&tree[..open]));
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut depth = 0;
        let mut item = String::new();
        for ch in inner.chars() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_use_tree(&base, &item, out);
                    item.clear();
                    continue;
                }
                _ => {}
            }
            item.push(ch);
        }
        if !item.trim().is_empty() {
            expand_use_tree(&base, &item, out);
        }
    } else if !tree.is_empty() {
        // `Thing as Alias`: the path is what comes before the first space.
        let name = tree.split_whitespace().next().unwrap_or(tree);
        let mut path = prefix.to_vec();
        path.extend(segments(name));
        out.push(path);
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The file module a path lands in: the longest prefix of its absolute form that is a file.
fn resolve(
    from: &SourceFile,
    path: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let first = path.first()?;
    // The module a relative path is relative to: a mod.rs file is its own module; `super` is its parent.
    let own = &from.module;
    let absolute: Vec<String> = match first.as_str() {
        "crate" => path[1..].to_vec(),
        "self" => own.iter().chain(&path[1..]).cloned().collect(),
        "super" => {
            let mut base = own.clone();
            let mut i = 0;
            while path.get(i).is_some_and(|s| s == "super") {
                base.pop();
                i += 1;
            }
            base.into_iter().chain(path[i..].iter().cloned()).collect()
        }
        // A plain first segment names a child module when this file declares one of that name.
        name => {
            let mut child = own.clone();
            child.push(name.to_string());
            if !modules.contains(&child) {
                return None;
            }
            own.iter().chain(path).cloned().collect()
        }
    };
    (0..=absolute.len())
        .rev()
        .map(|n| absolute[..n].to_vec())
        .find(|candidate| modules.contains(candidate))
}

fn import_graph(files: &[SourceFile]) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in files {
        let targets = edges.entry(file.module.clone()).or_default();
        for path in named_paths(&file.code) {
            if let Some(target) = resolve(file, &path, &modules)
                && target != file.module
            {
                targets.insert(target);
            }
        }
    }
    edges
}

/// Every circle of imports, each as the list of files around it (one per strongly connected set).
fn circles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    let nodes: Vec<&Vec<String>> = edges.keys().collect();
    let reaches = |from: &Vec<String>| -> BTreeSet<Vec<String>> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for next in edges.get(&n).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&Vec<String>, BTreeSet<Vec<String>>> =
        nodes.iter().map(|n| (*n, reaches(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in &nodes {
        if done.contains(*n) || !reach[n].contains(*n) {
            continue;
        }
        let members: Vec<Vec<String>> = nodes
            .iter()
            .filter(|m| reach[n].contains(**m) && reach[**m].contains(*n))
            .map(|m| (*m).clone())
            .collect();
        done.extend(members.iter().cloned());
        out.push(members);
    }
    out
}

fn shown(module: &[String]) -> String {
    if module.is_empty() {
        "lib".to_string()
    } else {
        module.join("/")
    }
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let files = source_files();
    assert!(files.len() > 50, "the walk found the sources");
    let graph = import_graph(&files);
    let found: Vec<String> = circles(&graph)
        .iter()
        .map(|members| {
            // Each import inside the circle, so the message says which line of which file to change.
            let inside: Vec<String> = members
                .iter()
                .flat_map(|from| {
                    graph[from]
                        .iter()
                        .filter(|to| members.contains(to))
                        .map(move |to| format!("  {} imports {}", shown(from), shown(to)))
                })
                .collect();
            format!(
                "a circle of {} files:\n{}",
                members.len(),
                inside.join("\n")
            )
        })
        .collect();
    assert!(
        found.is_empty(),
        "import circles in src/:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_reader_sees_a_circle_when_there_is_one() {
    // The rule above would pass vacuously if the reader found no edges; two small files prove it can fail.
    let file = |module: &[&str], code: &str| SourceFile {
        path: PathBuf::new(),
        module: module.iter().map(|s| s.to_string()).collect(),
        code: mask(code, false),
        code_with_strings: code.to_string(),
    };
    let files = [
        file(&["a"], "mod b; pub use b::Thing; pub struct Other;"),
        file(&["a", "b"], "use super::Other; pub struct Thing;"),
        file(&["c"], "use crate::a::{b::Thing, Other as O};"),
    ];
    let graph = import_graph(&files);
    assert_eq!(circles(&graph).len(), 1, "{graph:?}");
    assert!(graph[&vec!["c".to_string()]].contains(&vec!["a".to_string(), "b".to_string()]));
}

#[test]
fn the_local_cloud_and_the_engine_never_import_each_other() {
    let engine = [
        "apply", "plan", "provider", "state", "stack", "graph", "report", "cli",
    ];
    let files = source_files();
    let graph = import_graph(&files);
    let mut wrong = Vec::new();
    for (from, targets) in &graph {
        let from_cloud = from.first().is_some_and(|s| s == "cloud");
        for to in targets {
            let to_cloud = to.first().is_some_and(|s| s == "cloud");
            let to_engine = to.first().is_some_and(|s| engine.contains(&s.as_str()));
            let from_cli = from.first().is_some_and(|s| s == "cli");
            if (from_cloud && to_engine)
                || (to_cloud && !from_cloud && !from_cli && !from.is_empty())
            {
                wrong.push(format!("{} imports {}", shown(from), shown(to)));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_resource_type_name_is_written_in_plan_or_apply() {
    let types: Vec<String> = std::fs::read_dir(repo_root().join("specs"))
        .expect("specs/ is readable")
        .filter_map(|e| {
            let path = e.ok()?.path();
            let stem = path.file_stem()?.to_string_lossy().into_owned();
            (path.extension()? == "yaml").then_some(stem)
        })
        .collect();
    assert!(types.len() >= 7, "the spec files were found: {types:?}");
    let test_support = ["tests", "testing", "plan_tests", "memory"];
    let mut found = Vec::new();
    for file in source_files() {
        let area = file.module.first().map(String::as_str);
        if !matches!(area, Some("plan" | "apply"))
            || file
                .module
                .last()
                .is_some_and(|m| test_support.contains(&m.as_str()))
        {
            continue;
        }
        for (n, line) in file.code_with_strings.lines().enumerate() {
            for t in &types {
                if line.contains(&format!("\"{t}\"")) {
                    found.push(format!(
                        "{}:{}: {}",
                        relative(&file.path),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "decide by spec key, not by type name:\n{}",
        found.join("\n")
    );
}
