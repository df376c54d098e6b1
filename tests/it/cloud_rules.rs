//! The local cloud refuses request bodies the way Azure does, driven with raw HTTP: model versions
//! that are not positive integers, paged version lists, and the body rules of the published
//! definitions (enum values, required properties) for ML, Storage and Authorization, each with the
//! status and error code the service answers with. Every rule here was accepted before the rules
//! were written (the local cloud was more lenient than Azure).
use crate::support::cloud::{Cloud, READER};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_versions_are_positive_integers_and_lists_are_paged() {
    // Bug: the local cloud accepted any model version (the provider registered hex hashes), while
    // Azure answers ModelVersionOutOfRange.
    let c = Cloud::start_in_process().await;
    let model = |v: &str| format!("{}/models/m1/versions/{v}", c.ws());
    let body = |uri: &str| json!({"properties": {"modelUri": format!("azureml://subscriptions/s/resourceGroups/r/workspaces/w/datastores/workspaceblobstore/paths/{uri}"), "modelType": "custom_model"}});
    for bad in ["0", "-1", "1.0", "abc", "3f2a9c1b7d4e", "99999999999"] {
        let r = c.arm(Method::PUT, &model(bad), Some(body(bad))).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "UserError", "{bad}");
        assert_eq!(
            r.body["error"]["details"][0]["code"], "ModelVersionOutOfRange",
            "{bad}"
        );
        assert_eq!(
            r.body["error"]["message"],
            "Model version must be a positive integer."
        );
    }
    for v in ["1", "2", "10"] {
        let r = c.arm(Method::PUT, &model(v), Some(body(v))).await;
        assert_eq!(r.status, 201, "{v}: {}", r.text);
    }
    let container = c
        .arm(Method::GET, &format!("{}/models/m1", c.ws()), None)
        .await;
    assert_eq!(
        container.body["properties"]["latestVersion"], "10",
        "{}",
        container.text
    );
    // Code and environment versions may be any string.
    let code = c
        .arm(
            Method::PUT,
            &format!("{}/codes/c1/versions/3f2a9c1b7d4e", c.ws()),
            Some(json!({"properties": {"codeUri": "https://127.0.0.1/acct/c/x"}})),
        )
        .await;
    assert_eq!(code.status, 201, "{}", code.text);

    // A page of two, then the rest through nextLink ($skip), as ARM pages version lists.
    let first = c
        .arm(
            Method::GET,
            &format!(
                "{}/models/m1/versions?api-version=2025-12-01&$top=2",
                c.ws()
            ),
            None,
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["value"].as_array().unwrap().len(), 2);
    let next = first.body["nextLink"]
        .as_str()
        .expect("nextLink")
        .to_string();
    assert!(next.contains("$skip=2"), "{next}");
    let second = c.arm(Method::GET, &next, None).await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.body["value"].as_array().unwrap().len(), 1);
    assert!(second.body.get("nextLink").is_none(), "{}", second.text);
    let mut names: Vec<String> = first.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["value"].as_array().unwrap())
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["1", "10", "2"]);
    let all = c
        .arm(Method::GET, &format!("{}/models/m1/versions", c.ws()), None)
        .await;
    assert_eq!(all.body["value"].as_array().unwrap().len(), 3);
    assert!(all.body.get("nextLink").is_none());
    // A model with no versions lists as empty.
    let none = c
        .arm(
            Method::GET,
            &format!("{}/models/none/versions", c.ws()),
            None,
        )
        .await;
    assert_eq!(none.status, 200);
    assert_eq!(none.body["value"], json!([]));
    c.stop().await;
}

/// Sends `body` to `path` with `PUT` and expects `status` with `code`, naming `property`.
async fn refused(c: &Cloud, path: &str, body: serde_json::Value, code: &str, property: &str) {
    let r = c.arm(Method::PUT, path, Some(body.clone())).await;
    assert_eq!(r.status, 400, "{path} {body}: {}", r.text);
    assert_eq!(r.body["error"]["code"], code, "{path} {body}: {}", r.text);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(property),
        "{path} {body}: {}",
        r.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_follow_the_published_definitions() {
    // Bug: the local cloud accepted enum values and missing properties the definitions refuse.
    let c = Cloud::start_in_process().await;
    let ep = format!("{}/onlineEndpoints/rules-ep", c.ws());
    let ml = "UserError";
    refused(
        &c,
        &ep,
        json!({"location": "eastus", "properties": {"authMode": "Password"}}),
        ml,
        "properties.authMode",
    )
    .await;
    refused(&c, &ep, json!({"location": "eastus"}), ml, "properties").await;
    refused(&c, &ep, json!({"location": "eastus", "properties": {"authMode": "Key", "publicNetworkAccess": "Sometimes"}}), ml, "properties.publicNetworkAccess").await;
    refused(&c, &ep, json!({"location": "eastus", "identity": {"type": "Everyone"}, "properties": {"authMode": "Key"}}), ml, "identity.type").await;
    refused(
        &c,
        &ep,
        json!({"location": "eastus", "identity": {}, "properties": {"authMode": "Key"}}),
        ml,
        "identity.type",
    )
    .await;
    // Enum values compare case-insensitively, unknown properties are ignored, as the service does.
    let made = c
        .arm(Method::PUT, &ep, Some(json!({"location": "eastus", "properties": {"authMode": "key", "somethingNew": true}})))
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    c.wait_async(&made, std::time::Duration::from_secs(30))
        .await;

    let dep = format!("{ep}/deployments/blue");
    refused(
        &c,
        &dep,
        json!({"location": "eastus", "properties": {}}),
        ml,
        "properties.endpointComputeType",
    )
    .await;
    refused(
        &c,
        &dep,
        json!({"location": "eastus", "properties": {"endpointComputeType": "Serverless"}}),
        ml,
        "properties.endpointComputeType",
    )
    .await;
    refused(&c, &dep, json!({"location": "eastus", "properties": {"endpointComputeType": "Managed", "egressPublicNetworkAccess": "Sometimes"}}), ml, "properties.egressPublicNetworkAccess").await;
    refused(&c, &dep, json!({"location": "eastus", "sku": {"capacity": 1}, "properties": {"endpointComputeType": "Managed"}}), ml, "sku.name").await;

    let env = format!("{}/environments/e1/versions/1", c.ws());
    refused(
        &c,
        &env,
        json!({"properties": {"image": "mcr.microsoft.com/x", "osType": "MacOS"}}),
        ml,
        "properties.osType",
    )
    .await;
    refused(&c, &env, json!({}), ml, "properties").await;
    refused(
        &c,
        &format!("{}/codes/c1/versions/1", c.ws()),
        json!({"properties": {}}),
        ml,
        "properties.codeUri",
    )
    .await;

    let acct = format!(
        "{}/providers/Microsoft.Storage/storageAccounts/rulesacct",
        c.rg()
    );
    let st = "InvalidRequestContent";
    refused(
        &c,
        &acct,
        json!({"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_XYZ"}}),
        st,
        "sku.name",
    )
    .await;
    refused(
        &c,
        &acct,
        json!({"location": "eastus", "kind": "StorageV3", "sku": {"name": "Standard_LRS"}}),
        st,
        "kind",
    )
    .await;
    refused(
        &c,
        &acct,
        json!({"location": "eastus", "kind": "StorageV2", "sku": {}}),
        st,
        "sku.name",
    )
    .await;
    refused(
        &c,
        &acct,
        json!({"location": "eastus", "sku": {"name": "Standard_LRS"}}),
        st,
        "kind",
    )
    .await;
    refused(&c, &acct, json!({"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}, "properties": {"accessTier": "Frozen"}}), st, "properties.accessTier").await;
    refused(&c, &acct, json!({"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}, "properties": {"minimumTlsVersion": "TLS2_0"}}), st, "properties.minimumTlsVersion").await;
    c.create_storage("rulesacct").await;
    let container = format!("{acct}/blobServices/default/containers/data");
    refused(
        &c,
        &container,
        json!({"properties": {"publicAccess": "Everyone"}}),
        st,
        "properties.publicAccess",
    )
    .await;
    let ok = c
        .arm(
            Method::PUT,
            &container,
            Some(json!({"properties": {"publicAccess": "None"}})),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);

    let ra = format!(
        "{acct}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
        uuid::Uuid::new_v4()
    );
    let principal = c.seeded_principal().await;
    let def =
        |sub: &str| format!("{sub}/providers/Microsoft.Authorization/roleDefinitions/{READER}");
    refused(&c, &ra, json!({"properties": {"roleDefinitionId": def(&c.sub()), "principalId": principal, "principalType": "MSI"}}), st, "properties.principalType").await;
    refused(
        &c,
        &ra,
        json!({"properties": {"roleDefinitionId": def(&c.sub())}}),
        st,
        "properties.principalId",
    )
    .await;
    refused(&c, &ra, json!({}), st, "properties").await;
    // Bug: a role definition id of another subscription than the scope's was accepted.
    let other = "/subscriptions/00000000-0000-0000-0000-00000000beef";
    refused(&c, &ra, json!({"properties": {"roleDefinitionId": def(other), "principalId": principal, "principalType": "ServicePrincipal"}}), "RoleDefinitionDoesNotExist", READER).await;
    // The scope's own subscription and the tenant-level form are both accepted.
    let own = c
        .arm(Method::PUT, &ra, Some(json!({"properties": {"roleDefinitionId": def(""), "principalId": principal, "principalType": "ServicePrincipal"}})))
        .await;
    assert_eq!(own.status, 201, "{}", own.text);
    c.stop().await;
}
