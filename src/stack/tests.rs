//! Unit tests of the loader on small stacks written to a temporary folder, and on the demo fixture.
use std::path::{Path, PathBuf};

use super::*;

fn registry() -> Registry {
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

/// A folder holding `stack.yaml` and any extra files.
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new(stack: &str) -> Dir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("stack.yaml"), stack).expect("write stack");
        Dir { dir }
    }

    fn file(self, rel: &str, text: &str) -> Dir {
        let p = self.dir.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, text).expect("write");
        self
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn load(&self, opts: &LoadOptions) -> Result<Stack, Vec<Diagnostic>> {
        load(&self.path("stack.yaml"), opts, &registry())
    }

    fn ok(&self, opts: &LoadOptions) -> Stack {
        match self.load(opts) {
            Ok(s) => s,
            Err(e) => panic!("{}", diag::render(&e, diag::Style::default())),
        }
    }

    /// Every error as `line:col message`.
    fn errs(&self, opts: &LoadOptions) -> Vec<String> {
        match self.load(opts) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e
                .iter()
                .map(|d| {
                    let (l, c) = d.line_col();
                    format!("{l}:{c} {}", d.message)
                })
                .collect(),
        }
    }
}

/// A compact, path-independent rendering of an expression.
fn show(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Null => "null".into(),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Int(i) => i.to_string(),
        ExprKind::Float(f) => f.to_string(),
        ExprKind::String(s) => format!("{s:?}"),
        ExprKind::Path(p) => {
            assert!(p.is_absolute(), "{}", p.display());
            format!(
                "path:{}",
                p.file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().into_owned())
            )
        }
        ExprKind::List(items) => format!(
            "[{}]",
            items.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Map(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k}: {}", show(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ExprKind::Ref(r) => format!("${{{}.{}}}", r.resource, r.path),
        ExprKind::Template(parts) => {
            let mut s = String::from("t\"");
            for p in parts {
                match p {
                    TemplatePart::Text(t) => s.push_str(t),
                    TemplatePart::Ref(r) => s.push_str(&format!("${{{}.{}}}", r.resource, r.path)),
                }
            }
            s.push('"');
            s
        }
    }
}

fn input(stack: &Stack, res: &str, path: &str) -> String {
    let r = &stack.resources[res];
    r.input(path).map_or_else(|| "<absent>".to_string(), show)
}

const HEAD: &str = "stack: t\nresources:\n";

#[test]
fn demo_stack_loads_with_base_file_merge_and_defaults() {
    let stack = match load(&fixture("demo/stack.yaml"), &env_opts(), &registry()) {
        Ok(s) => s,
        Err(e) => panic!("{}", diag::render(&e, diag::Style::default())),
    };
    assert_eq!(stack.name, "managed-identity");
    assert_eq!(
        stack.resources.keys().collect::<Vec<_>>(),
        ["store", "data", "greeting", "endpoint", "reader", "blue"]
    );
    assert_eq!(stack.cloud.kind, CloudKind::Local);
    assert_eq!(
        stack.cloud.subscription.as_deref(),
        Some("00000000-0000-0000-0000-000000000001")
    );
    assert_eq!(stack.cloud.resource_group.as_deref(), Some("demo-rg"));
    assert_eq!(input(&stack, "store", "name"), "\"mistore7f3a\"");
    assert_eq!(input(&stack, "store", "kind"), "\"StorageV2\"");
    assert_eq!(input(&stack, "greeting", "source"), "path:hello.txt");
    assert_eq!(
        input(&stack, "reader", "principal_id"),
        "${endpoint.identity.principal_id}"
    );
    assert_eq!(
        input(&stack, "endpoint", "identity"),
        "{type: \"system_assigned\"}"
    );
    let blue = &stack.resources["blue"];
    assert!(
        blue.base_file
            .as_ref()
            .is_some_and(|p| p.ends_with("demo/blue.yml"))
    );
    assert_eq!(input(&stack, "blue", "name"), "\"blue\"");
    assert_eq!(input(&stack, "blue", "endpoint"), "${endpoint.name}");
    // A whole-value variable keeps its type.
    assert_eq!(input(&stack, "blue", "instance_count"), "1");
    assert_eq!(input(&stack, "blue", "traffic"), "100");
    assert_eq!(
        input(&stack, "blue", "environment_variables"),
        "{STORAGE_ACCOUNT_NAME: ${store.name}, STORAGE_CONTAINER_NAME: ${data.name}, FILE_NAME: ${greeting.name}, STORAGE_BLOB_ENDPOINT: ${store.primary_blob_endpoint}}"
    );
    assert_eq!(input(&stack, "blue", "model"), "{path: path:model}");
    assert_eq!(
        input(&stack, "blue", "environment"),
        "{conda_file: path:conda.yaml, image: \"mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest\"}"
    );
    assert_eq!(
        input(&stack, "blue", "egress_public_network_access"),
        "\"enabled\""
    );
    // Values from the base file point into it.
    let model_path = blue.input("model.path").unwrap();
    assert!(model_path.loc.source.path.ends_with("blue.yml"));
    assert_eq!(
        model_path.loc.source.line_col(model_path.loc.span.start),
        (4, 9)
    );
    // Inputs come in spec order.
    assert_eq!(
        blue.inputs.keys().take(3).collect::<Vec<_>>(),
        ["name", "endpoint", "model"]
    );
    assert_eq!(
        show(&stack.outputs["scoring_uri"].value),
        "${endpoint.scoring_uri}"
    );
    assert_eq!(
        stack.outputs["principal"].description.as_deref(),
        Some("the endpoint's identity")
    );
    assert!(stack.dir.is_absolute());
}

#[test]
fn var_flags_are_typed_and_win_over_var_files() {
    let d = Dir::new(&format!(
        "{HEAD}  blue:\n    type: online_deployment\n    name: blue\n    endpoint: ep\n    model: azureml:m:1\n    environment: azureml:e:1\n    code_configuration: {{ code: ./code, scoring_script: s.py }}\n    instance_count: ${{var.n}}\n    tags: ${{var.tags}}\n    description: ${{var.d}}\nvariables:\n  n: {{ type: integer }}\n  tags: {{ type: map, default: {{a: b}} }}\n  d: {{ default: x }}\n"
    ))
    .file("code/s.py", "")
    .file("vars.yaml", "n: 2\nd: from-file\n");
    let opts = LoadOptions {
        vars: vec![("n".into(), "3".into())],
        var_files: vec![d.path("vars.yaml")],
        ..LoadOptions::default()
    };
    let s = d.ok(&opts);
    assert_eq!(input(&s, "blue", "instance_count"), "3");
    assert_eq!(input(&s, "blue", "tags"), "{a: \"b\"}");
    assert_eq!(input(&s, "blue", "description"), "\"from-file\"");
    assert_eq!(input(&s, "blue", "model"), "\"azureml:m:1\"");
    assert_eq!(s.variables["n"].origin, VariableOrigin::CommandLine);
    assert_eq!(
        s.variables["d"].origin,
        VariableOrigin::VarFile(d.path("vars.yaml"))
    );
    assert_eq!(s.variables["tags"].origin, VariableOrigin::Default);

    let bad = LoadOptions {
        vars: vec![("n".into(), "three".into())],
        ..LoadOptions::default()
    };
    let errs = match d.load(&bad) {
        Err(e) => e,
        Ok(_) => panic!("expected an error"),
    };
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].message,
        "invalid value in `--var n=...`: expected an integer, found `three`"
    );
    assert_eq!(errs[0].location(), "<command line>:1:9");
}

#[test]
fn sensitive_variables_mark_what_they_flow_into() {
    let d = Dir::new(&format!(
        "{HEAD}  store:\n    type: storage_account\n    name: st${{var.secret}}\n    tags: {{ k: \"${{var.secret}}\", plain: x }}\nvariables:\n  secret: {{ default: abc, sensitive: true }}\noutputs:\n  o: ${{var.secret}}\n  p: {{ value: plain }}\n"
    ));
    let s = d.ok(&LoadOptions::default());
    let store = &s.resources["store"];
    assert!(store.inputs["name"].sensitive);
    assert!(store.inputs["tags"].is_sensitive());
    assert!(!store.input("tags.plain").unwrap().sensitive);
    assert!(s.outputs["o"].sensitive);
    assert!(!s.outputs["p"].sensitive);
    assert!(s.variables["secret"].sensitive);
}

#[test]
fn sensitive_values_are_not_echoed_in_errors() {
    let d = Dir::new(&format!(
        "{HEAD}  store:\n    type: storage_account\n    name: ${{var.secret}}\nvariables:\n  secret: {{ default: TopSecretValue, sensitive: true }}\n"
    ));
    let errs = d.load(&LoadOptions::default()).expect_err("errors");
    let text = diag::render(&errs, diag::Style::default());
    assert!(text.contains("(sensitive)"), "{text}");
    // The variable reference is shown (it is in the file); the value is not.
    assert!(!text.contains("invalid `name` `TopSecretValue`"), "{text}");
    assert!(!text.contains("`TopSecretValue`"), "{text}");
}

#[test]
fn templates_keep_resource_references_and_escapes() {
    let d = Dir::new(&format!(
        "{HEAD}  store:\n    type: storage_account\n    name: abc\n  data:\n    type: blob_container\n    account: ${{store.name}}\n    name: c-${{var.x}}-d\n    metadata: {{ m: \"pre-${{store.id}}-$${{lit}}\", n: \"$${{only}}\" }}\nvariables:\n  x: {{ default: 5, type: integer }}\n"
    ));
    let s = d.ok(&LoadOptions::default());
    assert_eq!(input(&s, "data", "name"), "\"c-5-d\"");
    assert_eq!(
        input(&s, "data", "metadata.m"),
        "t\"pre-${store.id}-${lit}\""
    );
    assert_eq!(input(&s, "data", "metadata.n"), "\"${only}\"");
    let refs: Vec<String> = s.resources["data"]
        .references()
        .iter()
        .map(|r| format!("{}.{}", r.resource, r.path))
        .collect();
    assert_eq!(refs, ["store.name", "store.id"]);
}

#[test]
fn a_reference_of_the_wrong_type_is_an_error() {
    let d = Dir::new(&format!(
        "{HEAD}  store:\n    type: storage_account\n    name: abc\n    allow_blob_public_access: ${{store.name}}\n"
    ));
    assert_eq!(
        d.errs(&LoadOptions::default()),
        [
            "6:31 wrong type for `allow_blob_public_access` in storage_account `store`: expected true or false, found a reference to a string (`${store.name}`)"
        ]
    );
}

#[test]
fn list_variables_cannot_be_interpolated_into_strings() {
    let d = Dir::new(&format!(
        "{HEAD}  store:\n    type: storage_account\n    name: a${{var.l}}\nvariables:\n  l: {{ type: list, default: [1] }}\n"
    ));
    assert_eq!(
        d.errs(&LoadOptions::default()),
        ["5:12 variable `l` is a list; it cannot be placed inside a string"]
    );
}

#[test]
fn base_file_is_merged_key_by_key_and_stack_wins() {
    let d = Dir::new(&format!(
        "{HEAD}  ep:\n    type: online_endpoint\n    file: base/ep.yml\n    name: other-name\n    tags: {{ b: stack, c: new }}\n"
    ))
    .file(
        "base/ep.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json\nname: base-name\nauth_mode: aml_token\ntags: { a: base, b: base }\nidentity:\n  type: user_assigned\n  user_assigned_identities:\n    - resource_id: /subscriptions/x/id1\n",
    );
    let s = d.ok(&LoadOptions::default());
    assert_eq!(input(&s, "ep", "name"), "\"other-name\"");
    assert_eq!(input(&s, "ep", "auth_mode"), "\"aml_token\"");
    assert_eq!(
        input(&s, "ep", "tags"),
        "{a: \"base\", b: \"stack\", c: \"new\"}"
    );
    assert_eq!(
        input(&s, "ep", "identity"),
        "{type: \"user_assigned\", user_assigned_identities: [\"/subscriptions/x/id1\"]}"
    );
}

#[test]
fn base_file_problems_point_into_the_base_file() {
    let d = Dir::new(&format!(
        "{HEAD}  ep:\n    type: online_endpoint\n    file: ep.yml\n"
    ))
    .file(
        "ep.yml",
        "name: e1x\nauth_mod: key\ntraffic: { blue: 100 }\n",
    );
    let errs = d.load(&LoadOptions::default()).expect_err("errors");
    let got: Vec<String> = errs
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e.location().rsplit('/').next().unwrap_or(""),
                e.message
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "ep.yml:2:1 unknown key `auth_mod` in Azure ML endpoint file",
            "ep.yml:3:1 `traffic` in an Azure ML endpoint file is not used by stackform",
        ]
    );
    assert_eq!(errs[0].help.as_deref(), Some("did you mean `auth_mode`?"));
}

#[test]
fn a_missing_base_file_is_one_error() {
    let d = Dir::new(&format!(
        "{HEAD}  blue:\n    type: online_deployment\n    file: nope.yml\n"
    ));
    let errs = d.errs(&LoadOptions::default());
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("5:11 cannot read `file:` nope.yml: no such file (looked for /"),
        "{}",
        errs[0]
    );
}

#[test]
fn base_file_of_the_wrong_kind_is_refused() {
    let d = Dir::new(&format!(
        "{HEAD}  ep:\n    type: online_endpoint\n    file: d.yml\n    name: abc\n"
    ))
    .file("d.yml", "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json\n");
    let errs = d.load(&LoadOptions::default()).expect_err("errors");
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].message,
        "this file's schema is `managedOnlineDeployment`, but the resource needs a `managedOnlineEndpoint` file"
    );
}

#[test]
fn paths_in_a_base_file_resolve_against_its_folder() {
    let d = Dir::new(&format!(
        "{HEAD}  blue:\n    type: online_deployment\n    file: sub/dep.yml\n    endpoint: ep\n    environment: {{ conda_file: ./env.yaml }}\n"
    ))
    .file(
        "sub/dep.yml",
        "name: blue\nmodel: { path: ../model }\ncode_configuration: { code: ./code, scoring_script: s.py }\nenvironment: { conda_file: ./wrong.yaml, image: img }\n",
    )
    .file("model/m.bin", "x")
    .file("sub/code/s.py", "")
    .file("env.yaml", "name: e\n");
    let s = d.ok(&LoadOptions::default());
    let blue = &s.resources["blue"];
    let path = |p: &str| match &blue.input(p).unwrap().kind {
        ExprKind::Path(p) => p.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        path("model.path"),
        std::fs::canonicalize(d.path("model")).unwrap()
    );
    assert_eq!(
        path("code_configuration.code"),
        std::fs::canonicalize(d.path("sub/code")).unwrap()
    );
    // The stack's conda_file overrides the base's and is relative to the stack file.
    assert_eq!(
        path("environment.conda_file"),
        std::fs::canonicalize(d.path("env.yaml")).unwrap()
    );
    assert_eq!(input(&s, "blue", "environment.image"), "\"img\"");
}

#[test]
fn references_are_checked_with_suggestions() {
    let d = Dir::new(&format!(
        "{HEAD}  store:\n    type: storage_account\n    name: abc\n  data:\n    type: blob_container\n    account: ${{stor.name}}\n    name: ${{store.nme}}\n"
    ));
    let errs = d.load(&LoadOptions::default()).expect_err("errors");
    assert_eq!(errs.len(), 2);
    assert_eq!(
        errs[0].message,
        "unknown resource `stor` in reference `${stor.name}`"
    );
    assert_eq!(errs[0].help.as_deref(), Some("did you mean `store`?"));
    assert_eq!(errs[0].line_col(), (8, 14));
    assert_eq!(
        errs[1].message,
        "storage_account `store` has no attribute `nme`"
    );
    assert_eq!(errs[1].help.as_deref(), Some("did you mean `name`?"));
}

#[test]
fn defaults_fill_nested_objects() {
    let d = Dir::new(&format!(
        "{HEAD}  blue:\n    type: online_deployment\n    name: blue\n    endpoint: ep\n    model: azureml:m:1\n    environment: azureml:e:1\n    code_configuration: {{ code: ., scoring_script: s.py }}\n    request_settings: {{ request_timeout_ms: 9000 }}\n"
    ));
    let s = d.ok(&LoadOptions::default());
    assert_eq!(
        input(&s, "blue", "request_settings"),
        "{request_timeout_ms: 9000, max_concurrent_requests_per_instance: 1, max_queue_wait_ms: 500}"
    );
    assert_eq!(input(&s, "blue", "liveness_probe"), "<absent>");
    assert_eq!(input(&s, "blue", "app_insights_enabled"), "false");
}

#[test]
fn all_independent_errors_are_reported_in_order() {
    let d = Dir::new(
        "stack: t\nbogus: 1\nresources:\n  store:\n    type: storage_account\n    name: AB\n    skuu: x\n  data:\n    type: blob_containr\n  blob:\n    type: blob\n    account: a\n    container: c\n    name: n\n    depends_on: [blob, nothing]\n",
    );
    assert_eq!(
        d.errs(&LoadOptions::default()),
        [
            "2:1 unknown top-level key `bogus`",
            "6:11 invalid `name` `AB` in storage_account `store`: it must be 3 to 24 lowercase letters and digits (it becomes a global DNS name)",
            "7:5 unknown field `skuu` in storage_account `store`",
            "9:11 unknown resource type `blob_containr`",
            "10:3 blob `blob` needs exactly one of `source` or `content`",
            "15:18 resource `blob` depends on itself",
            "15:24 `depends_on` names an unknown resource `nothing`",
        ]
    );
}

#[test]
fn parse_var_arg_splits_at_the_first_equals() {
    assert_eq!(
        parse_var_arg("a=b=c").unwrap(),
        ("a".to_string(), "b=c".to_string())
    );
    assert_eq!(
        parse_var_arg("a=").unwrap(),
        ("a".to_string(), String::new())
    );
    assert!(
        parse_var_arg("novalue")
            .unwrap_err()
            .to_string()
            .contains("NAME=VALUE")
    );
    assert!(
        parse_var_arg("1a=x")
            .unwrap_err()
            .to_string()
            .contains("invalid variable name")
    );
}

#[test]
fn an_unreadable_stack_file_is_a_diagnostic() {
    let errs = load(
        Path::new("/nonexistent/stack.yaml"),
        &LoadOptions::default(),
        &registry(),
    )
    .expect_err("error");
    assert_eq!(
        errs[0].message,
        "cannot read stack file /nonexistent/stack.yaml: no such file"
    );
}

#[test]
fn env_values_are_substituted_from_the_injected_map() {
    let d = Dir::new(&format!(
        "{HEAD}  store:\n    type: storage_account\n    name: ${{env.NAME}}x\ncloud:\n  kind: ${{env.KIND}}\n"
    ));
    let opts = LoadOptions {
        env: [
            ("NAME".into(), "abc".into()),
            ("KIND".into(), "azure".into()),
        ]
        .into_iter()
        .collect(),
        ..LoadOptions::default()
    };
    let s = d.ok(&opts);
    assert_eq!(input(&s, "store", "name"), "\"abcx\"");
    assert_eq!(s.cloud.kind, CloudKind::Azure);
}

#[test]
fn stack_env_is_the_environment_chosen() {
    let d = Dir::new(&format!(
        "{HEAD}  store:\n    type: storage_account\n    name: ws${{stack.env}}x\n"
    ));
    let s = d.ok(&LoadOptions {
        stack_env: Some("alice".into()),
        ..LoadOptions::default()
    });
    assert_eq!(input(&s, "store", "name"), "\"wsalicex\"");
}

#[test]
fn a_quoted_number_gets_an_unquote_hint_but_a_string_variable_does_not() {
    let d = Dir::new(&format!(
        "{HEAD}  blue:\n    type: online_deployment\n    name: blue\n    endpoint: ep\n    model: azureml:m:1\n    environment: azureml:e:1\n    code_configuration: {{ code: ., scoring_script: s.py }}\n    instance_count: \"2\"\n    traffic: ${{var.t}}\nvariables:\n  t: {{ default: \"5\" }}\n"
    ));
    let errs = d.load(&LoadOptions::default()).expect_err("errors");
    assert_eq!(errs.len(), 2);
    assert_eq!(
        errs[0].help.as_deref(),
        Some("remove the quotes: a quoted value is a string")
    );
    assert_eq!(errs[1].help, None);
    assert_eq!(
        errs[1].message,
        "wrong type for `traffic` in online_deployment `blue`: expected an integer, found a string"
    );
}

#[test]
fn process_env_options_copy_the_environment() {
    let opts = LoadOptions::with_process_env();
    for (k, v) in std::env::vars() {
        assert_eq!(opts.env.get(&k), Some(&v));
    }
}

#[test]
fn outputs_may_be_scalars_lists_or_long_form() {
    let d = Dir::new(&format!(
        "{HEAD}  store:\n    type: storage_account\n    name: abc\noutputs:\n  a: 1\n  b: [x, \"${{store.id}}\"]\n  c: {{ value: {{ k: v }}, sensitive: true, description: d }}\n"
    ));
    let s = d.ok(&LoadOptions::default());
    assert_eq!(show(&s.outputs["a"].value), "1");
    assert_eq!(show(&s.outputs["b"].value), "[\"x\", ${store.id}]");
    assert_eq!(show(&s.outputs["c"].value), "{k: \"v\"}");
    assert!(s.outputs["c"].sensitive);
    assert!(!s.outputs["a"].sensitive);
}

#[test]
fn debug_output_hides_sensitive_values_and_flag_values() {
    let d = Dir::new(&format!(
        "{HEAD}  store:\n    type: storage_account\n    name: abc\n    tags: {{ k: \"${{var.secret}}\" }}\nvariables:\n  secret: {{ sensitive: true }}\n"
    ));
    let s = d.ok(&LoadOptions {
        vars: vec![("secret".into(), "hunter2hunter2".into())],
        ..LoadOptions::default()
    });
    let text = format!("{s:?}");
    assert!(!text.contains("hunter2hunter2"), "{text}");
    assert!(text.contains("(sensitive)"));
    assert!(text.contains("Loc("), "locations print as path:line:col");
    let opts = LoadOptions {
        vars: vec![("password".into(), "s3cret-value".into())],
        env: [("TOKEN".into(), "tok-value".into())].into_iter().collect(),
        ..LoadOptions::default()
    };
    let text = format!("{opts:?}");
    assert!(
        !text.contains("s3cret-value") && !text.contains("tok-value"),
        "{text}"
    );
    assert!(text.contains("password"));
}

#[test]
fn values_from_variables_get_no_quoting_hint() {
    let d = Dir::new(&format!(
        "{HEAD}  store:\n    type: storage_account\n    name: ${{var.n}}\n    tags: {{ a: 1 }}\nvariables:\n  n: {{ type: integer, default: 5 }}\n"
    ));
    let errs = d.load(&LoadOptions::default()).expect_err("errors");
    assert_eq!(errs.len(), 2);
    assert_eq!(errs[0].help, None);
    assert_eq!(
        errs[1].help.as_deref(),
        Some("quote the value to make it a string")
    );
}

#[test]
fn merge_keys_share_settings_between_resources() {
    let d = Dir::new(&format!(
        "{HEAD}  a: &sa {{ type: storage_account, name: abc, sku: Standard_GRS, tags: {{ team: ml }} }}\n  b:\n    <<: *sa\n    name: def\n  c:\n    type: blob_container\n    account: abc\n    name: hello\n    metadata:\n      <<: [{{ a: \"1\" }}, {{ a: \"2\", b: \"2\" }}]\n      c: \"3\"\n"
    ));
    let s = d.ok(&LoadOptions::default());
    assert_eq!(s.resources["b"].type_name, "storage_account");
    assert_eq!(input(&s, "b", "name"), "\"def\"");
    assert_eq!(input(&s, "b", "sku"), "\"Standard_GRS\"");
    assert_eq!(input(&s, "b", "tags"), "{team: \"ml\"}");
    assert_eq!(input(&s, "c", "metadata"), "{c: \"3\", a: \"1\", b: \"2\"}");

    let bad = Dir::new(&format!(
        "{HEAD}  a:\n    type: storage_account\n    name: abc\n    <<: 5\n"
    ));
    assert_eq!(
        bad.errs(&LoadOptions::default()),
        ["6:5 `<<` merges a mapping into this one"]
    );
}

#[test]
fn depends_on_keeps_each_name_once_in_order() {
    let d = Dir::new(&format!(
        "{HEAD}  a: {{ type: storage_account, name: abc }}\n  b: {{ type: storage_account, name: abd }}\n  c:\n    type: storage_account\n    name: abe\n    depends_on: [b, a, b]\n"
    ));
    let s = d.ok(&LoadOptions::default());
    let deps: Vec<&str> = s.resources["c"]
        .depends_on
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(deps, ["b", "a"]);
    assert_eq!(
        s.resources["c"].depends_on[0]
            .1
            .location()
            .rsplit(':')
            .next(),
        Some("18")
    );
}

/// Two deployments of one endpoint, with the given `traffic` lines (empty: the field left out).
fn split_stack(blue: &str, green: &str) -> String {
    let dep = |name: &str, traffic: &str| {
        format!(
            "  {name}:\n    type: online_deployment\n    name: {name}\n    endpoint: ${{ep.name}}\n    model: azureml:m:1\n    environment: azureml:e:1\n    code_configuration: {{ code: ., scoring_script: s.py }}\n{traffic}"
        )
    };
    format!(
        "{HEAD}  ep:\n    type: online_endpoint\n    name: ep-one\n{}{}",
        dep("blue", blue),
        dep("green", green)
    )
}

#[test]
fn the_traffic_of_one_endpoint_must_add_up_to_100_or_0() {
    for (blue, green) in [
        ("    traffic: 50\n", "    traffic: 50\n"),
        ("    traffic: 100\n", "    traffic: 0\n"),
        ("    traffic: 100\n", ""),
        ("", ""),
    ] {
        Dir::new(&split_stack(blue, green)).ok(&LoadOptions::default());
    }
    let d = Dir::new(&split_stack("    traffic: 100\n", "    traffic: 50\n"));
    let errs = d.load(&LoadOptions::default()).expect_err("150 is refused");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        errs[0].message,
        "the `traffic` shares of online_endpoint `ep` add up to 150, not 100 or 0: `blue` 100, `green` 50"
    );
    // Located at the last member's share, with the other member as a note.
    assert_eq!(
        errs[0].location(),
        format!("{}:21:14", d.path("stack.yaml").display())
    );
    let rendered = diag::render(&errs, diag::Style::default());
    assert!(rendered.contains("`blue` 100"), "{rendered}");
    let d = Dir::new(&split_stack("    traffic: 30\n", ""));
    let errs = d.load(&LoadOptions::default()).expect_err("30 is refused");
    assert!(
        errs[0].message.contains("add up to 30"),
        "{}",
        errs[0].message
    );
}

/// A misspelt role passed `validate` and `plan` and failed mid-apply, after the resources created
/// before the role assignment: a role must be a built-in name, a GUID or a roleDefinitionId.
#[test]
fn an_unknown_role_is_refused_with_the_closest_built_in_name() {
    let ra = |role: &str| {
        format!(
            "{HEAD}  store:\n    type: storage_account\n    name: st1\n  reader:\n    type: role_assignment\n    principal_id: p\n    role: {role}\n    scope: ${{store.id}}\n"
        )
    };
    let Err(errs) = Dir::new(&ra("Storage Blob Data Raeder")).load(&LoadOptions::default()) else {
        panic!("a misspelt role loaded");
    };
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        errs[0].message,
        "unknown role `Storage Blob Data Raeder` for `role` in role_assignment `reader`"
    );
    assert_eq!(errs[0].line_col(), (9, 11));
    assert_eq!(
        errs[0].help.as_deref(),
        Some("did you mean `Storage Blob Data Reader`?")
    );
    for ok in [
        "Storage Blob Data Reader",
        "storage blob data reader",
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    ] {
        Dir::new(&ra(&format!("\"{ok}\""))).ok(&LoadOptions::default());
    }
}

#[test]
fn for_each_expands_into_one_resource_per_instance() {
    let d = Dir::new(
        "stack: fe
variables:
  tiers: { type: map, default: { hot: Hot, cool: Cool } }
resources:
  store:
    type: storage_account
    for_each: ${var.tiers}
    name: acct${each.key}
    access_tier: ${each.value}
  box:
    type: blob_container
    for_each: [a, b]
    account: ${store[\"hot\"].name}
    name: box-${each.key}
  after:
    type: blob_container
    account: ${store[\"cool\"].name}
    name: after
    depends_on: [box]
",
    );
    let s = d.ok(&LoadOptions::default());
    let names: Vec<&str> = s.resources.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "store[\"hot\"]",
            "store[\"cool\"]",
            "box[\"a\"]",
            "box[\"b\"]",
            "after"
        ]
    );
    let hot = &s.resources["store[\"hot\"]"];
    assert_eq!(hot.name, "store[\"hot\"]");
    assert_eq!(show(&hot.inputs["name"]), "\"accthot\"");
    assert_eq!(show(&hot.inputs["access_tier"]), "\"Hot\"");
    let b = &s.resources["box[\"b\"]"];
    assert_eq!(show(&b.inputs["name"]), "\"box-b\"");
    assert_eq!(b.references()[0].resource, "store[\"hot\"]");
    let deps: Vec<&str> = s.resources["after"]
        .depends_on
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(deps, ["box[\"a\"]", "box[\"b\"]"]);
}

#[test]
fn for_each_mistakes_are_located_and_name_the_instance() {
    let d = Dir::new(
        "stack: fe
resources:
  store:
    type: storage_account
    for_each: { a: Standard_LRS, b: [x] }
    name: acct${each.key}
    sku: ${each.value}
  keys:
    type: storage_account
    for_each: [\"bad key\", ok]
    name: acct2
  plain:
    type: blob_container
    account: ${store.name}
    name: ${each.key}
",
    );
    let errs = d.errs(&LoadOptions::default());
    assert!(
        errs.iter()
            .any(|e| e.starts_with("7:10 wrong type for `sku` in storage_account `store[\"b\"]`")),
        "{errs:#?}"
    );
    assert!(
        !errs.iter().any(|e| e.contains("store[\"a\"]")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("10:15 invalid instance key `bad key`")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("`store` has `for_each`: `${store.name}` must name one instance")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("`${each.key}` is only known in a resource with `for_each`")),
        "{errs:#?}"
    );
}

#[test]
fn moved_from_is_an_address_per_instance() {
    let d = Dir::new(
        "stack: fe
resources:
  store:
    type: storage_account
    name: acct
    moved: { from: storage }
  box:
    type: blob_container
    for_each: [main, extra]
    moved: { from: { main: old } }
    account: ${store.name}
    name: ${each.key}
  pair:
    type: blob_container
    for_each: [a, b]
    moved: { from: \"pair_${each.key}\" }
    account: ${store.name}
    name: pair-${each.key}
",
    );
    let s = d.ok(&LoadOptions::default());
    let from = |a: &str| s.resources[a].moved_from.as_ref().map(|(f, _)| f.clone());
    assert_eq!(from("store").as_deref(), Some("storage"));
    assert_eq!(from("box[\"main\"]").as_deref(), Some("old"));
    assert_eq!(from("box[\"extra\"]"), None);
    assert_eq!(from("pair[\"b\"]").as_deref(), Some("pair_b"));

    let d = Dir::new(
        "stack: fe
resources:
  store: { type: storage_account, name: acct, moved: { from: box } }
  box: { type: blob_container, account: acct, name: b, moved: { from: { zz: x } } }
  other: { type: storage_account, name: acct2, moved: { from: gone, to: x } }
  third: { type: storage_account, name: acct3, moved: { from: gone } }
",
    );
    let errs = d.errs(&LoadOptions::default());
    assert!(
        errs.iter()
            .any(|e| e.contains("`store` is moved from `box`, which is still in the stack")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("`moved.from` of `box` must be an address")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("unknown key `to` in `moved`")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("`third` and `other` are both moved from `gone`")),
        "{errs:#?}"
    );
}

/// The settings `env list` reads: the name and `backend:` (and `cloud:` when asked), never the
/// resources, so `${stack.env}` there needs no environment; a variable without a value matters
/// only when a section read uses a variable.
#[test]
fn settings_load_without_the_resources() {
    let text = "stack: demo\ncloud:\n  location: ${var.where}\nvariables:\n  where: {}\n  other: {}\nbackend:\n  kind: azure_blob\n  account: sfstate\n  container: tfstate\nresources:\n  store:\n    type: storage_account\n    name: ws${stack.env}x\n";
    let d = Dir::new(text);
    let settings = |opts: &LoadOptions, with_cloud| {
        load_settings(
            &d.path("stack.yaml"),
            opts,
            &registry(),
            yaml::DEFAULT_MAX_BYTES,
            with_cloud,
        )
    };
    let s = settings(&LoadOptions::default(), false).expect("settings");
    assert_eq!(s.name, "demo");
    assert!(s.resources.is_empty());
    let backend = s.backend.expect("backend");
    assert_eq!(backend.account.as_deref(), Some("sfstate"));
    let errs = settings(&LoadOptions::default(), true).expect_err("cloud uses a variable");
    assert!(
        errs.iter()
            .any(|e| e.message.contains("`where` has no value")),
        "{errs:?}"
    );
    let opts = LoadOptions {
        vars: vec![("where".into(), "westus".into())],
        ..LoadOptions::default()
    };
    let errs = settings(&opts, true).expect_err("`other` has no value either");
    assert!(
        errs.iter().all(|e| !e.message.contains("`where`")),
        "{errs:?}"
    );
}
