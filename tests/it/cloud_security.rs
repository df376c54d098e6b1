//! The local cloud lets no one in where they do not belong (issue 18, items 6 to 9 and 12): tokens
//! only for whom an endpoint authorises, role assignments only to those who may read them, names
//! decoded and checked once before any role check, connections that cannot pile up, files that only
//! their owner reads, and injected faults that hit the engine rather than the scoring scripts. Each
//! test is one attack (or one promise) over raw HTTPS against a real cloud; `docs/SECURITY.md` lists
//! them.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::support::Test;
use crate::support::cloud::{CONTRIBUTOR_DATA, Cloud, answer};
use crate::support::raw::tls_over;
use crate::support::wait_until;
use crate::support::walk::{invoke, walk};
use reqwest::Method;
use serde_json::{Value, json};
use stackform::cloud::ConnLimits;
use stackform::cloud::faults::Faults;

const ARM_AUD: &str = "https://management.azure.com/";
const STORAGE_AUD: &str = "https://storage.azure.com/";
/// The ARM built-in role Reader (`*/read`).
const ARM_READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";

/// A new user-assigned identity's principal id: a principal the cloud knows, holding no role.
async fn new_principal(c: &Cloud, name: &str) -> String {
    let u = c
        .arm(
            Method::PUT,
            &format!(
                "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
                c.rg()
            ),
            Some(json!({"location": "eastus"})),
        )
        .await;
    assert_eq!(u.status, 201, "{}", u.text);
    u.body["properties"]["principalId"]
        .as_str()
        .expect("principalId")
        .to_string()
}

/// Assigns built-in role `role` (a GUID) to `principal` at `scope`, as the seeded principal.
async fn assign(c: &Cloud, scope: &str, role: &str, principal: &str) {
    let r = c
        .arm(
            Method::PUT,
            &format!(
                "{scope}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
                uuid::Uuid::new_v4()
            ),
            Some(json!({"properties": {
                "roleDefinitionId": format!("{}/providers/Microsoft.Authorization/roleDefinitions/{role}", c.sub()),
                "principalId": principal, "principalType": "ServicePrincipal"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// Creates an online endpoint with `auth_mode` and waits until it is ready; returns its scoring URI.
async fn endpoint(c: &Cloud, name: &str, auth_mode: &str) -> String {
    let id = format!("{}/onlineEndpoints/{name}", c.ws());
    let ep = c
        .arm(
            Method::PUT,
            &id,
            Some(
                json!({"location": "eastus", "identity": {"type": "SystemAssigned"},
                "properties": {"authMode": auth_mode}}),
            ),
        )
        .await;
    assert_eq!(ep.status, 201, "{}", ep.text);
    let op = c.wait_async(&ep, Duration::from_secs(60)).await;
    assert_eq!(op["status"], "Succeeded");
    scoring_uri(c, &id).await
}

async fn scoring_uri(c: &Cloud, endpoint: &str) -> String {
    c.arm(Method::GET, endpoint, None).await.body["properties"]["scoringUri"]
        .as_str()
        .expect("scoringUri")
        .to_string()
}

/// POSTs `body` to a scoring URI with a bearer key or token.
async fn score(c: &Cloud, uri: &str, bearer: &str, body: &Value) -> (u16, Value) {
    let a = answer(
        c.http
            .post(uri)
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await
            .expect("score"),
    )
    .await;
    (a.status.as_u16(), a.body)
}

/// The bug: with deployment A's `MSI_SECRET`, the managed-identity endpoint minted a token for
/// `aml-endpoint:<endpoint B>` that scored B, and an `AADToken` endpoint took any Azure ML token from
/// any identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_gets_no_token_for_another_endpoint_and_aad_scoring_needs_a_role() {
    let c = Cloud::start_in_process().await;
    // Deployment A runs code that asks its managed-identity endpoint for whatever it is told.
    let w = walk(
        &c,
        "code-probe",
        "conda.yaml",
        false,
        Duration::from_secs(120),
    )
    .await;
    w.assert_succeeded_with_log(&c, "probe ready").await;
    let ep = c
        .arm(Method::PUT, &w.endpoint, Some(json!({"location": "eastus", "identity": {"type": "SystemAssigned"}, "properties": {"authMode": "Key", "traffic": {"blue": 100}}})))
        .await;
    assert_eq!(ep.status, 200, "{}", ep.text);
    c.wait_async(&ep, Duration::from_secs(60)).await;
    let keys = c
        .arm(Method::POST, &format!("{}/listKeys", w.endpoint), None)
        .await;
    let key = keys.body["primaryKey"].as_str().expect("key").to_string();
    let a_uri = scoring_uri(&c, &w.endpoint).await;
    let probe =
        async |resource: &str| score(&c, &a_uri, &key, &json!({"msi_resource": resource})).await;

    let b_aml = endpoint(&c, "ep-b-aml", "AMLToken").await;
    let b_aad = endpoint(&c, "ep-b-aad", "AADToken").await;
    let b_aml_id = format!("{}/onlineEndpoints/ep-b-aml", c.ws()).to_ascii_lowercase();

    // An endpoint's own audience is never issued by the managed-identity endpoint.
    let (status, got) = probe(&format!("aml-endpoint:{b_aml_id}")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["status"], 400, "{got}");
    assert!(got["token"].is_null(), "{got}");
    // Nor anything else outside the Entra resources it serves.
    assert_eq!(probe("https://evil.example/").await.1["status"], 400);

    // An Azure ML token of A's identity is issued, but B (AADToken) refuses it: A holds no role on B.
    let (_, got) = probe("https://ml.azure.com/").await;
    assert_eq!(got["status"], 200, "{got}");
    let a_token = got["token"].as_str().expect("token").to_string();
    let sample = json!({"data": [[1]]});
    let (status, body) = score(&c, &b_aad, &a_token, &sample).await;
    assert_eq!(status, 403, "{body}");

    // Those the endpoints authorise still get in: the seeded principal (Owner) with an Entra token for
    // B, and with the AML token ARM's `token` action gives it for B. (No deployment takes traffic:
    // 404 is past authentication.)
    let sp_ml = c.token_for("https://ml.azure.com/.default").await;
    assert_eq!(score(&c, &b_aad, &sp_ml, &sample).await.0, 404);
    let t = c
        .arm(
            Method::POST,
            &format!("{}/onlineEndpoints/ep-b-aml/token", c.ws()),
            None,
        )
        .await;
    let aml = t.body["accessToken"].as_str().expect("accessToken");
    assert_eq!(score(&c, &b_aml, aml, &sample).await.0, 404);
    // A token for one AMLToken endpoint does not open another.
    assert_eq!(score(&c, &b_aad, aml, &sample).await.0, 401);
    c.stop().await;
}

/// The bug: authorisation was skipped for any GET whose path held a `roleDefinitions` segment, so
/// `…/roleDefinitions/x/providers/Microsoft.Authorization/roleAssignments` listed every principal's
/// roles to an identity holding no role at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_assignments_are_read_only_by_principals_with_a_role() {
    let c = Cloud::start_in_process().await;
    let sp = c.seeded_principal().await;
    let nobody = new_principal(&c, "uai-nobody").await;
    let stranger = c.forge(ARM_AUD, &nobody, 600);
    let v = "?api-version=2022-04-01";
    let auth = "providers/Microsoft.Authorization";
    for path in [
        format!(
            "{}/{auth}/roleDefinitions/x/{auth}/roleAssignments{v}",
            c.sub()
        ),
        format!(
            "{}/{auth}/roleDefinitions/x/{auth}/roleAssignments{v}",
            c.rg()
        ),
        format!("{}/{auth}/roleAssignments{v}", c.sub()),
        format!("{}/{auth}/roleAssignments{v}&$filter=atScope()", c.rg()),
    ] {
        let a = c.arm_as(&stranger, Method::GET, &path, None).await;
        assert_eq!(a.status, 403, "{path}: {}", a.text);
        assert_eq!(a.body["error"]["code"], "AuthorizationFailed");
        assert!(!a.text.contains(&sp), "{path} leaked an assignment");
    }
    // Role definitions stay readable by every signed-in principal, at any scope.
    for path in [
        format!("{}/{auth}/roleDefinitions{v}", c.sub()),
        format!("/{auth}/roleDefinitions/{ARM_READER}{v}"),
    ] {
        let a = c.arm_as(&stranger, Method::GET, &path, None).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
    }
    // A Reader of the resource group reads its assignments, and still cannot write one.
    assign(&c, &c.rg(), ARM_READER, &nobody).await;
    let listed = c
        .arm_as(
            &stranger,
            Method::GET,
            &format!("{}/{auth}/roleAssignments{v}", c.rg()),
            None,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let put = c
        .arm_as(
            &stranger,
            Method::PUT,
            &format!("{}/{auth}/roleAssignments/{}{v}", c.rg(), uuid::Uuid::new_v4()),
            Some(json!({"properties": {"roleDefinitionId": format!("/{auth}/roleDefinitions/{ARM_READER}"), "principalId": nobody}})),
        )
        .await;
    assert_eq!(put.status, 403, "{}", put.text);
    c.stop().await;
}

/// The bug: with Storage Blob Data Contributor on container `hello` only,
/// `PUT /{account}%2Fblobservices%2Fdefault%2Fcontainers%2Fhello/xyz?restype=container` (and a blob
/// under it) succeeded: the decoded "account" matched the container, whose role then covered `xyz`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoded_slash_never_moves_a_request_into_another_container() {
    let c = Cloud::start_in_process().await;
    let account = format!("sec{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let acct = c.create_storage(&account).await;
    let acct_id = acct["id"].as_str().expect("id").to_string();
    let hello = format!("{acct_id}/blobServices/default/containers/hello");
    let made = c.arm(Method::PUT, &hello, Some(json!({}))).await;
    assert_eq!(made.status, 201, "{}", made.text);
    let p = new_principal(&c, "uai-container-only").await;
    assign(&c, &hello, CONTRIBUTOR_DATA, &p).await;
    let token = c.forge(STORAGE_AUD, &p, 600);
    let blob = async |method: Method, rest: &str, body: &'static [u8]| {
        let mut req = c
            .http
            .request(method, c.blob_url(&account, rest))
            .bearer_auth(&token)
            .header("x-ms-version", "2025-11-05");
        if !rest.contains("restype=") {
            req = req.header("x-ms-blob-type", "BlockBlob");
        }
        answer(req.body(body).send().await.expect("blob call")).await
    };
    // The role works where it was given, and nowhere else.
    assert_eq!(blob(Method::PUT, "hello/a.txt", b"a").await.status, 201);
    assert_eq!(
        blob(Method::PUT, "other?restype=container", b"")
            .await
            .status,
        403
    );
    // The attack: the account segment carries the container's path, encoded.
    let smuggled = c.info.blob_endpoint_template.replace(
        "{account}/",
        &format!("{account}%2Fblobservices%2Fdefault%2Fcontainers%2Fhello/"),
    );
    for (url, what) in [
        (format!("{smuggled}xyz?restype=container"), "container"),
        (format!("{smuggled}xyz/b.txt"), "blob"),
    ] {
        let a = answer(
            c.http
                .put(&url)
                .bearer_auth(&token)
                .header("x-ms-version", "2025-11-05")
                .header("x-ms-blob-type", "BlockBlob")
                .body("x")
                .send()
                .await
                .expect("put"),
        )
        .await;
        assert_eq!(a.status, 400, "{what}: {}", a.text);
        assert_eq!(
            a.header("x-ms-error-code").as_deref(),
            Some("InvalidResourceName")
        );
    }
    // An encoded slash in the container segment, and names Azure refuses, are refused too.
    for rest in [
        "hello%2Fxyz?restype=container",
        "hello%2Fxyz/b.txt",
        "Hello/b.txt",
        "he--llo/b.txt",
    ] {
        let a = blob(Method::PUT, rest, b"x").await;
        assert_eq!(a.status, 400, "{rest}: {}", a.text);
    }
    // Nothing was created anywhere.
    for name in ["xyz", "other"] {
        let got = c
            .arm(
                Method::GET,
                &format!("{acct_id}/blobServices/default/containers/{name}"),
                None,
            )
            .await;
        assert_eq!(got.status, 404, "{name}: {}", got.text);
    }
    // ARM paths are decoded once too: a name holding an encoded slash is not a name.
    let arm = c
        .arm(
            Method::PUT,
            &format!("{acct_id}/blobServices/default/containers/hello%2Fxyz"),
            Some(json!({})),
        )
        .await;
    assert_eq!(arm.status, 400, "{}", arm.text);
    assert_eq!(arm.body["error"]["code"], "InvalidResourceName");
    c.stop().await;
}

/// Reads from `s` until the server closes it (end of stream or reset); `false` when it is still open
/// after `limit`.
fn closed_by_server(s: &mut impl Read, limit: Duration, tcp: &TcpStream) -> bool {
    tcp.set_read_timeout(Some(limit)).expect("read timeout");
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// The bug: idle and half-sent connections to the managed-identity port, and HTTPS connections idle
/// after the handshake, stayed open forever; enough of them used up the file limit and the token
/// endpoint stopped answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_partial_connections_are_closed_and_capped() {
    let limits = ConnLimits {
        header_timeout: Duration::from_millis(1500),
        handshake_timeout: Duration::from_millis(1500),
        max_connections: 150,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Cloud::start_in_process_with(dir, 0, Faults::default(), limits).await;
    let msi_port: u16 = c
        .info
        .msi_endpoint
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("msi port");
    let port = c.info.port;
    let ca = c.info.ca_cert.clone();
    // Hundreds of connections: idle, half a request head, idle after one answer (kept alive), and
    // TLS connections idle after the handshake. More than the cap: the surplus is closed at once.
    let held = tokio::task::spawn_blocking(move || {
        let mut plain = Vec::new();
        for i in 0..240 {
            let mut s = TcpStream::connect(("127.0.0.1", msi_port)).expect("connect");
            match i % 3 {
                0 => {}
                1 => s
                    .write_all(b"GET /msi/token?api-version=2017-09-01 HTTP/1.1\r\nHost: x\r\n")
                    .expect("partial head"),
                _ => s
                    .write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
                    .expect("whole request"),
            }
            plain.push(s);
        }
        let mut tls = Vec::new();
        for _ in 0..60 {
            let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let mut s = tls_over(tcp.try_clone().expect("clone"), &ca);
            // Completes the handshake (the write is empty), then stays idle.
            if s.write_all(b"").and_then(|()| s.flush()).is_ok() {
                tls.push((tcp, s));
            }
        }
        (plain, tls)
    })
    .await
    .expect("connections");
    let (plain, tls) = held;
    assert!(!plain.is_empty() && !tls.is_empty());

    // Real requests still answer: at once while there is room, else once idle connections go.
    let seen = wait_until(
        "the token endpoint and HTTPS answer again",
        Duration::from_secs(60),
        async || {
            let msi = reqwest::Client::new()
                .get(format!("http://127.0.0.1:{msi_port}/msi/token?api-version=2017-09-01&resource=https://storage.azure.com/"))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .ok()?;
            let meta = c
                .http
                .get(c.url("/metadata/endpoints?api-version=2022-09-01"))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .ok()?;
            Some((msi.status().as_u16(), meta.status().as_u16()))
        },
    )
    .await;
    // No secret header: the token endpoint answers, and refuses.
    assert_eq!(seen, (401, 200));

    // Every held connection is closed by the server, well within a generous bound (one deadline
    // for all of them).
    let open = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let left = || {
            deadline
                .saturating_duration_since(std::time::Instant::now())
                .max(Duration::from_millis(10))
        };
        let mut open = 0;
        for mut s in plain {
            let tcp = s.try_clone().expect("clone");
            if !closed_by_server(&mut s, left(), &tcp) {
                open += 1;
            }
        }
        for (tcp, mut s) in tls {
            if !closed_by_server(&mut s, left(), &tcp) {
                open += 1;
            }
        }
        open
    })
    .await
    .expect("reads");
    assert_eq!(open, 0, "connections the server never closed");
    c.stop().await;
}

/// Every file and folder under `dir`, symbolic links aside (theirs is not a mode).
fn modes_under(dir: &Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| !e.path_is_symlink())
        .filter_map(|e| {
            let m = std::fs::symlink_metadata(e.path()).ok()?;
            Some((
                e.path().display().to_string(),
                m.permissions().mode() & 0o777,
            ))
        })
        .collect()
}

/// The bug: saved plans, the cloud's data folder, its blob files and the deployments' logs (what
/// `init()` printed) were readable by every user of the machine.
#[test]
fn saved_plans_and_the_clouds_files_are_the_owners_only() {
    let s = Test::new().example("managed-identity").local_cloud(&[]);
    // A saved plan, new or overwriting a readable file.
    s.run(["plan", "-o", "plan.json"]).code(0);
    s.write("other.json", "{}");
    s.run(["plan", "-o", "other.json"]).code(0);
    for f in ["plan.json", "other.json"] {
        let modes = modes_under(&s.path(f));
        assert_eq!(modes[0].1, 0o600, "{f}");
    }
    // The cloud after a full apply: store, keys, blob files, deployment logs, environments.
    s.run(["apply", "--auto-approve"]).code(0);
    let data = s.cloud().dir.path();
    let modes = modes_under(data);
    assert!(modes.len() > 10, "{modes:?}");
    let logs: Vec<_> = modes.iter().filter(|(p, _)| p.ends_with(".log")).collect();
    assert!(
        !logs.is_empty(),
        "no deployment log under {}",
        data.display()
    );
    assert_eq!(modes[0].1, 0o700, "the data folder");
    let open: Vec<_> = modes.iter().filter(|(_, m)| m & 0o077 != 0).collect();
    assert!(open.is_empty(), "readable by others: {open:?}");
}

/// Bytes of every deployment log under a cloud's data folder.
fn deployment_logs(data: &Path) -> String {
    walkdir::WalkDir::new(data.join("deployments"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect()
}

/// The bug: injected faults hit every request, the deployment's own blob read in `init()` included,
/// so a fault test of the engine failed for the scoring script's reasons. Faults now hit the engine's
/// requests only, unless `include_deployments` asks for the deployments' too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_hit_the_engine_and_spare_deployments_unless_asked() {
    let c = Cloud::start_in_process().await;
    let w = walk(&c, "code", "conda.yaml", true, Duration::from_secs(120)).await;
    assert_eq!(w.deployment_status["status"], "Succeeded");
    invoke(&c, &w.endpoint).await;
    let keys = c
        .arm(Method::POST, &format!("{}/listKeys", w.endpoint), None)
        .await;
    let key = keys.body["primaryKey"].as_str().expect("key").to_string();
    let uri = scoring_uri(&c, &w.endpoint).await;
    let port = c.info.port;
    let every_request_fails = Faults {
        error_rate: 1.0,
        ..Faults::default()
    };
    let sample = json!({"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]});

    // Restarted with every request failing: the deployment restarts and its init() reads its blob.
    let dir = c.stop().await;
    let c = Cloud::start_in_process_with(
        dir,
        port,
        every_request_fails.clone(),
        ConnLimits::default(),
    )
    .await;
    let engine = c.arm(Method::GET, &c.rg(), None).await;
    assert!(
        [500, 503].contains(&engine.status.as_u16()),
        "the engine's request is faulted: {}",
        engine.text
    );
    let served = wait_until(
        "the deployment serves under faults",
        Duration::from_secs(90),
        async || {
            let (status, body) = score(&c, &uri, &key, &sample).await;
            let logs = deployment_logs(c.dir.path());
            assert!(
                !logs.contains("failed: HTTP 5"),
                "init() was hit by a fault meant for the engine:\n{logs}"
            );
            (status == 200).then_some(body)
        },
    )
    .await;
    assert_eq!(served, json!([192.75]));

    // With include_deployments, the same restart fails in init() on an injected 5xx.
    let dir = c.stop().await;
    let c = Cloud::start_in_process_with(
        dir,
        port,
        Faults {
            include_deployments: true,
            ..every_request_fails
        },
        ConnLimits::default(),
    )
    .await;
    let logs = wait_until(
        "init() fails on an injected fault",
        Duration::from_secs(90),
        async || {
            let logs = deployment_logs(c.dir.path());
            logs.contains("failed: HTTP 5").then_some(logs)
        },
    )
    .await;
    assert!(logs.contains("hello.txt"), "{logs}");
    assert_ne!(score(&c, &uri, &key, &sample).await.0, 200);
    c.stop().await;
}
