//! `stackform validate` and `stackform graph` driven through the real binary.
mod common;

use common::{Cmd, example, repo_root};

#[test]
fn examples_validate() {
    for name in ["managed-identity", "managed-identity-uai"] {
        let out = Cmd::new()
            .args(["validate", "-f"])
            .arg_path(example(name))
            .run()
            .code(0);
        assert!(out.stdout.contains("is valid"), "{}", out.stdout);
    }
}

#[test]
fn graph_of_the_reference_stack_has_the_inferred_edge_dashed() {
    let out = Cmd::new()
        .args(["graph", "-f", "examples/managed-identity/stack.yaml"])
        .run()
        .code(0);
    assert!(
        out.stdout
            .contains("\"endpoint\" -> \"reader\" [label=\"identity.principal_id\"];")
    );
    assert!(
        out.stdout
            .contains("\"reader\" -> \"blue\" [label=\"inferred\", style=dashed];")
    );
    insta::assert_snapshot!("graph_dot_managed_identity", out.stdout);
}

#[test]
fn graph_json_is_stable() {
    let out = Cmd::new()
        .args([
            "graph",
            "--format",
            "json",
            "-f",
            "examples/managed-identity/stack.yaml",
        ])
        .run()
        .code(0);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        json["order"],
        serde_json::json!(["store", "data", "greeting", "endpoint", "reader", "blue"])
    );
    insta::assert_json_snapshot!("graph_json_managed_identity", json);
}

#[test]
fn graph_of_the_uai_stack() {
    let out = Cmd::new()
        .args(["graph", "-f", "examples/managed-identity-uai/stack.yaml"])
        .run()
        .code(0);
    insta::assert_snapshot!("graph_dot_managed_identity_uai", out.stdout);
}

#[test]
fn errors_are_located_and_exit_1() {
    let out = Cmd::new()
        .args([
            "validate",
            "-f",
            "examples/managed-identity/stack.yaml",
            "--var",
            "suffix=Not_Valid",
        ])
        .run()
        .code(1);
    assert!(
        out.stderr
            .contains("--> examples/managed-identity/stack.yaml:15:11"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("15 |     name: mistore${var.suffix}"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("error: 2 problem(s) found; nothing was changed"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn every_bad_corpus_file_fails_cleanly_through_the_binary() {
    // The corpus test checks messages and positions through the library; this one checks the binary's
    // exit code and that nothing panics on any of them.
    let dir = repo_root().join("tests/bad");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        // Header comments give the --var, --var-file and environment a case needs (see stack_bad_corpus.rs).
        let text = std::fs::read_to_string(&path).unwrap();
        let mut cmd = Cmd::new().args(["validate", "-f"]).arg_path(&path);
        for line in text.lines().map_while(|l| l.strip_prefix('#')) {
            let line = line.trim();
            if let Some(v) = line.strip_prefix("var:") {
                cmd = cmd.args(["--var", v.trim()]);
            } else if let Some(f) = line.strip_prefix("var-file:") {
                cmd = cmd.arg("--var-file").arg_path(dir.join(f.trim()));
            } else if let Some((k, v)) = line
                .strip_prefix("env:")
                .and_then(|e| e.trim().split_once('='))
            {
                cmd = cmd.env(k, v);
            }
        }
        let out = cmd.run();
        assert_eq!(out.code, 1, "{}: {}", path.display(), out.stderr);
        assert!(
            !out.stderr.contains("panicked"),
            "{}: {}",
            path.display(),
            out.stderr
        );
        assert!(out.stderr.contains("error:"), "{}", path.display());
        count += 1;
    }
    assert!(count >= 30, "only {count} bad files");
}

#[test]
fn missing_stack_file_and_bad_flags_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Cmd::new()
        .current_dir(tmp.path())
        .args(["validate"])
        .run()
        .code(1);
    assert!(
        out.stderr.contains("stack file stack.yaml not found"),
        "{}",
        out.stderr
    );
    let out = Cmd::new()
        .args(["validate", "--var", "novalue"])
        .run()
        .code(1);
    assert!(out.stderr.contains("expected NAME=VALUE"), "{}", out.stderr);
    Cmd::new().args(["graph", "--format", "svg"]).run().code(1);
}

#[test]
fn help_is_complete() {
    let out = Cmd::new().args(["--help"]).run().code(0);
    for cmd in [
        "validate", "plan", "apply", "destroy", "drift", "output", "invoke", "logs", "state",
        "graph", "schema", "cloud",
    ] {
        assert!(out.stdout.contains(cmd), "{cmd} missing from --help");
    }
    let out = Cmd::new().args(["graph", "--help"]).run().code(0);
    assert!(out.stdout.contains("--format"));
    assert!(out.stdout.contains("inferred"));
}
