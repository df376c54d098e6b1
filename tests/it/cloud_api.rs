//! Contract rules of the local cloud, driven over HTTPS against an in-process instance: token endpoint,
//! ARM authentication/authorisation and envelope rules, storage and role-assignment semantics, ML
//! asset/endpoint/deployment rules, and the blob data plane.
use std::time::Duration;

use crate::support::cloud::{CONTRIBUTOR_DATA, Cloud, READER, STORAGE_SCOPE, answer};
use crate::support::walk::walk;
use reqwest::Method;
use serde_json::json;

fn forge(c: &Cloud, aud: &str, oid: &str, exp_offset: i64) -> String {
    c.forge(aud, oid, exp_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_follows_entra_shapes() {
    let c = Cloud::start_in_process().await;
    for scope in [
        "https://management.azure.com/.default",
        "https://management.core.windows.net//.default",
        &format!("{}.default", c.info.arm_endpoint),
        "https://storage.azure.com/.default",
        "https://ml.azure.com/.default",
    ] {
        let t = c.token_for(scope).await;
        assert_eq!(t.split('.').count(), 3, "{scope}");
    }
    let form = |secret: &str, scope: &str| {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &c.info.client_id)
            .append_pair("client_secret", secret)
            .append_pair("scope", scope)
            .finish()
    };
    let url = c.url(&format!("/{}/oauth2/v2.0/token", c.info.tenant_id));
    let ok = answer(
        c.http
            .post(&url)
            .body(form(
                &c.info.client_secret,
                "https://management.azure.com/.default",
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ok.body["expires_in"], 3599);
    assert_eq!(ok.body["token_type"], "Bearer");
    let bad = answer(
        c.http
            .post(&url)
            .body(form("nope", "https://management.azure.com/.default"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bad.status, 401);
    assert_eq!(bad.body["error"], "invalid_client");
    assert_eq!(bad.body["error_codes"], json!([7000215]));
    assert!(
        bad.body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215")
    );
    assert!(!bad.text.contains(&c.info.client_secret));
    let scope = answer(
        c.http
            .post(&url)
            .body(form(&c.info.client_secret, "https://example.com/.default"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(scope.body["error"], "invalid_scope");
    let oidc = answer(
        c.http
            .get(c.url(&format!(
                "/{}/v2.0/.well-known/openid-configuration",
                c.info.tenant_id
            )))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(oidc.body["token_endpoint"], url.as_str());
    assert!(oidc.body["issuer"].is_string() && oidc.body["authorization_endpoint"].is_string());
    let disc = answer(
        c.http
            .get(c.url("/common/discovery/instance?api-version=1.1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        disc.body["tenant_discovery_endpoint"].is_string(),
        "{} {}",
        disc.status,
        disc.text
    );
    let meta = answer(c.http.get(&c.info.metadata_endpoint).send().await.unwrap()).await;
    assert_eq!(meta.body["resourceManager"], c.info.arm_endpoint.as_str());
    assert!(meta.body["authentication"]["audiences"].is_array());
    assert!(meta.body["microsoftGraphResourceId"].is_string());
    let subs = c.arm(Method::GET, "/subscriptions", None).await;
    assert_eq!(
        subs.body["value"][0]["subscriptionId"],
        c.info.subscription_id.as_str()
    );
    let rgs = c
        .arm(Method::GET, &format!("{}/resourcegroups", c.sub()), None)
        .await;
    assert_eq!(rgs.body["value"][0]["name"], c.info.resource_group.as_str());
    let sub = c.arm(Method::GET, &c.sub(), None).await;
    assert_eq!(sub.body["tenantId"], c.info.tenant_id.as_str());
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arm_authentication_and_authorisation() {
    let c = Cloud::start_in_process().await;
    // Resource groups are served at 2024-11-01, not 2025-01-01 (Microsoft.Storage's): ARM refuses that.
    let path = format!("{}?api-version=2024-11-01", c.rg());
    let none = answer(c.http.get(c.url(&path)).send().await.unwrap()).await;
    assert_eq!(none.status, 401);
    assert!(
        none.header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(none.body["error"]["code"], "AuthenticationFailed");
    let cases = [
        (
            "garbage.token.here".to_string(),
            "InvalidAuthenticationToken",
        ),
        (
            forge(&c, "https://management.azure.com/", "x", -10),
            "ExpiredAuthenticationToken",
        ),
        (
            c.token_for(STORAGE_SCOPE).await,
            "InvalidAuthenticationTokenAudience",
        ),
        (
            format!("{}x", c.token().await),
            "InvalidAuthenticationToken",
        ),
    ];
    for (token, code) in cases {
        let a = c.arm_as(&token, Method::GET, &c.rg(), None).await;
        assert_eq!(a.status, 401, "{code}");
        assert_eq!(a.body["error"]["code"], code);
        assert!(a.header("www-authenticate").is_some());
    }
    let stranger = forge(
        &c,
        "https://management.azure.com/",
        &uuid::Uuid::new_v4().to_string(),
        600,
    );
    let a = c.arm_as(&stranger, Method::GET, &c.rg(), None).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.body["error"]["code"], "AuthorizationFailed");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arm_envelope_api_version_casing_and_headers() {
    let c = Cloud::start_in_process().await;
    let t = c.token().await;
    let missing = answer(
        c.http
            .get(c.url(&c.rg()))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["error"]["code"], "MissingApiVersionParameter");
    let bad = c
        .arm(Method::GET, &format!("{}?api-version=latest", c.rg()), None)
        .await;
    assert_eq!(bad.body["error"]["code"], "InvalidApiVersionParameter");
    let r = c
        .http
        .get(c.url(&format!(
                "{}?api-version=2024-11-01",
                c.rg()
                    .to_uppercase()
                    .replace("/SUBSCRIPTIONS", "/subscriptions")
            )))
        .bearer_auth(&t)
        .header("x-ms-client-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    let a = answer(r).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.header("x-ms-client-request-id").as_deref(),
        Some("abc-123")
    );
    assert!(
        a.header("x-ms-request-id").is_some() && a.header("x-ms-correlation-request-id").is_some()
    );
    assert!(
        a.header("x-ms-ratelimit-remaining-subscription-reads")
            .is_some()
    );
    assert!(
        a.body["id"].as_str().unwrap().contains("RESOURCEGROUPS"),
        "id echoes the request casing"
    );
    // A raw body PUT to one account, as no client of ours would send it.
    let account = c.url(&format!(
        "{}/providers/Microsoft.Storage/storageAccounts/abcd1234?api-version=2025-01-01",
        c.rg()
    ));
    let put_raw = |body: Vec<u8>| {
        c.http
            .put(account.clone())
            .bearer_auth(&t)
            .body(body)
            .send()
    };
    let j = answer(put_raw(b"{not json".to_vec()).await.unwrap()).await;
    assert_eq!(j.status, 400);
    assert_eq!(j.body["error"]["code"], "InvalidRequestContent");
    let w = c
        .arm(
            Method::PUT,
            &format!("{}/providers/Microsoft.Web/sites/x", c.rg()),
            Some(json!({})),
        )
        .await;
    assert_eq!(w.status, 501);
    assert_eq!(w.body["error"]["code"], "NotImplemented");
    // The cloud answers 413 as soon as it sees the length and closes the connection; on a loaded
    // machine that can come while the client is still writing the body, which then fails with a
    // broken pipe before the answer is read. Such a try is sent again; the answer must be 413.
    let mut tries = 0;
    let big = loop {
        let sent = put_raw(vec![b' '; 17 << 20]).await;
        tries += 1;
        match sent {
            Err(e) if e.is_request() && tries < 5 => continue,
            other => break other.unwrap(),
        }
    };
    assert_eq!(big.status(), 413);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_accounts_names_keys_and_cascading_delete() {
    let c = Cloud::start_in_process().await;
    let base = format!("{}/providers/Microsoft.Storage/storageAccounts", c.rg());
    let body = json!({"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}});
    let taken = c
        .arm(
            Method::PUT,
            &format!("{base}/takenname1"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(taken.status, 409);
    assert_eq!(taken.body["error"]["code"], "StorageAccountAlreadyTaken");
    let invalid = c
        .arm(Method::PUT, &format!("{base}/Bad_Name"), Some(body.clone()))
        .await;
    assert_eq!(invalid.status, 400);
    let check = c
        .arm(
            Method::POST,
            &format!(
                "{}/providers/Microsoft.Storage/checkNameAvailability",
                c.sub()
            ),
            Some(json!({"name": "takenabc", "type": "Microsoft.Storage/storageAccounts"})),
        )
        .await;
    assert_eq!(check.body["nameAvailable"], false);
    assert_eq!(check.body["reason"], "AlreadyExists");
    let acct = c.create_storage("cascade1").await;
    assert_eq!(
        acct["properties"]["primaryEndpoints"]["blob"],
        c.blob_url("cascade1", "").as_str()
    );
    let again = c
        .arm(Method::PUT, &format!("{base}/cascade1"), Some(body.clone()))
        .await;
    assert_eq!(again.status, 200);
    let keys = c
        .arm(Method::POST, &format!("{base}/cascade1/listKeys"), None)
        .await;
    let k1 = keys.body["keys"][0]["value"].as_str().unwrap().to_string();
    let k2 = keys.body["keys"][1]["value"].as_str().unwrap().to_string();
    assert_ne!(k1, k2);
    assert_eq!(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &k1)
            .unwrap()
            .len(),
        64
    );
    assert!(
        !c.arm(Method::GET, &format!("{base}/cascade1"), None)
            .await
            .text
            .contains(&k1)
    );
    let list = c.arm(Method::GET, &base, None).await;
    assert!(
        list.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "cascade1")
    );
    let cont = format!("{base}/cascade1/blobServices/default/containers/data");
    assert_eq!(c.arm(Method::PUT, &cont, Some(json!({}))).await.status, 201);
    assert_eq!(c.arm(Method::PUT, &cont, Some(json!({}))).await.status, 200);
    assert_eq!(
        c.arm(Method::GET, &cont, None).await.body["properties"]["publicAccess"],
        "None"
    );
    c.put_blob("cascade1", &k1, "data", "a.txt", b"x".to_vec())
        .await;
    let ra = format!(
        "{base}/cascade1/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
        uuid::Uuid::new_v4()
    );
    let sp_oid = c.seeded_principal().await;
    let r = c
        .arm(Method::PUT, &ra, Some(json!({"properties": {"roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{READER}"), "principalId": sp_oid}})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        c.arm(Method::DELETE, &format!("{base}/cascade1"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        c.arm(Method::DELETE, &format!("{base}/cascade1"), None)
            .await
            .status,
        204
    );
    assert_eq!(c.arm(Method::GET, &cont, None).await.status, 404);
    assert_eq!(c.arm(Method::GET, &ra, None).await.status, 404);
    let recreated = c.create_storage("cascade1").await;
    assert_eq!(recreated["name"], "cascade1");
    let key = c.account_key("cascade1").await;
    assert_eq!(c.arm(Method::PUT, &cont, Some(json!({}))).await.status, 201);
    let gone = c
        .blob_shared_key(Method::GET, "cascade1", &key, "data/a.txt", vec![], &[])
        .await;
    assert_eq!(gone.status, 404, "blobs went with the account");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_assignments_follow_the_contract() {
    let c = Cloud::start_in_process().await;
    c.create_storage("rolesacct").await;
    let scope = format!(
        "{}/providers/Microsoft.Storage/storageAccounts/rolesacct",
        c.rg()
    );
    let uai_path = format!(
        "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader-id",
        c.rg()
    );
    let uai = c
        .arm(Method::PUT, &uai_path, Some(json!({"location": "eastus"})))
        .await;
    assert_eq!(uai.status, 201);
    let principal = uai.body["properties"]["principalId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(uai.body["properties"]["clientId"].is_string());
    assert_eq!(
        uai.body["properties"]["tenantId"],
        c.info.tenant_id.as_str()
    );
    let role = |p: &str, g: &str| json!({"properties": {"roleDefinitionId": format!("{}/providers/Microsoft.Authorization/roleDefinitions/{g}", c.sub()), "principalId": p, "principalType": "ServicePrincipal"}});
    let ra = |g: &str| {
        format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments/{g}?api-version=2022-04-01"
        )
    };
    let g1 = uuid::Uuid::new_v4().to_string();
    let unknown = c
        .arm(
            Method::PUT,
            &ra(&g1),
            Some(role(&uuid::Uuid::new_v4().to_string(), READER)),
        )
        .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.body["error"]["code"], "PrincipalNotFound");
    let created = c
        .arm(Method::PUT, &ra(&g1), Some(role(&principal, READER)))
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(
        c.arm(Method::PUT, &ra(&g1), Some(role(&principal, READER)))
            .await
            .status,
        200
    );
    let dup = c
        .arm(
            Method::PUT,
            &ra(&uuid::Uuid::new_v4().to_string()),
            Some(role(&principal, READER)),
        )
        .await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.body["error"]["code"], "RoleAssignmentExists");
    let got = c.arm(Method::GET, &ra(&g1.to_uppercase()), None).await;
    assert_eq!(got.status, 200);
    assert!(
        got.body["properties"]["roleDefinitionId"]
            .as_str()
            .unwrap()
            .ends_with(READER)
    );
    let listed = c
        .arm(Method::GET, &format!("{scope}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=principalId%20eq%20'{principal}'"), None)
        .await;
    assert_eq!(listed.body["value"].as_array().unwrap().len(), 1);
    let def = c.arm(Method::GET, &format!("{}/providers/Microsoft.Authorization/roleDefinitions/{READER}?api-version=2022-04-01", c.sub()), None).await;
    assert_eq!(
        def.body["properties"]["roleName"],
        "Storage Blob Data Reader"
    );
    assert_eq!(c.arm(Method::DELETE, &ra(&g1), None).await.status, 200);
    assert_eq!(c.arm(Method::DELETE, &ra(&g1), None).await.status, 204);
    assert_eq!(
        c.arm(Method::GET, &ra(&g1), None).await.body["error"]["code"],
        "RoleAssignmentNotFound"
    );
    assert_eq!(c.arm(Method::DELETE, &uai_path, None).await.status, 200);
    assert_eq!(c.arm(Method::GET, &uai_path, None).await.status, 404);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_data_plane_auth_roles_and_semantics() {
    let c = Cloud::start_in_process().await;
    c.create_storage("blobacct").await;
    let acct_id = format!(
        "{}/providers/Microsoft.Storage/storageAccounts/blobacct",
        c.rg()
    );
    let key = c.account_key("blobacct").await;
    let created = c
        .blob_shared_key(
            Method::PUT,
            "blobacct",
            &key,
            "box?restype=container",
            vec![],
            &[],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let exists = c
        .blob_shared_key(
            Method::PUT,
            "blobacct",
            &key,
            "box?restype=container",
            vec![],
            &[],
        )
        .await;
    assert_eq!(
        exists.header("x-ms-error-code").as_deref(),
        Some("ContainerAlreadyExists")
    );
    c.put_blob(
        "blobacct",
        &key,
        "box",
        "dir/hello.txt",
        b"Hello world!".to_vec(),
    )
    .await;
    c.put_blob("blobacct", &key, "box", "top.txt", b"top".to_vec())
        .await;
    let url = c.blob_url("blobacct", "box/dir/hello.txt");

    // No credentials, a bad bearer token, a bad SharedKey signature, a missing x-ms-version.
    let none = answer(
        c.http
            .get(&url)
            .header("x-ms-version", "2025-11-05")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(none.status, 401);
    assert_eq!(
        none.header("x-ms-error-code").as_deref(),
        Some("NoAuthenticationInformation")
    );
    assert!(
        none.text
            .contains("<Code>NoAuthenticationInformation</Code>")
    );
    let bad = answer(
        c.http
            .get(&url)
            .bearer_auth("x.y.z")
            .header("x-ms-version", "2025-11-05")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bad.status, 401);
    assert!(
        bad.header("www-authenticate")
            .unwrap()
            .contains("resource_id=https://storage.azure.com")
    );
    let wrong_key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 64]);
    let forged = c
        .blob_shared_key(
            Method::GET,
            "blobacct",
            &wrong_key,
            "box/dir/hello.txt",
            vec![],
            &[],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(
        forged.header("x-ms-error-code").as_deref(),
        Some("AuthenticationFailed")
    );
    assert!(forged.text.contains("AuthenticationErrorDetail"));
    let storage = c.token_for(STORAGE_SCOPE).await;
    let nover = answer(c.http.get(&url).bearer_auth(&storage).send().await.unwrap()).await;
    assert_eq!(nover.status, 400);
    let old_version = answer(
        c.http
            .get(&url)
            .bearer_auth(&storage)
            .header("x-ms-version", "2015-02-21")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        old_version.header("x-ms-error-code").as_deref(),
        Some("InvalidHeaderValue")
    );

    // ARM Owner is not a data role; Reader reads but cannot write; Contributor on the RG writes.
    let get = |t: String| {
        let req = c
            .http
            .get(&url)
            .bearer_auth(t)
            .header("x-ms-version", "2025-11-05");
        async move { answer(req.send().await.unwrap()).await }
    };
    let denied = get(storage.clone()).await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.header("x-ms-error-code").as_deref(),
        Some("AuthorizationPermissionMismatch")
    );
    let sp_oid = c.seeded_principal().await;
    let assign = |scope: String, role: &'static str| {
        let body = json!({"properties": {"roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{role}"), "principalId": sp_oid}});
        let path = format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
            uuid::Uuid::new_v4()
        );
        let c = &c;
        async move { c.arm(Method::PUT, &path, Some(body)).await.status }
    };
    assert_eq!(
        assign(
            format!("{acct_id}/blobServices/default/containers/box"),
            READER
        )
        .await,
        201
    );
    let read = get(storage.clone()).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.text, "Hello world!");
    let put = |body: &'static [u8], extra: Vec<(&'static str, String)>| {
        let mut req = c
            .http
            .put(&url)
            .bearer_auth(&storage)
            .header("x-ms-version", "2025-11-05")
            .header("x-ms-blob-type", "BlockBlob");
        for (k, v) in extra {
            req = req.header(k, v);
        }
        async move { answer(req.body(body).send().await.unwrap()).await }
    };
    assert_eq!(put(b"new", vec![]).await.status, 403);
    assert_eq!(assign(c.rg(), CONTRIBUTOR_DATA).await, 201);
    let written = put(b"Hello world!", vec![]).await;
    assert_eq!(written.status, 201, "{}", written.text);
    let etag = written.header("etag").unwrap();
    assert!(written.header("content-md5").is_some());

    // Content-MD5, conditional headers, ranges.
    assert_eq!(
        put(
            b"abc",
            vec![("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==".into())]
        )
        .await
        .header("x-ms-error-code")
        .as_deref(),
        Some("Md5Mismatch")
    );
    assert_eq!(
        put(b"abc", vec![("if-none-match", "*".into())])
            .await
            .status,
        409
    );
    assert_eq!(
        put(b"abc", vec![("if-match", "\"0xstale\"".into())])
            .await
            .status,
        412
    );
    // A bearer GET of the blob with extra request headers.
    let get_with = |headers: Vec<(&'static str, String)>| {
        let mut req = c
            .http
            .get(&url)
            .bearer_auth(&storage)
            .header("x-ms-version", "2025-11-05");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move { answer(req.send().await.unwrap()).await }
    };
    let cond = get_with(vec![("if-none-match", etag.clone())]).await;
    assert_eq!(cond.status, 304);
    let ranged = get_with(vec![
        ("x-ms-range", "bytes=0-33554431".into()),
        ("range", "bytes=0-1".into()),
    ])
    .await;
    assert_eq!(ranged.status, 206);
    assert_eq!(
        ranged.header("content-range").as_deref(),
        Some("bytes 0-11/12")
    );
    assert_eq!(ranged.text, "Hello world!");
    let part = get_with(vec![("range", "bytes=6-10".into())]).await;
    assert_eq!(part.text, "world");
    let out = get_with(vec![("range", "bytes=50-".into())]).await;
    assert_eq!(out.status, 416);
    let head = answer(
        c.http
            .head(c.blob_url("blobacct", "box/missing"))
            .bearer_auth(&storage)
            .header("x-ms-version", "2025-11-05")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(head.status, 404);
    assert_eq!(
        head.header("x-ms-error-code").as_deref(),
        Some("BlobNotFound")
    );
    assert!(head.text.is_empty());

    // Listing with a delimiter, then delete.
    let list = c
        .blob_shared_key(
            Method::GET,
            "blobacct",
            &key,
            "box?restype=container&comp=list&delimiter=/",
            vec![],
            &[],
        )
        .await;
    assert_eq!(list.status, 200);
    assert!(
        list.text
            .contains("<BlobPrefix><Name>dir/</Name></BlobPrefix>"),
        "{}",
        list.text
    );
    assert!(list.text.contains("<Name>top.txt</Name>"));
    assert!(!list.text.contains("hello.txt"));
    let del = answer(
        c.http
            .delete(&url)
            .bearer_auth(&storage)
            .header("x-ms-version", "2025-11-05")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(del.status, 202);
    assert_eq!(get(storage.clone()).await.status, 404);
    // allowSharedKeyAccess: false refuses SharedKey on the data plane (listKeys still works).
    let acct_body = json!({"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}, "properties": {"allowSharedKeyAccess": false}});
    assert_eq!(
        c.arm(Method::PUT, &acct_id, Some(acct_body)).await.status,
        200
    );
    let key_now = c.account_key("blobacct").await;
    let refused = c
        .blob_shared_key(
            Method::GET,
            "blobacct",
            &key_now,
            "box/top.txt",
            vec![],
            &[],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.header("x-ms-error-code").as_deref(),
        Some("KeyBasedAuthenticationNotPermitted")
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ml_assets_are_immutable_and_endpoints_validate() {
    let c = Cloud::start_in_process().await;
    let code = format!("{}/codes/c1/versions/1", c.ws());
    let body = json!({"properties": {"codeUri": "https://127.0.0.1/acct/c/x"}});
    assert_eq!(
        c.arm(Method::PUT, &code, Some(body.clone())).await.status,
        201
    );
    assert_eq!(c.arm(Method::PUT, &code, Some(body)).await.status, 200);
    let changed = c
        .arm(
            Method::PUT,
            &code,
            Some(json!({"properties": {"codeUri": "https://127.0.0.1/acct/c/y"}})),
        )
        .await;
    assert_eq!(changed.status, 409);
    assert_eq!(changed.body["error"]["code"], "UserError");
    assert_eq!(
        c.arm(Method::GET, &format!("{}/codes/c1/versions", c.ws()), None)
            .await
            .body["value"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let ds = c
        .arm(
            Method::GET,
            &format!("{}/datastores?isDefault=true", c.ws()),
            None,
        )
        .await;
    assert_eq!(ds.body["value"][0]["properties"]["isDefault"], true);
    let ws = c.arm(Method::GET, &c.ws(), None).await;
    assert!(
        ws.body["properties"]["storageAccount"]
            .as_str()
            .unwrap()
            .contains("storageAccounts")
    );

    let ep = format!("{}/onlineEndpoints/valid-ep", c.ws());
    let uai_missing = c
        .arm(Method::PUT, &ep, Some(json!({"location": "eastus", "identity": {"type": "UserAssigned", "userAssignedIdentities": {format!("{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/none", c.rg()): {}}}, "properties": {"authMode": "Key"}})))
        .await;
    assert_eq!(uai_missing.status, 400);
    let uai = c
        .arm(
            Method::PUT,
            &format!(
                "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mine",
                c.rg()
            ),
            Some(json!({"location": "eastus"})),
        )
        .await;
    let uai_id = uai.body["id"].as_str().unwrap().to_string();
    let made = c
        .arm(Method::PUT, &ep, Some(json!({"location": "eastus", "identity": {"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": {uai_id.clone(): {}}}, "properties": {"authMode": "Key"}})))
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    assert_eq!(
        made.body["identity"]["userAssignedIdentities"][&uai_id]["clientId"],
        uai.body["properties"]["clientId"]
    );
    assert!(
        made.header("azure-asyncoperation")
            .unwrap()
            .contains("mfeOperationsStatus")
    );
    let unknown_traffic = c.arm(Method::PUT, &ep, Some(json!({"location": "eastus", "identity": made.body["identity"].clone(), "properties": {"authMode": "Key", "traffic": {"nope": 100}}}))).await;
    assert_eq!(unknown_traffic.status, 400);
    let missing_model = c
        .arm(
            Method::PUT,
            &format!("{ep}/deployments/blue"),
            Some(json!({"location": "eastus", "properties": {"endpointComputeType": "Managed", "model": format!("{}/models/nope/versions/1", c.ws()), "environmentId": "azureml://registries/azureml/environments/x/versions/1", "codeConfiguration": {"codeId": code, "scoringScript": "score.py"}}})),
        )
        .await;
    assert_eq!(missing_model.status, 400);
    assert_eq!(
        c.arm(Method::DELETE, &format!("{ep}/deployments/none"), None)
            .await
            .status,
        204
    );
    let del = c.arm(Method::DELETE, &ep, None).await;
    assert_eq!(del.status, 202);
    assert_eq!(
        c.wait_location(&del.header("location").unwrap())
            .await
            .status,
        200
    );
    assert_eq!(c.arm(Method::GET, &ep, None).await.status, 404);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_traffic_scale_logs_and_cascading_delete() {
    let c = Cloud::start_in_process().await;
    let w = walk(&c, "code", "conda.yaml", true, Duration::from_secs(120)).await;
    assert_eq!(w.deployment_status["status"], "Succeeded");
    let ep = w.endpoint.clone();
    let dep = format!("{ep}/deployments/blue");
    let put_ep = |traffic: serde_json::Value| {
        let body = json!({"location": "eastus", "identity": {"type": "SystemAssigned"}, "properties": {"authMode": "Key", "traffic": traffic}});
        let c = &c;
        let ep = ep.clone();
        async move { c.arm(Method::PUT, &ep, Some(body)).await }
    };
    assert_eq!(
        put_ep(json!({"blue": 50})).await.status,
        400,
        "traffic must sum to 100"
    );
    let ok = put_ep(json!({"blue": 100})).await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        c.wait_async(&ok, Duration::from_secs(30)).await["status"],
        "Succeeded"
    );
    let refused = c.arm(Method::DELETE, &dep, None).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body["error"]["code"], "UserError");
    let scale = c
        .arm(Method::PATCH, &dep, Some(json!({"sku": {"capacity": 3}})))
        .await;
    assert_eq!(scale.status, 202);
    let done = c.wait_location(&scale.header("location").unwrap()).await;
    assert_eq!(done.body["sku"]["capacity"], 3);
    // A full PUT with a changed environment variable redeploys: 200, Updating, then Succeeded.
    let mut body = c.arm(Method::GET, &dep, None).await.body;
    body["properties"]["environmentVariables"]["EXTRA"] = "1".into();
    let update = c.arm(Method::PUT, &dep, Some(body)).await;
    assert_eq!(update.status, 200, "{}", update.text);
    assert_eq!(update.body["properties"]["provisioningState"], "Updating");
    let op = c.wait_async(&update, Duration::from_secs(60)).await;
    assert_eq!(op["status"], "Succeeded");
    let tail = c
        .arm(
            Method::POST,
            &format!("{dep}/getLogs"),
            Some(json!({"tail": 1})),
        )
        .await;
    assert_eq!(tail.body["content"].as_str().unwrap().lines().count(), 1);
    let init = c
        .arm(
            Method::POST,
            &format!("{dep}/getLogs"),
            Some(json!({"containerType": "StorageInitializer"})),
        )
        .await;
    assert!(
        init.body["content"]
            .as_str()
            .unwrap()
            .contains("downloaded")
    );
    let keys = c.arm(Method::POST, &format!("{ep}/listKeys"), None).await;
    let key = keys.body["secondaryKey"].as_str().unwrap().to_string();
    let scoring = c.arm(Method::GET, &ep, None).await.body["properties"]["scoringUri"]
        .as_str()
        .unwrap()
        .to_string();
    let bad_dep = c
        .http
        .post(&scoring)
        .bearer_auth(&key)
        .header("azureml-model-deployment", "green")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_dep.status(), 404);
    let model_error = c
        .http
        .post(&scoring)
        .bearer_auth(&key)
        .header("azureml-model-deployment", "blue")
        .body("{\"data\": 5}")
        .send()
        .await
        .unwrap();
    assert_eq!(model_error.status(), 424);
    assert_eq!(
        model_error.headers()["ms-azureml-model-error-statuscode"],
        "500"
    );
    let list = c.arm(Method::GET, &format!("{ep}/deployments"), None).await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 1);
    let eps = c
        .arm(Method::GET, &format!("{}/onlineEndpoints", c.ws()), None)
        .await;
    assert!(
        eps.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"].as_str() == ep.rsplit('/').next())
    );
    let del = c.arm(Method::DELETE, &ep, None).await;
    assert_eq!(del.status, 202);
    c.wait_location(&del.header("location").unwrap()).await;
    assert_eq!(c.arm(Method::GET, &dep, None).await.status, 404);
    let gone = c
        .http
        .post(&scoring)
        .bearer_auth(&key)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    c.stop().await;
}

/// The Rust `azure_identity` crate (what the provider uses) gets tokens from the local cloud through a
/// custom authority host and a transport that trusts the local CA; a wrong secret surfaces AADSTS7000215.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_identity_client_secret_credential_works_against_the_local_cloud() {
    use std::sync::Arc;

    use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
    use azure_core::credentials::{Secret, TokenCredential};
    use azure_core::http::{ClientOptions, Transport};
    use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};

    let c = Cloud::start_in_process().await;
    let credential = |secret: &str| {
        let mut custom = CustomConfiguration::default();
        custom.authority_host = c.info.authority_host.clone();
        let client_options = ClientOptions {
            cloud: Some(Arc::new(CloudConfiguration::Custom(custom))),
            transport: Some(Transport::new(Arc::new(c.http.clone()))),
            ..Default::default()
        };
        ClientSecretCredential::new(
            &c.info.tenant_id,
            c.info.client_id.clone(),
            Secret::new(secret.to_string()),
            Some(ClientSecretCredentialOptions { client_options }),
        )
        .unwrap()
    };
    let token = credential(&c.info.client_secret)
        .get_token(&["https://management.azure.com/.default"], None)
        .await
        .unwrap();
    let rg = c
        .arm_as(token.token.secret(), Method::GET, &c.rg(), None)
        .await;
    assert_eq!(rg.status, 200);
    let err = credential("wrong")
        .get_token(&["https://management.azure.com/.default"], None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("AADSTS7000215"), "{err}");
    c.stop().await;
}

/// Regression: an endpoint PUT stored its operation before its body, so a concurrent request could
/// settle the operation first and leave the endpoint `Creating` for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_created_under_concurrent_traffic_all_settle() {
    let c = Cloud::start_in_process().await;
    let token = c.token().await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (http, url, tok) = (
            c.http.clone(),
            c.url(&format!(
                "{}/onlineEndpoints/busy-ep-{i}?api-version=2025-12-01",
                c.ws()
            )),
            token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let body = json!({"location": "eastus", "identity": {"type": "SystemAssigned"}, "properties": {"authMode": "Key"}});
            let r = http.put(&url).bearer_auth(&tok).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 201);
            let _ = r.bytes().await;
        }));
        let (http, url, tok) = (
            c.http.clone(),
            c.url(&format!("{}?api-version=2024-11-01", c.rg())),
            token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                let _ = http
                    .get(&url)
                    .bearer_auth(&tok)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for i in 0..24 {
        let ep = c
            .arm(
                Method::GET,
                &format!("{}/onlineEndpoints/busy-ep-{i}", c.ws()),
                None,
            )
            .await;
        assert_eq!(
            ep.body["properties"]["provisioningState"], "Succeeded",
            "busy-ep-{i}"
        );
    }
    c.stop().await;
}

/// Conditional writes are atomic: of many concurrent create-only (`If-None-Match: *`) Put Blobs, exactly
/// one wins, so a blob can serve as a lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_create_only_puts_have_one_winner() {
    let c = Cloud::start_in_process().await;
    c.create_storage("lockacct").await;
    let key = c.account_key("lockacct").await;
    c.create_container("lockacct", &key, "locks").await;
    let c = std::sync::Arc::new(c);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (c, key) = (c.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            c.blob_shared_key(
                Method::PUT,
                "lockacct",
                &key,
                "locks/state.lock",
                format!("holder {i}").into_bytes(),
                &[("x-ms-blob-type", "BlockBlob"), ("if-none-match", "*")],
            )
            .await
            .status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        15,
        "{statuses:?}"
    );
    let c = std::sync::Arc::try_unwrap(c).ok().expect("sole owner");
    c.stop().await;
}
