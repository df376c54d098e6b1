//! End-to-end tests of how the provider reaches the workspace's storage: empty files (Put Blob with
//! `Content-Length: 0`), and a `--hardened` local cloud whose workspace storage refuses shared keys and
//! whose default datastore is identity-based, with and without the deployer's data role.
use reqwest::Method;

use crate::support::Test;
use crate::support::cloud::Cloud;

/// The reference example in a throw-away folder, bound to a local cloud of its own started with `flags`.
fn reference(flags: &[&str]) -> Test {
    Test::new().example("managed-identity").local_cloud(flags)
}

/// The content length the local cloud records for `rest` (`{container}/{blob}`) of `account`, read
/// with Get Blob Properties over SharedKey.
async fn blob_length(c: &Cloud, account: &str, rest: &str) -> Option<String> {
    let key = c.account_key(account).await;
    let head = c
        .blob_shared_key(Method::HEAD, account, &key, rest, vec![], &[])
        .await;
    (head.status == 200).then(|| head.header("content-length").unwrap_or_default())
}

/// Put Blob of an empty body went out without `Content-Length`, which Azure (and now the local cloud)
/// refuses with 411 `MissingContentLengthHeader`: an empty `__init__.py` in the code folder or an
/// empty `blob` source failed the apply.
#[test]
fn empty_files_are_uploaded_with_content_length_0() {
    let s = reference(&[]);
    s.write("onlinescoring/__init__.py", "");
    s.write("hello.txt", "");
    let out = s.run(["apply", "--auto-approve"]).code(0);
    assert!(out.stderr.contains("Apply complete"), "{}", out.stderr);
    let account = s
        .run(["output", "blob_url"])
        .code(0)
        .stdout
        .trim()
        .split('/')
        .rev()
        .nth(2)
        .map(str::to_string)
        .expect("the blob URL names the account");
    assert_eq!(
        s.rest(async |c: &Cloud| blob_length(c, &account, "hello/hello.txt").await)
            .as_deref(),
        Some("0"),
        "the empty blob source is stored, empty"
    );
    s.run(["plan", "--detailed-exitcode"]).code(0);
    s.run(["destroy", "--auto-approve"]).code(0);
}

/// The workspace's storage account, as the workspace names it: (name, ARM id).
async fn workspace_account(c: &Cloud) -> (String, String) {
    let ws = c
        .arm(
            Method::GET,
            &format!("{}?api-version=2025-12-01", c.ws()),
            None,
        )
        .await;
    let id = ws.body["properties"]["storageAccount"]
        .as_str()
        .expect("the workspace names its storage account")
        .to_string();
    let name = id.rsplit('/').next().unwrap_or_default().to_string();
    (name, id)
}

/// A `--hardened` local cloud seeds what it says (an identity-based datastore, an account that refuses
/// SharedKey), and the reference example applies, plans clean and destroys on it: uploads go with the
/// deployer's own token.
#[test]
fn the_example_applies_plans_clean_and_destroys_on_a_hardened_cloud() {
    let s = reference(&["--hardened"]);
    s.rest(async |c: &Cloud| {
        let ds = c
            .arm(
                Method::GET,
                &format!(
                    "{}/datastores/workspaceblobstore?api-version=2025-12-01",
                    c.ws()
                ),
                None,
            )
            .await;
        assert_eq!(
            ds.body["properties"]["credentials"]["credentialsType"], "None",
            "{}",
            ds.text
        );
        let secrets = c
            .arm(
                Method::POST,
                &format!(
                    "{}/datastores/workspaceblobstore/listSecrets?api-version=2025-12-01",
                    c.ws()
                ),
                None,
            )
            .await;
        assert_eq!(secrets.status, 400, "{}", secrets.text);
        let (account, _) = workspace_account(c).await;
        let key = c.account_key(&account).await;
        let refused = c
            .blob_shared_key(
                Method::GET,
                &account,
                &key,
                "?restype=container&comp=list",
                vec![],
                &[],
            )
            .await;
        assert_eq!(
            refused.header("x-ms-error-code").as_deref(),
            Some("KeyBasedAuthenticationNotPermitted"),
            "{}",
            refused.text
        );
    });
    let out = s.run(["apply", "--auto-approve"]).code(0);
    assert!(out.stderr.contains("Apply complete"), "{}", out.stderr);
    s.run(["plan", "--detailed-exitcode"]).code(0);
    s.run(["destroy", "--auto-approve"]).code(0);
}

/// Uploads signed with SharedKey whenever the datastore said `AccountKey`, even when the workspace's
/// storage account has `allowSharedKeyAccess: false`, and the apply failed with
/// `KeyBasedAuthenticationNotPermitted`; they now follow the account's setting and use the deployer's
/// own token.
#[test]
fn an_account_key_datastore_on_an_account_without_shared_keys_uploads_with_a_token() {
    let s = reference(&[]);
    s.rest(async |c: &Cloud| {
        let (_, id) = workspace_account(c).await;
        let body = serde_json::json!({
            "location": c.info.location, "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
            "properties": {"allowSharedKeyAccess": false},
        });
        let put = c
            .arm(
                Method::PUT,
                &format!("{id}?api-version=2025-01-01"),
                Some(body),
            )
            .await;
        assert!(put.status.is_success(), "{}", put.text);
    });
    s.run(["apply", "--auto-approve"]).code(0);
    s.run(["destroy", "--auto-approve"]).code(0);
}

/// When uploads must use the deployer's own token and it holds no blob data role, the apply failed
/// with the bare `AuthorizationPermissionMismatch`; it now says which role to grant, where, and how.
/// (The stack's own role assignment is left out: with one made in the same run, the engine first
/// waits for it to propagate, printing this message as the reason, before giving up.)
#[test]
fn without_the_data_role_the_apply_names_the_role_to_grant() {
    let s = reference(&["--hardened"]);
    s.edit(
        "stack.yaml",
        "  reader:\n    type: role_assignment\n    principal_id: ${endpoint.identity.principal_id}\n    role: Storage Blob Data Reader\n    scope: ${store.id}\n",
        "",
    );
    let account_id = s.rest(async |c: &Cloud| {
        let (_, id) = workspace_account(c).await;
        let list = c
            .arm(
                Method::GET,
                &format!(
                    "{id}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01"
                ),
                None,
            )
            .await;
        assert_eq!(list.status, 200, "{}", list.text);
        let mut removed = 0;
        for a in list.body["value"].as_array().into_iter().flatten() {
            let role = a["properties"]["roleDefinitionId"]
                .as_str()
                .unwrap_or_default();
            let scope = a["properties"]["scope"].as_str().unwrap_or_default();
            if role.ends_with(crate::support::cloud::CONTRIBUTOR_DATA)
                && scope.eq_ignore_ascii_case(&id)
            {
                let path = format!(
                    "{}?api-version=2022-04-01",
                    a["id"].as_str().expect("an assignment id")
                );
                let del = c.arm(Method::DELETE, &path, None).await;
                assert!(del.status.is_success(), "{}", del.text);
                removed += 1;
            }
        }
        assert_eq!(removed, 1, "the seeded data role: {}", list.text);
        id
    });
    let out = s.run(["apply", "--auto-approve"]).code(1);
    for part in [
        "AuthorizationPermissionMismatch",
        "Storage Blob Data Contributor",
        "az role assignment create",
        "identity-based",
        account_id.as_str(),
    ] {
        assert!(out.stderr.contains(part), "no {part:?} in:\n{}", out.stderr);
    }
}
