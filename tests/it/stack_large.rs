//! Large stack files through `stackform validate`: a file of 40,000 resources and no alias loads (it
//! was refused as an alias bomb), the file-size limit is raised or lowered with `--max-file-size` or
//! `STACKFORM_MAX_FILE_SIZE`, and a real alias bomb is still refused, quickly.
use std::time::{Duration, Instant};

use crate::support::Test;

/// A stack of `n` storage accounts, each with one container: `2 n` resources, no alias.
fn accounts_and_containers(n: usize) -> String {
    let mut s = String::from("stack: large\ncloud:\n  kind: local\nresources:\n");
    for i in 0..n {
        s.push_str(&format!(
            "  sa{i}:\n    type: storage_account\n    name: sfl{i:07}\n    sku: Standard_LRS\n  \
             c{i}:\n    type: blob_container\n    account: ${{sa{i}.name}}\n    name: data\n"
        ));
    }
    s
}

/// The bug: the YAML reader counted a file's own values against the alias budget (200,000 values),
/// so 40,000 resources without a single alias were refused as "is this an alias bomb?".
#[test]
fn forty_thousand_resources_without_aliases_validate() {
    let t = Test::new().stack(&accounts_and_containers(20_000));
    let out = t.run(["validate", "-f", "stack.yaml"]).code(0);
    assert!(out.stdout.contains("40000 resource(s)"), "{}", out.stdout);
}

#[test]
fn the_size_limit_is_a_flag_and_an_environment_variable() {
    let t = Test::new().stack(&accounts_and_containers(20));
    let refused = t
        .run(["validate", "-f", "stack.yaml", "--max-file-size", "1KiB"])
        .code(1);
    assert!(
        refused.stderr.contains("larger than the 1024-byte limit")
            && refused.stderr.contains("--max-file-size"),
        "{}",
        refused.stderr
    );
    let refused = t
        .cmd()
        .env("STACKFORM_MAX_FILE_SIZE", "2KiB")
        .args(["validate", "-f", "stack.yaml"])
        .run();
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("2048-byte limit"),
        "{}",
        refused.stderr
    );
    t.run(["validate", "-f", "stack.yaml", "--max-file-size", "1MiB"])
        .code(0);
    let bad = t
        .run(["validate", "-f", "stack.yaml", "--max-file-size", "lots"])
        .code(1);
    assert!(
        bad.stderr.contains("--max-file-size") && bad.stderr.contains("not a size"),
        "{}",
        bad.stderr
    );
}

#[test]
fn an_alias_bomb_is_still_refused_quickly() {
    // Ten levels of ten aliases each: 10^10 values if expanded, in 600 bytes.
    let mut text = String::from("stack: bomb\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n");
    for i in 1..=10 {
        let p = i - 1;
        text.push_str(&format!(
            "x{i}: &x{i} [{}]\n",
            vec![format!("*x{p}"); 10].join(", ")
        ));
    }
    text.push_str("resources: {}\n");
    let t = Test::new().stack(&text);
    let started = Instant::now();
    let out = t.run(["validate", "-f", "stack.yaml"]).code(1);
    assert!(out.stderr.contains("alias bomb"), "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refused after {:?}",
        started.elapsed()
    );
}
