//! Refresh by list calls, end to end against the local cloud: the request count of a refresh is what
//! the rule predicts (one listing per collection of several resources, one GET for a collection of
//! one; blobs read with the engine's own token when it holds a blob data role, else one refused
//! trial per run and one `listKeys` per account whose blobs are read), and drift made behind
//! stackform's back (a deleted account, a deleted blob, a rewritten blob) is still found when
//! resources are read from listings.
use reqwest::Method;
use serde_json::Value;

use crate::support::cloud::Cloud;
use crate::support::{Output, Test};

/// Accounts `s0…s9`, each with a container `cN` holding a blob `bN` (the synthetic shape: a third of
/// each), plus a second container `x0` in `s0` and a second blob `y0` in `c0`, so both kinds of
/// collection are also listed with more than one member.
fn stack() -> String {
    let mut text = String::from("stack: lists\ncloud: { kind: local }\nresources:\n");
    for i in 0..10 {
        text.push_str(&format!(
            "  s{i}: {{ type: storage_account, name: listacct{i:02} }}\n  c{i}: {{ type: blob_container, account: \"${{s{i}.name}}\", name: box{i} }}\n  b{i}: {{ type: blob, account: \"${{s{i}.name}}\", container: \"${{c{i}.name}}\", name: f{i}.txt, content: \"blob {i}\" }}\n"
        ));
    }
    text.push_str("  x0: { type: blob_container, account: \"${s0.name}\", name: extra }\n");
    text.push_str(
        "  y0: { type: blob, account: \"${s0.name}\", container: \"${c0.name}\", name: g.txt, content: \"second\" }\n",
    );
    text
}

/// The `(total, arm, other)` of the `Refresh:` line `plan` prints.
fn refresh_requests(out: &Output) -> (u64, u64, u64) {
    let n = out.numbers_on("Refresh: ");
    (n[0], n[1], n[2])
}

/// Storage Blob Data Reader (its built-in role definition id).
const BLOB_DATA_READER: &str = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1";

/// Gives the cloud's own principal Storage Blob Data Reader on the resource group.
fn grant_blob_reader(t: &Test) {
    t.rest(async |c: &Cloud| {
        let me = c.seeded_principal().await;
        let path = format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
            c.rg(),
            uuid::Uuid::new_v4()
        );
        let role = format!(
            "{}/providers/Microsoft.Authorization/roleDefinitions/{BLOB_DATA_READER}",
            c.sub()
        );
        let put = c
            .arm(
                Method::PUT,
                &path,
                Some(serde_json::json!({"properties": {"roleDefinitionId": role, "principalId": me, "principalType": "ServicePrincipal"}})),
            )
            .await;
        assert_eq!(put.status, 201, "{}", put.text);
    });
}

/// Listing blobs cost one `listKeys` per account on top of the listing, although the engine's own
/// token lists them when its principal holds a blob data role: with Storage Blob Data Reader on the
/// resource group, a refresh is one listing of accounts, one read of containers per account and one
/// read of blobs per container, and no `listKeys`.
#[test]
fn refresh_with_a_blob_data_role_needs_no_account_keys() {
    let t = Test::new().stack(&stack()).local_cloud(&[]);
    t.run(["apply", "--auto-approve"]).code(0);
    grant_blob_reader(&t);
    let out = t.run(["-v", "plan"]).code(0);
    assert!(out.stdout.contains("No changes"), "{}", out.stdout);
    // 32 resources in 10 accounts, 10 containers holding blobs: ARM, one listing of the accounts and
    // one read of containers per account (a listing for s0, a GET for the nine others); blob data
    // plane, one read of blobs per container that holds any (a listing for c0, a HEAD for the nine
    // others). 1 + accounts + containers.
    let arm = 1 + 10;
    let blob = 10;
    assert_eq!(
        refresh_requests(&out),
        (arm + blob, arm, blob),
        "{}",
        out.stderr
    );
    // The run's token was enough: not one key listed.
    assert!(!out.stderr.contains("listKeys"), "{}", out.stderr);
}

#[test]
fn refresh_reads_collections_with_the_predicted_number_of_requests() {
    let t = Test::new().stack(&stack()).local_cloud(&[]);
    t.run(["apply", "--auto-approve"]).code(0);
    let out = t.run(["-v", "plan"]).code(0);
    assert!(out.stdout.contains("No changes"), "{}", out.stdout);
    // 32 resources. The seeded principal holds no blob data role on these accounts (Owner of the
    // subscription grants no data actions), so its token's first read of blobs is refused, once for
    // the run, and the rest use the accounts' keys. ARM: one listing of the resource group's
    // accounts; containers: one listing for s0 (two members) and one GET for each of the nine others;
    // one listKeys per account holding blobs (10). Blob data plane: the one refused trial, one List
    // Blobs for c0 (two members), one HEAD for each of the nine others. Before listings, the same
    // refresh cost 10 + 11 + 11 × 3 = 54 requests.
    let arm = 1 + (1 + 9) + 10;
    let blob = 1 + 1 + 9;
    assert_eq!(
        refresh_requests(&out),
        (arm + blob, arm, blob),
        "{}",
        out.stderr
    );
    let refused = out
        .stderr
        .lines()
        .filter(|l| l.contains(" http ") && l.contains(" status=403 "))
        .count();
    assert_eq!(refused, 1, "{}", out.stderr);
}

#[test]
fn drift_behind_stackforms_back_is_found_from_listings() {
    let t = Test::new().stack(&stack()).local_cloud(&[]);
    t.run(["apply", "--auto-approve"]).code(0);
    t.rest(async |c: &Cloud| {
        // An account deleted (its container and blob go with it), a blob of a listed container
        // deleted, another rewritten.
        let path = format!(
            "{}/providers/Microsoft.Storage/storageAccounts/listacct05?api-version=2025-01-01",
            c.rg()
        );
        let gone = c.arm(Method::DELETE, &path, None).await;
        assert!(gone.status.is_success(), "{}", gone.text);
        let key = c.account_key("listacct00").await;
        let del = c
            .blob_shared_key(
                Method::DELETE,
                "listacct00",
                &key,
                "box0/g.txt",
                Vec::new(),
                &[],
            )
            .await;
        assert!(del.status.is_success(), "{}", del.text);
        c.put_blob("listacct00", &key, "box0", "f0.txt", b"changed".to_vec())
            .await;
    });
    let out = t.run(["plan", "--detailed-exitcode"]).code(2);
    for (address, action) in [
        ("s5", "+"),
        ("c5", "+"),
        ("b5", "+"),
        ("y0", "+"),
        ("b0", "~"),
    ] {
        let line = format!("{action} resource \"{address}\"");
        assert!(
            out.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(&line)),
            "`{line}` missing:\n{}",
            out.stdout
        );
    }
    // Nothing else changed.
    assert!(
        out.stdout
            .contains("Plan: 4 to add, 1 to change, 0 to destroy."),
        "{}",
        out.stdout
    );
}

#[test]
fn arm_lists_are_paged_by_next_link_as_azure_pages_them() {
    let t = Test::new().local_cloud(&[]);
    t.rest(async |c: &Cloud| {
        let account = c.create_storage("pagedacct").await;
        let id = account["id"].as_str().expect("account id").to_owned();
        for name in ["aaa", "bbb", "ccc"] {
            let put = c
                .arm(
                    Method::PUT,
                    &format!("{id}/blobServices/default/containers/{name}?api-version=2025-01-01"),
                    Some(serde_json::json!({"properties": {}})),
                )
                .await;
            assert!(put.status.is_success(), "{}", put.text);
        }
        // BlobContainers_List with $maxpagesize=2: two entries and a nextLink, then the last one.
        let first = c
            .arm(
                Method::GET,
                &format!(
                    "{id}/blobServices/default/containers?api-version=2025-01-01&$maxpagesize=2"
                ),
                None,
            )
            .await;
        assert_eq!(first.status, 200, "{}", first.text);
        assert_eq!(first.body["value"].as_array().map(Vec::len), Some(2));
        let next = first.body["nextLink"].as_str().expect("a nextLink");
        let path = next
            .split_once("/subscriptions/")
            .map(|(_, rest)| format!("/subscriptions/{rest}"))
            .expect("an ARM URL");
        let second = c.arm(Method::GET, &path, None).await;
        assert_eq!(second.status, 200, "{}", second.text);
        assert_eq!(second.body["value"].as_array().map(Vec::len), Some(1));
        assert!(second.body.get("nextLink").is_none(), "{}", second.text);
        // Storage accounts of a resource group: one page, no link.
        let accounts = c
            .arm(
                Method::GET,
                &format!(
                    "{}/providers/Microsoft.Storage/storageAccounts?api-version=2025-01-01",
                    c.rg()
                ),
                None,
            )
            .await;
        assert!(accounts.body.get("nextLink").is_none(), "{}", accounts.text);
        // Paged one account at a time (each page renders only its own accounts): the pages add up
        // to the one-page listing, in the same order.
        let all: Vec<Value> = accounts.body["value"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(all.len() >= 2, "{}", accounts.text);
        let mut paged = Vec::new();
        let mut path = Some(format!(
            "{}/providers/Microsoft.Storage/storageAccounts?api-version=2025-01-01&$maxpagesize=1",
            c.rg()
        ));
        while let Some(p) = path.take() {
            let page = c.arm(Method::GET, &p, None).await;
            assert_eq!(page.status, 200, "{}", page.text);
            assert_eq!(page.body["value"].as_array().map(Vec::len), Some(1));
            paged.extend(page.body["value"].as_array().cloned().unwrap_or_default());
            path = page.body["nextLink"].as_str().and_then(|next| {
                next.split_once("/subscriptions/")
                    .map(|(_, rest)| format!("/subscriptions/{rest}"))
            });
            assert!(paged.len() <= all.len(), "more pages than accounts");
        }
        assert_eq!(paged, all);
        // A continuation this cloud never gave is refused.
        let bad = c
            .arm(
                Method::GET,
                &format!(
                    "{id}/blobServices/default/containers?api-version=2025-01-01&$skipToken=x"
                ),
                None,
            )
            .await;
        assert_eq!(bad.status, 400, "{}", bad.text);
    });
}
