//! The preflight through the real binary against its own local cloud: what would fail is found by
//! `validate` or `plan` with its place in the stack file, `apply` stops before its first step
//! (exit 1) and the cloud holds nothing new; the example stacks plan with no finding. Also the local
//! cloud's read-only operations the preflight asks (Providers - Get, Permissions - List) over raw
//! HTTP.
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::Test;
use crate::support::cloud::Cloud;
use crate::support::fixtures::{copy_example, copy_stack_folder};
use crate::support::reliability::synthetic_stack;

/// Storage account names in the test cloud's resource group.
fn accounts(t: &Test) -> Vec<String> {
    t.rest(async |c: &Cloud| {
        let a = c
            .arm(
                Method::GET,
                &format!("{}/providers/Microsoft.Storage/storageAccounts", c.rg()),
                None,
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.body["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str().map(str::to_string))
            .collect()
    })
}

/// Online endpoints in the test cloud's workspace.
fn endpoints(t: &Test) -> usize {
    t.rest(async |c: &Cloud| {
        let a = c
            .arm(Method::GET, &format!("{}/onlineEndpoints", c.ws()), None)
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.body["value"].as_array().map_or(0, Vec::len)
    })
}

/// Asserts that `stderr` holds `part`, showing the whole of it when it does not.
#[track_caller]
fn says(stderr: &str, part: &str) {
    assert!(stderr.contains(part), "no {part:?} in:\n{stderr}");
}

/// Applies with `--auto-approve`, expects exit 1, and checks that nothing was created.
fn apply_creates_nothing(t: &Test, stderr_has: &str) {
    let before = accounts(t);
    let out = t.run(["apply", "--auto-approve"]).code(1);
    says(&out.stderr, stderr_has);
    assert_eq!(accounts(t), before, "apply created a storage account");
    assert_eq!(endpoints(t), 0, "apply created an endpoint");
    assert!(
        !t.path("state/managed-identity.json").exists()
            || !t.read("state/managed-identity.json").contains("\"store\""),
        "state records a resource"
    );
}

/// A storage account name taken elsewhere was found by the first PUT, after the endpoint had been
/// created in parallel (and rolled back): plan did not look.
#[test]
fn a_taken_storage_name_fails_at_plan_with_its_location() {
    let t = Test::new().example("managed-identity").local_cloud(&[]);
    t.edit(
        "stack.yaml",
        "name: mistore${var.suffix}",
        "name: takenstore7f3a",
    );
    let out = t.run(["plan"]).code(1);
    says(
        &out.stderr,
        "storage account name `takenstore7f3a` is already taken",
    );
    says(&out.stderr, "--> stack.yaml:15:11");
    let json = t.run(["plan", "--json"]).code(1);
    let plan: Value = serde_json::from_str(&json.stdout).expect("plan JSON");
    assert_eq!(plan["preflight"][0]["code"], "storage-name-taken");
    assert_eq!(plan["preflight"][0]["line"], 15);
    // No plan is saved for a later apply.
    t.run(["plan", "-o", "p.json"]).code(1);
    assert!(!t.path("p.json").exists());
    apply_creates_nothing(&t, "already taken");
}

/// A misspelt role passed `validate` and `plan`, and `apply` failed at the role assignment after
/// the storage account and the endpoint were created.
#[test]
fn a_misspelt_role_fails_at_validate_with_a_suggestion() {
    let t = Test::new().example("managed-identity").local_cloud(&[]);
    t.edit(
        "stack.yaml",
        "role: Storage Blob Data Reader",
        "role: Storage Blob Data Raeder",
    );
    let out = t.run(["validate"]).code(1);
    says(
        &out.stderr,
        "unknown role `Storage Blob Data Raeder` for `role` in role_assignment `reader`",
    );
    says(&out.stderr, "--> stack.yaml:35:11");
    says(&out.stderr, "did you mean `Storage Blob Data Reader`?");
    t.run(["plan"]).code(1);
    apply_creates_nothing(&t, "unknown role");
}

/// Gives the cloud's own principal Contributor on the subscription and takes its Owner away: it can
/// create resources but not assign roles.
fn demote_to_contributor(t: &Test) {
    t.rest(async |c: &Cloud| {
        let me = c.seeded_principal().await;
        let sub = c.sub();
        let auth = "providers/Microsoft.Authorization";
        let put = c
            .arm(
                Method::PUT,
                &format!("{sub}/{auth}/roleAssignments/6f0c6d55-7c43-4a8e-9a53-0a6f1c2b0d11"),
                Some(json!({"properties": {
                    "roleDefinitionId": format!("{sub}/{auth}/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"),
                    "principalId": me, "principalType": "ServicePrincipal"}})),
            )
            .await;
        assert_eq!(put.status, 201, "{}", put.text);
        let list = c
            .arm(
                Method::GET,
                &format!("{sub}/{auth}/roleAssignments?$filter=atScope()"),
                None,
            )
            .await;
        let owner = list.body["value"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|ra| {
                ra["properties"]["roleDefinitionId"]
                    .as_str()
                    .is_some_and(|r| r.ends_with("8e3af657-a8ff-443c-a75c-2fe8c4bcb635"))
            })
            .and_then(|ra| ra["id"].as_str())
            .expect("the seeded Owner assignment")
            .to_string();
        let del = c.arm(Method::DELETE, &owner, None).await;
        assert_eq!(del.status, 200, "{}", del.text);
    });
}

/// A deployer with Contributor only created the storage account, the container, the blob and the
/// endpoint, then failed at the role assignment (403) and rolled everything back.
#[test]
fn a_principal_that_cannot_assign_roles_fails_at_plan() {
    let t = Test::new().example("managed-identity").local_cloud(&[]);
    demote_to_contributor(&t);
    let out = t.run(["plan"]).code(1);
    says(
        &out.stderr,
        "the signed-in principal may not create role assignment `reader`: it lacks `Microsoft.Authorization/roleAssignments/write`",
    );
    says(&out.stderr, "--> stack.yaml:36:12");
    says(&out.stderr, "User Access Administrator");
    apply_creates_nothing(&t, "may not create role assignment");
    // --skip-preflight leaves the cloud out: the plan goes through.
    t.run(["plan", "--skip-preflight"]).code(0);
}

/// A deployment whose identity may not read the storage it names applied fine and crashed in
/// init() minutes later (403 from the blob service).
#[test]
fn a_deployment_without_a_data_role_fails_at_validate() {
    let t = Test::new().example("managed-identity").local_cloud(&[]);
    let text = t.read("stack.yaml");
    let (head, rest) = text.split_once("  reader:\n").expect("the reader grant");
    let tail = &rest[rest.find("  blue:\n").expect("the deployment")..];
    t.write("stack.yaml", &format!("{head}{tail}"));
    let out = t.run(["validate"]).code(1);
    says(
        &out.stderr,
        "`blue` names storage account `store` (`environment_variables.STORAGE_ACCOUNT_NAME`), but the identity it runs as holds no data role on it",
    );
    says(&out.stderr, "Storage Blob Data Reader");
    t.run(["plan"]).code(1);
    apply_creates_nothing(&t, "no data role");
}

/// Grants broader than needed are warnings: validate passes and says where.
#[test]
fn broad_grants_are_warnings_that_change_nothing() {
    let t = Test::new().example("managed-identity").local_cloud(&[]);
    t.edit(
        "stack.yaml",
        "role: Storage Blob Data Reader",
        "role: Storage Blob Data Owner",
    );
    t.edit(
        "stack.yaml",
        "scope: ${store.id}",
        "scope: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg",
    );
    let out = t.run(["validate"]).code(0);
    says(
        &out.stderr,
        "warning: role_assignment `reader` grants at resource group scope, but `blue` reads one storage account",
    );
    says(&out.stderr, "--> stack.yaml:36:12");
    t.edit(
        "stack.yaml",
        "role: Storage Blob Data Owner",
        "role: Contributor",
    );
    // Contributor is broader than reading needs, and gives no blob data access at all.
    let out = t.run(["validate"]).code(1);
    says(
        &out.stderr,
        "warning: role_assignment `reader` grants `Contributor`",
    );
    says(&out.stderr, "holds no data role");
}

/// An api-version the cloud does not serve was sent anyway and refused at the first PUT.
#[test]
fn an_api_version_the_cloud_does_not_serve_fails_at_plan() {
    let t = Test::new().example("managed-identity").local_cloud(&[]);
    t.edit(
        "stack.yaml",
        "  kind: local ",
        "  api_versions: { storage_account: \"2024-02-01\" }\n  kind: local ",
    );
    let out = t.run(["plan"]).code(1);
    says(
        &out.stderr,
        "the cloud does not serve api-version `2024-02-01` for Microsoft.Storage/storageAccounts",
    );
    apply_creates_nothing(&t, "does not serve api-version");
}

/// The bug: after the README's demo the example folder holds the demo's state beside its stack file,
/// and this file's example test copied it along, so its fresh cloud refused it as another cloud's state.
#[test]
fn a_copied_stack_folder_leaves_the_state_of_earlier_runs_behind() {
    let from = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(from.path().join("state")).unwrap();
    std::fs::create_dir_all(from.path().join("code")).unwrap();
    std::fs::write(from.path().join("stack.yaml"), "stack: s\n").unwrap();
    std::fs::write(from.path().join("code/score.py"), "x = 1\n").unwrap();
    std::fs::write(from.path().join("state/s.json"), "{}").unwrap();
    let to = tempfile::tempdir().unwrap();
    copy_stack_folder(from.path(), to.path());
    assert!(to.path().join("stack.yaml").is_file());
    assert!(to.path().join("code/score.py").is_file());
    assert!(
        !to.path().join("state").exists(),
        "the earlier runs' state was copied"
    );
}

#[test]
fn the_example_stacks_plan_with_no_finding() {
    let t = Test::new().local_cloud(&[]);
    for example in ["managed-identity", "managed-identity-uai"] {
        copy_example(example, &t.path(example));
    }
    for example in ["managed-identity", "managed-identity-uai"] {
        let file = format!("{example}/stack.yaml");
        let v = t.run(["validate", "-f", &file]).code(0);
        let p = t.run(["plan", "-f", &file]).code(0);
        for out in [&v, &p] {
            assert!(
                !out.stderr.contains("warning:") && !out.stderr.contains("error:"),
                "{example}: {}",
                out.stderr
            );
        }
        let json = t.run(["plan", "--json", "-f", &file]).code(0);
        let plan: Value = serde_json::from_str(&json.stdout).expect("plan JSON");
        assert_eq!(plan["preflight"], json!([]), "{example}");
    }
}

/// The local cloud answered every well-formed api-version and had no "Providers - Get" or
/// "Permissions - List"; a User Access Administrator could not assign roles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_and_permissions_answer_as_arm_does() {
    let c = Cloud::start_in_process().await;
    let sub = c.sub();
    let p = c
        .arm(
            Method::GET,
            &format!("{sub}/providers/Microsoft.Storage"),
            None,
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.body["namespace"], "Microsoft.Storage");
    let accounts = p.body["resourceTypes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["resourceType"] == "storageAccounts")
        .expect("storageAccounts");
    let versions: Vec<&str> = accounts["apiVersions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(versions.contains(&"2025-01-01"), "{versions:?}");
    assert!(!versions.contains(&"2024-02-01"), "{versions:?}");
    let unknown = c
        .arm(
            Method::GET,
            &format!("{sub}/providers/Microsoft.Nope"),
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["error"]["code"], "InvalidResourceNamespace");
    let refused = c
        .arm(
            Method::GET,
            &format!(
                "{}/providers/Microsoft.Storage/storageAccounts?api-version=2024-02-01",
                c.rg()
            ),
            None,
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body["error"]["code"], "NoRegisteredProviderFound");
    // The message shape ARM answers with: location, version, type, the supported versions.
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "No registered resource provider found for location 'eastus' and API version '2024-02-01' for type 'storageAccounts'. The supported api-versions are '2026-09-01, "
        ),
        "{message}"
    );

    // The seeded principal is Owner of the subscription.
    let perms = c
        .arm(
            Method::GET,
            &format!("{}/providers/Microsoft.Authorization/permissions", c.rg()),
            None,
        )
        .await;
    assert_eq!(perms.status, 200, "{}", perms.text);
    assert_eq!(perms.body["value"][0]["actions"], json!(["*"]));
    let missing = c
        .arm(
            Method::GET,
            &format!("{sub}/resourceGroups/nope/providers/Microsoft.Authorization/permissions"),
            None,
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "ResourceGroupNotFound");

    // A principal with Contributor and User Access Administrator may assign roles; one with
    // Contributor alone may not (its notActions take Microsoft.Authorization/*/Write away).
    let auth = "providers/Microsoft.Authorization";
    let me = c.seeded_principal().await;
    let grant = async |name: &str, role: &str| {
        c.arm(
            Method::PUT,
            &format!("{sub}/{auth}/roleAssignments/{name}"),
            Some(json!({"properties": {
                "roleDefinitionId": format!("{sub}/{auth}/roleDefinitions/{role}"),
                "principalId": me, "principalType": "ServicePrincipal"}})),
        )
        .await
    };
    let contributor = "b24988ac-6180-42a0-ab88-20f7382dd24c";
    let uaa = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";
    assert_eq!(
        grant("6f0c6d55-7c43-4a8e-9a53-0a6f1c2b0d11", contributor)
            .await
            .status,
        201
    );
    assert_eq!(
        grant("6f0c6d55-7c43-4a8e-9a53-0a6f1c2b0d12", uaa)
            .await
            .status,
        201
    );
    let list = c
        .arm(Method::GET, &format!("{sub}/{auth}/roleAssignments"), None)
        .await;
    let owner = list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ra| {
            ra["properties"]["roleDefinitionId"]
                .as_str()
                .is_some_and(|r| r.ends_with("8e3af657-a8ff-443c-a75c-2fe8c4bcb635"))
        })
        .and_then(|ra| ra["id"].as_str())
        .unwrap()
        .to_string();
    assert_eq!(c.arm(Method::DELETE, &owner, None).await.status, 200);
    let reader = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
    assert_eq!(
        grant("6f0c6d55-7c43-4a8e-9a53-0a6f1c2b0d13", reader)
            .await
            .status,
        201,
        "User Access Administrator may assign roles"
    );
    let uaa_id = format!("{sub}/{auth}/roleAssignments/6f0c6d55-7c43-4a8e-9a53-0a6f1c2b0d12");
    assert_eq!(c.arm(Method::DELETE, &uaa_id, None).await.status, 200);
    let denied = grant("6f0c6d55-7c43-4a8e-9a53-0a6f1c2b0d14", reader).await;
    assert_eq!(denied.status, 403, "{}", denied.text);
    assert_eq!(denied.body["error"]["code"], "AuthorizationFailed");
    let perms = c
        .arm(Method::GET, &format!("{}/{auth}/permissions", c.rg()), None)
        .await;
    assert!(
        perms.body["value"][0]["notActions"]
            .as_array()
            .unwrap()
            .contains(&json!("Microsoft.Authorization/*/Write")),
        "{}",
        perms.text
    );
    c.stop().await;
}

/// The preflight asked its storage name checks one at a time, so the 667 accounts of a 2,001
/// resource stack waited 667 round trips (13 s at 20 ms of latency) before the first step: the
/// checks must be in flight together, up to the run's parallelism.
#[test]
fn storage_name_checks_are_in_flight_together() {
    let t = Test::new()
        .stack(&synthetic_stack(18, "sfpar", "par"))
        .local_cloud(&["--latency-ms", "300"]);
    let out = t.run(["-v", "plan"]).code(0);
    // Each answer's `-v` line: when it came (the line's timestamp) and how long it took.
    let spans: Vec<(f64, f64)> = out
        .stderr
        .lines()
        .filter(|l| l.contains("checkNameAvailability") && l.contains(" http"))
        .map(|l| {
            let end = log_seconds(l).unwrap_or_else(|| panic!("no timestamp in {l:?}"));
            let took = l
                .split(" duration_ms=")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|ms| ms.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no duration_ms in {l:?}"));
            (end - took / 1000.0, end)
        })
        .collect();
    assert_eq!(spans.len(), 6, "one check per account:\n{}", out.stderr);
    // One at a time, no check starts before the previous one's answer; together, they overlap.
    let overlapping = spans.iter().enumerate().any(|(i, a)| {
        spans[i + 1..]
            .iter()
            .any(|b| a.0 < b.1 - 0.001 && b.0 < a.1 - 0.001)
    });
    assert!(
        overlapping,
        "the name checks were asked one at a time: {spans:?}"
    );
}

/// Seconds since midnight of a log line that starts with an RFC 3339 timestamp.
fn log_seconds(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?;
    let time = stamp.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}
