//! `stackform validate` and `stackform graph` driven through the real binary: the examples are valid,
//! the graph's DOT and JSON forms, located errors with exit code 1, every bad-corpus file failing cleanly,
//! and `--help`.
use crate::support::fixtures::BadCase;
use crate::support::{Cmd, Redactor, Test, example};

#[test]
fn examples_validate() {
    for name in ["managed-identity", "managed-identity-uai"] {
        let out = Cmd::new()
            .args(["validate", "-f"])
            .arg(example(name))
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
    let args = [
        "validate",
        "-f",
        "examples/managed-identity/stack.yaml",
        "--var",
        "suffix=Not_Valid",
    ];
    let out = Cmd::new().args(args).run().code(1);
    insta::assert_snapshot!("validate_errors", Redactor::new().transcript(&args, &out));
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
    // exit code and that nothing panics on any of them. Header comments give the --var, --var-file and
    // environment a case needs (see stack_bad_corpus.rs).
    let files = BadCase::corpus();
    for path in &files {
        let case = BadCase::parse(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut cmd = Cmd::new().args(case.cli_args());
        for (k, v) in &case.env {
            cmd = cmd.env(k, v);
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
    }
    assert!(files.len() >= 30, "only {} bad files", files.len());
}

#[test]
fn diagnostics_of_a_file_with_several_errors() {
    let args = ["validate", "-f", "tests/bad/several-errors.yaml"];
    let out = Cmd::new().args(args).run().code(1);
    insta::assert_snapshot!(
        "validate_several_errors",
        Redactor::new().transcript(&args, &out)
    );
}

#[test]
fn a_misspelt_field_and_a_dangling_reference_are_both_reported_with_hints() {
    let t = Test::new().stack(
        "stack: hints\n\
         resources:\n  \
           store:\n    \
             type: storage_account\n    \
             name: hintstore1\n    \
             skuu: Standard_LRS\n  \
           data:\n    \
             type: blob_container\n    \
             account: ${stor.name}\n    \
             name: hello\n",
    );
    let out = t.run(["validate"]).code(1);
    assert!(
        out.stderr.contains("unknown field `skuu`"),
        "{}",
        out.stderr
    );
    insta::assert_snapshot!(
        "validate_hints",
        Redactor::for_test(&t).transcript(&["validate"], &out)
    );
}

#[test]
fn missing_stack_file_and_bad_flags_exit_1() {
    let out = Test::new().run(["validate"]).code(1);
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
