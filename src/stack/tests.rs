//! Unit tests of the loader on small stacks written to a temporary folder.
use std::path::{Path, PathBuf};

use super::*;

pub(super) fn registry() -> Registry {
    Registry::embedded().expect("embedded specs load")
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/stack")
        .join(rel)
}

fn env_opts() -> LoadOptions {
    LoadOptions {
        env: [(
            "AZURE_SUBSCRIPTION_ID".to_string(),
            "00000000-0000-0000-0000-000000000001".to_string(),
        )]
        .into_iter()
        .collect(),
        ..LoadOptions::default()
    }
}

#[test]
fn demo_stack_loads() {
    let stack = load(&fixture("demo/stack.yaml"), &env_opts(), &registry());
    let stack = match stack {
        Ok(s) => s,
        Err(e) => panic!("{}", diag::render(&e, diag::Style::default())),
    };
    assert_eq!(stack.name, "managed-identity");
    println!("{stack:#?}");
}
