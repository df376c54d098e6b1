//! Every Azure ML CLI v2 endpoint and deployment YAML from `azureml-examples` (copied under
//! `tests/fixtures/stack/azureml-examples/`) loads as the `file:` base of a small stack.
//!
//! Those files name model and code folders that the copy does not contain. A missing folder is an error
//! for a real stack, so one test asserts exactly those errors on the copy as it is, and another loads a
//! temporary copy with the folders created and checks that everything else is accepted and mapped.
use std::path::{Path, PathBuf};

use stackform::diag::{self, Diagnostic};
use stackform::specs::Registry;
use stackform::stack::{self, ExprKind, LoadOptions, Stack};

use crate::support::fixtures::{copy_dir, files_with_ext, fixture};

fn examples_root() -> PathBuf {
    fixture("stack/azureml-examples")
}

/// Every `.yml` under `cli/endpoints/online/managed`, sorted.
fn aml_files(root: &Path) -> Vec<PathBuf> {
    files_with_ext(&root.join("cli/endpoints/online/managed"), "yml")
}

fn is_deployment(file: &Path) -> bool {
    std::fs::read_to_string(file)
        .expect("read example")
        .contains("managedOnlineDeployment.schema.json")
}

/// Writes a stack in `dir` that uses `file` (by absolute path) as the base of resource `r`, and loads it.
fn load_with_base(dir: &Path, file: &Path) -> Result<Stack, Vec<Diagnostic>> {
    let name = file.display();
    let text = std::fs::read_to_string(file).expect("read example");
    let body = if is_deployment(file) {
        // Files without `endpoint_name` get the endpoint from the stack, as the guide's script does.
        let endpoint = if text.contains("endpoint_name:") {
            ""
        } else {
            "\n    endpoint: my-endpoint"
        };
        format!("    type: online_deployment\n    file: {name}{endpoint}\n")
    } else {
        format!("    type: online_endpoint\n    file: {name}\n")
    };
    let stack_text = format!("stack: examples\nresources:\n  r:\n{body}");
    let stack_path = dir.join("stack.yaml");
    std::fs::write(&stack_path, stack_text).expect("write stack");
    let registry = Registry::embedded().expect("specs");
    stack::load(&stack_path, &LoadOptions::default(), &registry)
}

fn input(stack: &Stack, path: &str) -> String {
    match stack.resources["r"].input(path).map(|e| &e.kind) {
        Some(ExprKind::String(s)) => s.clone(),
        Some(ExprKind::Int(i)) => i.to_string(),
        Some(ExprKind::Path(p)) => {
            assert!(p.exists(), "{}", p.display());
            format!(
                "path:{}",
                p.file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().into_owned())
            )
        }
        Some(ExprKind::List(items)) => format!(
            "[{}]",
            items
                .iter()
                .map(|e| match &e.kind {
                    ExprKind::String(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(ExprKind::Map(m)) => m.keys().cloned().collect::<Vec<_>>().join(","),
        Some(other) => format!("{other:?}"),
        None => "<absent>".to_string(),
    }
}

#[test]
fn every_example_loads_when_its_folders_exist() {
    let tmp = tempfile::tempdir().expect("temp dir");
    copy_dir(&examples_root(), tmp.path());
    let model_1 = tmp.path().join("cli/endpoints/online/model-1");
    std::fs::create_dir_all(model_1.join("model")).expect("mkdir");
    std::fs::write(model_1.join("model/sklearn_regression_model.pkl"), "x").expect("write");
    std::fs::create_dir_all(model_1.join("onlinescoring")).expect("mkdir");
    std::fs::write(model_1.join("onlinescoring/score.py"), "").expect("write");
    std::fs::write(model_1.join("onlinescoring/score_managedidentity.py"), "").expect("write");

    let files = aml_files(tmp.path());
    assert_eq!(files.len(), 7, "{files:?}");
    let mut checked = Vec::new();
    for file in &files {
        let stack = match load_with_base(tmp.path(), file) {
            Ok(s) => s,
            Err(e) => panic!(
                "{} did not load:\n{}",
                file.display(),
                diag::render(&e, diag::Style::default())
            ),
        };
        let r = &stack.resources["r"];
        assert_eq!(
            r.base_file.as_deref(),
            Some(std::fs::canonicalize(file).unwrap().as_path())
        );
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        match stem.as_str() {
            "1-sai-create-endpoint" => {
                assert_eq!(input(&stack, "name"), "my-sai-endpoint");
                assert_eq!(input(&stack, "auth_mode"), "key");
                // No identity block: the spec default, system-assigned.
                assert_eq!(input(&stack, "identity.type"), "system_assigned");
            }
            "1-uai-create-endpoint" => {
                assert_eq!(input(&stack, "identity.type"), "user_assigned");
                assert_eq!(
                    input(&stack, "identity.user_assigned_identities"),
                    "[user_identity_ARM_id_place_holder]"
                );
            }
            "endpoint" => assert_eq!(input(&stack, "name"), "my-endpoint"),
            "2-sai-deployment" | "2-uai-deployment" => {
                assert_eq!(input(&stack, "name"), "blue");
                assert_eq!(input(&stack, "endpoint"), "my-endpoint");
                assert_eq!(input(&stack, "model.path"), "path:model");
                assert_eq!(
                    input(&stack, "code_configuration.code"),
                    "path:onlinescoring"
                );
                assert_eq!(
                    input(&stack, "code_configuration.scoring_script"),
                    "score_managedidentity.py"
                );
                assert_eq!(
                    input(&stack, "environment.conda_file"),
                    "path:conda-managedidentity.yaml"
                );
                assert_eq!(input(&stack, "instance_type"), "Standard_DS3_v2");
                assert_eq!(input(&stack, "instance_count"), "1");
                let vars = input(&stack, "environment_variables");
                let expected = if stem == "2-uai-deployment" {
                    "STORAGE_ACCOUNT_NAME,STORAGE_CONTAINER_NAME,FILE_NAME,UAI_CLIENT_ID"
                } else {
                    "STORAGE_ACCOUNT_NAME,STORAGE_CONTAINER_NAME,FILE_NAME"
                };
                assert_eq!(vars, expected);
            }
            "blue-deployment" => {
                // `endpoint_name` maps onto `endpoint`.
                assert_eq!(input(&stack, "endpoint"), "my-endpoint");
                assert_eq!(input(&stack, "environment.conda_file"), "path:conda.yaml");
            }
            "blue-deployment-with-registered-assets" => {
                assert_eq!(input(&stack, "model"), "azureml:my-model:1");
                assert_eq!(input(&stack, "environment"), "azureml:my-env:1");
            }
            other => panic!("unexpected example {other}"),
        }
        checked.push(stem);
    }
    assert_eq!(checked.len(), 7);
}

#[test]
fn examples_as_shipped_report_exactly_their_missing_folders() {
    let files = aml_files(&examples_root());
    assert_eq!(files.len(), 7);
    let tmp = tempfile::tempdir().expect("temp dir");
    for file in &files {
        let result = load_with_base(tmp.path(), file);
        if !is_deployment(file) {
            assert!(result.is_ok(), "{} should load", file.display());
            continue;
        }
        let errs = result.expect_err("missing folders are errors");
        let got: Vec<String> = errs
            .iter()
            .map(|d| {
                assert_eq!(
                    d.source.path,
                    file.as_path(),
                    "errors point into the base file"
                );
                let (l, c) = d.line_col();
                let head = d
                    .message
                    .split(" (looked for")
                    .next()
                    .unwrap_or("")
                    .to_string();
                assert!(d.message.contains("model-1/"), "{}", d.message);
                format!("{l}:{c} {head}")
            })
            .collect();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let expected: Vec<String> = match name.as_str() {
            "blue-deployment-with-registered-assets.yml" => vec![
                "6:9 path `../../model-1/onlinescoring/` for `code_configuration.code` in online_deployment `r` does not exist".into(),
            ],
            "blue-deployment.yml" => vec![
                "5:9 path `../../model-1/model/` for `model.path` in online_deployment `r` does not exist".into(),
                "7:9 path `../../model-1/onlinescoring/` for `code_configuration.code` in online_deployment `r` does not exist".into(),
            ],
            _ => vec![
                "4:9 path `../../model-1/model/` for `model.path` in online_deployment `r` does not exist".into(),
                "6:9 path `../../model-1/onlinescoring/` for `code_configuration.code` in online_deployment `r` does not exist".into(),
            ],
        };
        assert_eq!(got, expected, "{name}");
    }
}
