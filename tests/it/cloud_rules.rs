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

/// `PUT`s each case's body to its path and expects 400 with the case's error code, the message naming
/// the case's property.
async fn refused(c: &Cloud, cases: &[(&str, serde_json::Value, &str, &str)]) {
    for (path, body, code, property) in cases {
        let r = c.arm(Method::PUT, path, Some(body.clone())).await;
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text);
        assert_eq!(r.body["error"]["code"], *code, "{path} {body}: {}", r.text);
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(property), "{path} {body}: {}", r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_follow_the_published_definitions() {
    // Bug: the local cloud accepted enum values and missing properties the definitions refuse.
    let c = Cloud::start_in_process().await;
    let (ml, arm) = ("UserError", "InvalidRequestContent");
    let ep = format!("{}/onlineEndpoints/rules-ep", c.ws());
    let dep = format!("{ep}/deployments/blue");
    let env = format!("{}/environments/e1/versions/1", c.ws());
    let code = format!("{}/codes/c1/versions/1", c.ws());
    let key = |auth: &str| json!({"authMode": auth});
    let managed = |extra: serde_json::Value| {
        let mut b = json!({"location": "eastus", "properties": {"endpointComputeType": "Managed"}});
        for (k, v) in extra.as_object().into_iter().flatten() {
            b["properties"][k] = v.clone();
        }
        b
    };
    refused(
        &c,
        &[
            (&ep, json!({"location": "eastus", "properties": key("Password")}), ml, "properties.authMode"),
            (&ep, json!({"location": "eastus"}), ml, "properties"),
            (&ep, json!({"location": "eastus", "properties": {"authMode": "Key", "publicNetworkAccess": "Sometimes"}}), ml, "properties.publicNetworkAccess"),
            (&ep, json!({"location": "eastus", "identity": {"type": "Everyone"}, "properties": key("Key")}), ml, "identity.type"),
            (&ep, json!({"location": "eastus", "identity": {}, "properties": key("Key")}), ml, "identity.type"),
        ],
    )
    .await;
    // Enum values compare case-insensitively, unknown properties are ignored, as the service does.
    let made = c
        .arm(Method::PUT, &ep, Some(json!({"location": "eastus", "properties": {"authMode": "key", "somethingNew": true}})))
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    c.wait_async(&made, std::time::Duration::from_secs(30))
        .await;
    let patch = c
        .arm(
            Method::PATCH,
            &ep,
            Some(json!({"identity": {"type": "Everyone"}})),
        )
        .await;
    assert_eq!(patch.status, 400, "{}", patch.text);
    assert_eq!(patch.body["error"]["code"], ml);
    // A deployment's body is judged once its endpoint exists.
    refused(
        &c,
        &[
            (&dep, json!({"location": "eastus", "properties": {}}), ml, "properties.endpointComputeType"),
            (&dep, json!({"location": "eastus", "properties": {"endpointComputeType": "Serverless"}}), ml, "properties.endpointComputeType"),
            (&dep, managed(json!({"egressPublicNetworkAccess": "Sometimes"})), ml, "properties.egressPublicNetworkAccess"),
            (&dep, json!({"location": "eastus", "sku": {"capacity": 1}, "properties": {"endpointComputeType": "Managed"}}), ml, "sku.name"),
            (&dep, managed(json!({"scaleSettings": {"scaleType": "Elastic"}})), ml, "properties.scaleSettings.scaleType"),
            (&dep, managed(json!({"scaleSettings": {}})), ml, "properties.scaleSettings.scaleType"),
            (&env, json!({"properties": {"image": "mcr.microsoft.com/x", "osType": "MacOS"}}), ml, "properties.osType"),
            (&env, json!({}), ml, "properties"),
            (&code, json!({"properties": {}}), ml, "properties.codeUri"),
        ],
    )
    .await;
    let acct = format!(
        "{}/providers/Microsoft.Storage/storageAccounts/rulesacct",
        c.rg()
    );
    let account = |kind: &str, sku: serde_json::Value, props: serde_json::Value| json!({"location": "eastus", "kind": kind, "sku": sku, "properties": props});
    let lrs = || json!({"name": "Standard_LRS"});
    refused(
        &c,
        &[
            (
                &acct,
                account("StorageV2", json!({"name": "Standard_XYZ"}), json!({})),
                arm,
                "sku.name",
            ),
            (&acct, account("StorageV3", lrs(), json!({})), arm, "kind"),
            (
                &acct,
                account("StorageV2", json!({}), json!({})),
                arm,
                "sku.name",
            ),
            (
                &acct,
                json!({"location": "eastus", "sku": lrs()}),
                arm,
                "kind",
            ),
            (
                &acct,
                account("StorageV2", lrs(), json!({"accessTier": "Frozen"})),
                arm,
                "properties.accessTier",
            ),
            (
                &acct,
                account("StorageV2", lrs(), json!({"minimumTlsVersion": "TLS2_0"})),
                arm,
                "properties.minimumTlsVersion",
            ),
        ],
    )
    .await;
    c.create_storage("rulesacct").await;
    let container = format!("{acct}/blobServices/default/containers/data");
    refused(
        &c,
        &[(
            &container,
            json!({"properties": {"publicAccess": "Everyone"}}),
            arm,
            "properties.publicAccess",
        )],
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
    let assignment = |def: String, principal_type: &str| json!({"properties": {"roleDefinitionId": def, "principalId": principal, "principalType": principal_type}});
    // A role definition id of another subscription than the scope's was accepted too.
    let other = "/subscriptions/00000000-0000-0000-0000-00000000beef";
    refused(
        &c,
        &[
            (
                &ra,
                assignment(def(&c.sub()), "MSI"),
                arm,
                "properties.principalType",
            ),
            (
                &ra,
                json!({"properties": {"roleDefinitionId": def(&c.sub())}}),
                arm,
                "properties.principalId",
            ),
            (&ra, json!({}), arm, "properties"),
            (
                &ra,
                assignment(def(other), "ServicePrincipal"),
                "RoleDefinitionDoesNotExist",
                READER,
            ),
        ],
    )
    .await;
    // The tenant-level form (as the service returns it) is accepted at any scope.
    let own = c
        .arm(
            Method::PUT,
            &ra,
            Some(assignment(def(""), "ServicePrincipal")),
        )
        .await;
    assert_eq!(own.status, 201, "{}", own.text);
    c.stop().await;
}
