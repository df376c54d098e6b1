//! Unit tests of the pure preflight checks on small stacks written to a temporary folder, and of the
//! findings made from scripted cloud answers.
use super::access::{self, LiveGrants};
use super::cloud::{self, Asked};
use super::{Finding, Severity};
use crate::plan::{Action, Plan, PlanMode, Snapshot, Summary};
use crate::provider::{
    NameAnswer, PermissionEntry, PreflightAnswers, ProviderError, VersionAnswer,
};
use crate::specs::Registry;
use crate::stack::{LoadOptions, Stack};

fn registry() -> Registry {
    Registry::embedded().expect("embedded specs load")
}

/// Loads `resources` (the text under `resources:`) with a `code/s.py` beside it; the folder lives as
/// long as the returned guard.
fn load(resources: &str) -> (Stack, crate::graph::ResourceGraph, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("code")).expect("mkdir");
    std::fs::write(dir.path().join("code/s.py"), "").expect("write");
    let text = format!("stack: t\nresources:\n{resources}");
    let path = dir.path().join("stack.yaml");
    std::fs::write(&path, text).expect("write stack");
    let reg = registry();
    let stack = match crate::stack::load(&path, &LoadOptions::default(), &reg) {
        Ok(s) => s,
        Err(e) => panic!("{}", crate::diag::render(&e, crate::diag::Style::default())),
    };
    let graph = crate::graph::build(&stack, &reg).expect("graph");
    (stack, graph, dir)
}

const STORE: &str = "  store:\n    type: storage_account\n    name: mystore1\n";
const ENDPOINT: &str =
    "  endpoint:\n    type: online_endpoint\n    name: ep1\n    auth_mode: key\n";

/// A deployment of `endpoint` with `env` (`A: x, B: y`) as its environment variables.
fn deployment(env: &str) -> String {
    let vars: String = env.split(", ").map(|kv| format!("      {kv}\n")).collect();
    format!(
        "  blue:\n    type: online_deployment\n    name: blue\n    endpoint: ${{endpoint.name}}\n    model: azureml:m:1\n    environment: azureml:e:1\n    code_configuration: {{ code: ./code, scoring_script: s.py }}\n    environment_variables:\n{vars}"
    )
}

fn grant(role: &str, scope: &str) -> String {
    format!(
        "  reader:\n    type: role_assignment\n    principal_id: ${{endpoint.identity.principal_id}}\n    role: \"{role}\"\n    scope: \"{scope}\"\n"
    )
}

fn codes(findings: &[Finding]) -> Vec<(&'static str, Severity)> {
    findings.iter().map(|f| (f.code, f.severity)).collect()
}

fn check(resources: &str) -> Vec<Finding> {
    let (stack, graph, _dir) = load(resources);
    access::check(&stack, &graph, &registry(), &LiveGrants::new())
}

#[test]
fn a_named_account_needs_a_data_role_for_the_runner_identity() {
    let plain = format!("{STORE}{ENDPOINT}{}", deployment("A: ${store.name}"));
    let f = check(&plain);
    assert_eq!(codes(&f), [("missing-data-role", Severity::Error)]);
    assert!(
        f[0].diagnostic
            .message
            .contains("`environment_variables.A`")
    );
    // Named literally, or by its blob endpoint, it is the same account.
    for env in [
        "A: mystore1",
        "A: \"https://mystore1.blob.core.windows.net/\"",
    ] {
        let f = check(&format!("{STORE}{ENDPOINT}{}", deployment(env)));
        assert_eq!(codes(&f), [("missing-data-role", Severity::Error)], "{env}");
    }
    // A data role at the account, or in one of its containers, is enough.
    for scope in [
        "${store.id}",
        "${store.id}/blobServices/default/containers/c",
    ] {
        let ok = format!("{plain}{}", grant("Storage Blob Data Reader", scope));
        assert!(check(&ok).is_empty(), "{scope}");
    }
    // A role not written literally cannot be judged from the stack alone: no finding.
    let by_guid = format!(
        "{plain}{}",
        grant("2a2b9908-6ea1-4ae2-8e65-a410df84e7d1", "${store.id}")
    );
    assert!(check(&by_guid).is_empty());
    // A data role on another account does not count.
    let other = format!(
        "{plain}  other:\n    type: storage_account\n    name: other1\n{}",
        grant("Storage Blob Data Reader", "${other.id}")
    );
    assert_eq!(
        codes(&check(&other)),
        [("missing-data-role", Severity::Error)]
    );
    // A deployment naming no account needs nothing.
    assert!(check(&format!("{STORE}{ENDPOINT}{}", deployment("A: x"))).is_empty());
}

#[test]
fn the_data_role_may_be_found_live() {
    let (stack, graph, _dir) = load(&format!(
        "{STORE}{ENDPOINT}{}",
        deployment("A: ${store.name}")
    ));
    let live: LiveGrants = [("blue".to_string(), "store".to_string())]
        .into_iter()
        .collect();
    assert!(access::check(&stack, &graph, &registry(), &live).is_empty());
    assert_eq!(
        access::ungranted(&stack, &graph, &registry()),
        [("blue".to_string(), "store".to_string())]
    );
}

#[test]
fn broader_grants_are_warnings() {
    let base = format!("{STORE}{ENDPOINT}{}", deployment("A: ${store.name}"));
    let rg = "/subscriptions/s/resourceGroups/rg";
    let f = check(&format!("{base}{}", grant("Storage Blob Data Reader", rg)));
    assert_eq!(codes(&f), [("grant-scope-broader", Severity::Warning)]);
    let f = check(&format!(
        "{base}{}",
        grant("Storage Blob Data Reader", "/subscriptions/s")
    ));
    assert_eq!(codes(&f), [("grant-scope-broader", Severity::Warning)]);
    // Owner grants no blob data access: an error, and a warning that it is broader than needed.
    let mut f = codes(&check(&format!("{base}{}", grant("Owner", "${store.id}"))));
    f.sort_by_key(|(c, _)| *c);
    assert_eq!(
        f,
        [
            ("grant-role-broader", Severity::Warning),
            ("missing-data-role", Severity::Error)
        ]
    );
    // Reading two accounts from one resource-group grant is not "broader than one account".
    let two = format!(
        "{STORE}  more:\n    type: storage_account\n    name: more1\n{ENDPOINT}{}{}",
        deployment("A: ${store.name}, B: ${more.name}"),
        grant("Storage Blob Data Reader", rg)
    );
    assert!(check(&two).is_empty());
}

fn plan_of(stack: &Stack, action: Action) -> Plan {
    let changes = stack
        .resources
        .iter()
        .map(|(name, r)| crate::plan::Change {
            address: name.clone(),
            type_name: r.type_name.clone(),
            action,
            before: None,
            after: None,
            attributes: Vec::new(),
            reasons: Vec::new(),
            dependencies: Vec::new(),
        })
        .collect::<Vec<_>>();
    Plan {
        mode: PlanMode::Normal,
        stack: stack.name.clone(),
        prior_state: None,
        summary: Summary::of(&changes, &[], &[]),
        changes,
        drift: Vec::new(),
        outputs: Vec::new(),
        maps: Vec::new(),
        moved: Vec::new(),
        imports: Vec::new(),
    }
}

fn asked(resources: &str, action: Action) -> Asked {
    let (stack, graph, _dir) = load(resources);
    let plan = plan_of(&stack, action);
    cloud::questions(
        &stack,
        &graph,
        &plan,
        &Snapshot::default(),
        &registry(),
        "/subscriptions/s/resourceGroups/rg",
    )
}

#[test]
fn questions_come_from_what_the_plan_creates() {
    let stack = format!(
        "{STORE}{ENDPOINT}{}{}",
        deployment("A: ${store.name}"),
        grant("Storage Blob Data Reader", "${store.id}")
    );
    let a = asked(&stack, Action::Create);
    assert_eq!(a.questions.storage_names, ["mystore1"]);
    assert_eq!(
        a.questions.role_scopes,
        ["/subscriptions/s/resourceGroups/rg"]
    );
    assert!(a.questions.types.contains(&"storage_account".to_string()));
    // Nothing created: no name to check, no role to be allowed to assign.
    let a = asked(&stack, Action::NoOp);
    assert!(a.questions.storage_names.is_empty());
    assert!(a.questions.role_scopes.is_empty());
}

#[test]
fn answers_become_located_findings() {
    let stack = format!(
        "{STORE}{ENDPOINT}{}{}",
        deployment("A: ${store.name}"),
        grant("Storage Blob Data Reader", "${store.id}")
    );
    let a = asked(&stack, Action::Create);
    let rg = "/subscriptions/s/resourceGroups/rg".to_string();
    let name = |available, ours| {
        Ok(NameAnswer {
            available,
            reason: (!available).then(|| "AlreadyExists".to_string()),
            message: Some("The storage account named mystore1 is already taken.".into()),
            ours,
        })
    };
    let contributor = PermissionEntry {
        actions: vec!["*".into()],
        not_actions: vec!["Microsoft.Authorization/*/Write".into()],
    };
    let uaa = PermissionEntry {
        actions: vec!["*/read".into(), "Microsoft.Authorization/*".into()],
        not_actions: vec![],
    };
    let mut answers = PreflightAnswers::default();
    answers.names.insert("mystore1".into(), name(false, false));
    answers
        .permissions
        .insert(rg.clone(), Ok(vec![contributor.clone()]));
    answers.versions.insert(
        "storage_account".into(),
        Ok(VersionAnswer {
            arm_type: "Microsoft.Storage/storageAccounts".into(),
            in_use: "2024-02-01".into(),
            served: Some(vec!["2025-01-01".into()]),
        }),
    );
    let (f, _) = cloud::findings(&a, &answers);
    let got = codes(&f);
    assert!(
        got.contains(&("storage-name-taken", Severity::Error)),
        "{got:?}"
    );
    assert!(
        got.contains(&("cannot-assign-roles", Severity::Error)),
        "{got:?}"
    );
    assert!(
        got.contains(&("api-version-not-served", Severity::Error)),
        "{got:?}"
    );
    let taken = f.iter().find(|x| x.code == "storage-name-taken").unwrap();
    assert_eq!(taken.diagnostic.line_col(), (5, 11));

    // The stack's own account, a principal that may assign roles, a served version: nothing.
    answers.names.insert("mystore1".into(), name(false, true));
    answers
        .permissions
        .insert(rg.clone(), Ok(vec![contributor, uaa]));
    answers.versions.clear();
    assert!(cloud::findings(&a, &answers).0.is_empty());

    // A call that failed is a finding of its own, pointing at what was not checked.
    answers
        .permissions
        .insert(rg, Err(ProviderError::invalid("refused")));
    let (f, _) = cloud::findings(&a, &answers);
    assert_eq!(codes(&f), [("preflight-failed", Severity::Error)]);
}

/// A data role the stack does not grant but the cloud holds (granted outside the stack to an
/// endpoint that exists) is asked about and counts.
#[test]
fn live_data_roles_are_asked_for_and_count() {
    let (stack, graph, _dir) = load(&format!(
        "{STORE}{ENDPOINT}{}",
        deployment("A: ${store.name}")
    ));
    let plan = plan_of(&stack, Action::NoOp);
    let account =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/mystore1";
    let mut snapshot = Snapshot::default();
    snapshot.live.insert(
        "store".into(),
        crate::plan::Live::present(account, serde_json::json!({}), serde_json::json!({})),
    );
    snapshot.live.insert(
        "endpoint".into(),
        crate::plan::Live::present(
            "ep-id",
            serde_json::json!({}),
            serde_json::json!({"identity": {"principal_id": "p-1"}}),
        ),
    );
    let a = cloud::questions(&stack, &graph, &plan, &snapshot, &registry(), "rg");
    let key = ("p-1".to_string(), account.to_string());
    assert_eq!(a.questions.grants, std::slice::from_ref(&key));
    let mut answers = PreflightAnswers::default();
    // Owner is no data role: still missing.
    answers.grants.insert(
        key.clone(),
        Ok(vec!["8e3af657-a8ff-443c-a75c-2fe8c4bcb635".into()]),
    );
    assert!(cloud::findings(&a, &answers).1.is_empty());
    answers
        .grants
        .insert(key, Ok(vec!["2a2b9908-6ea1-4ae2-8e65-a410df84e7d1".into()]));
    let (_, live) = cloud::findings(&a, &answers);
    assert!(live.contains(&("blue".to_string(), "store".to_string())));
    assert!(access::check(&stack, &graph, &registry(), &live).is_empty());
}
