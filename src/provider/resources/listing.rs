//! Refresh by list calls: resources whose spec has an `arm.list` are read together, one listing (with
//! its paging) per collection, instead of one GET each. The facts of which list covers a type are in
//! the spec (`arm.list`: the collection's path, what its members share, whether an entry is complete);
//! this module only groups and matches, the same way for every type. What a listing does not hold is
//! gone; what it holds incompletely is read again by GET. A listing is matched page by page, and
//! of each page only what a request needs is kept.
//!
//! It sends requests only through the ARM client and the blob data plane, and never puts a secret into
//! an [`Observed`].

use serde_json::Value;
use std::collections::HashMap;

use super::common::{Ctx, generic_read, spec_observe};
use super::{blob, online_deployment, role_assignment, storage_account};
use crate::provider::contract::{Observed, ResourceRequest, ResourceType, Result};
use crate::specs::Plane;

/// The collection `req` is listed in (its type and the filled list path), `None` when its type has no
/// listing or its inputs cannot fill the path (it is then read alone).
pub(crate) fn group(ctx: &Ctx, req: &ResourceRequest) -> Option<String> {
    let spec = ctx.spec(req.resource_type).ok()?;
    let list = spec.arm.list.as_ref()?;
    let key = match spec.arm.plane {
        // The data plane's container URL is known only once the account is read: group by the
        // account and container names instead.
        Plane::Blob => {
            let field = |k: &str| req.inputs.get(k).and_then(Value::as_str);
            format!("{}/{}", field("account")?, field(&list.group_by)?)
        }
        Plane::Arm => list_path(ctx, &list.path, &req.inputs).ok()?,
    };
    Some(format!(
        "{} {}",
        req.resource_type,
        key.to_ascii_lowercase()
    ))
}

/// Reads `reqs` (members of one [`group`]) with one listing: one answer per request, in order,
/// `Ok(None)` for a resource the listing does not hold.
///
/// # Errors
///
/// The listing's own failure (a collection whose parent is gone is an empty listing, not an error).
pub(crate) async fn read(
    ctx: &Ctx,
    reqs: &[ResourceRequest],
) -> Result<Vec<Result<Option<Observed>>>> {
    let Some(first) = reqs.first() else {
        return Ok(Vec::new());
    };
    let t = first.resource_type;
    let spec = ctx.spec(t)?;
    let Some(list) = spec.arm.list.as_ref() else {
        return Err(crate::provider::error::ProviderError::invalid(format!(
            "internal error: `{t}` has no listing"
        )));
    };
    if spec.arm.plane == Plane::Blob {
        return blob::read_listed(ctx, reqs).await;
    }
    let path = list_path(ctx, &list.path, &first.inputs)?;
    let (path, query) = path.split_once('?').unwrap_or((path.as_str(), ""));
    let extra: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Each request's id, lower-case (ARM ids are case-insensitive), to match the pages' items by.
    let mut slots: Vec<Slot> = Vec::with_capacity(reqs.len());
    let mut wanted: HashMap<String, Vec<usize>> = HashMap::with_capacity(reqs.len());
    for (i, req) in reqs.iter().enumerate() {
        let id = match &req.cloud_id {
            Some(id) if !id.is_empty() => Ok(id.clone()),
            _ if t == ResourceType::RoleAssignment => {
                role_assignment::parts(&req.inputs).map(|p| p.path)
            }
            _ => ctx.path(t, &req.inputs),
        };
        match id {
            Ok(id) => {
                wanted.entry(id.to_ascii_lowercase()).or_default().push(i);
                slots.push(Slot::Unlisted);
            }
            Err(e) => slots.push(Slot::NoId(e)),
        }
    }
    // Page by page: each page's items are matched as it arrives and only what a request needs is
    // kept (its observed result; for an incomplete entry, that it was listed), the rest of the page
    // dropped. A listing of thousands of accounts held whole was most of a refresh's peak memory.
    let mut pages = ctx.arm.pages(path, &ctx.api_version(t)?, &extra)?;
    let mut listed_any = false;
    let mut endpoints = Vec::new();
    loop {
        let items = match pages.next().await {
            Ok(Some(items)) => items,
            Ok(None) => break,
            // The parent (an account, an endpoint) is gone: so are its children, whatever the
            // pages before said.
            Err(e) if e.is_not_found() => {
                for slot in &mut slots {
                    if !matches!(slot, Slot::NoId(_)) {
                        *slot = Slot::Unlisted;
                    }
                }
                endpoints.clear();
                listed_any = false;
                break;
            }
            Err(e) => return Err(e),
        };
        if t == ResourceType::StorageAccount {
            endpoints.extend(storage_account::listed_endpoints(ctx, &items));
        }
        for mut item in items {
            let Some(id) = item.get("id").and_then(Value::as_str) else {
                continue;
            };
            listed_any = true;
            let Some(matched) = wanted.get(&id.to_ascii_lowercase()) else {
                continue;
            };
            for (n, &i) in matched.iter().enumerate() {
                slots[i] = if !list.complete {
                    Slot::Get
                } else if t == ResourceType::OnlineDeployment {
                    // Observed once the endpoint's traffic is read, after the listing (moved for
                    // the last request of this id, copied for any before it).
                    Slot::Body(if n + 1 == matched.len() {
                        item.take()
                    } else {
                        item.clone()
                    })
                } else {
                    Slot::Read(observe(ctx, &reqs[i], &item))
                };
            }
        }
    }
    if t == ResourceType::StorageAccount {
        storage_account::remember_listed(ctx, endpoints).await;
    }
    // A deployment's share of traffic is its endpoint's: one read of the endpoint for the listing.
    let traffic = if t == ResourceType::OnlineDeployment && listed_any {
        Some(online_deployment::listed_traffic(ctx, &first.inputs).await?)
    } else {
        None
    };
    let mut out = Vec::with_capacity(reqs.len());
    for (req, slot) in reqs.iter().zip(slots) {
        out.push(match slot {
            Slot::NoId(e) => Err(e),
            Slot::Unlisted => Ok(None),
            Slot::Get => generic_read(ctx, req).await,
            Slot::Read(observed) => observed.map(Some),
            Slot::Body(body) => match &traffic {
                Some(traffic) => online_deployment::observe_listed(ctx, req, &body, traffic)
                    .await
                    .map(Some),
                None => observe(ctx, req, &body).map(Some),
            },
        });
    }
    Ok(out)
}

/// What a listing keeps for one request while its pages are read.
enum Slot {
    /// Its id could not be made from its inputs.
    NoId(crate::provider::error::ProviderError),
    /// Not (yet) in the listing: gone, once every page is read.
    Unlisted,
    /// Listed, but the entry is incomplete: read with a GET after the listing.
    Get,
    /// Listed and observed from its entry.
    Read(Result<Observed>),
    /// Listed; observed after the listing with what the whole listing needs (a deployment's
    /// traffic, one read of its endpoint).
    Body(Value),
}

/// A listed body as the type's observer maps it (the same as after a GET).
fn observe(ctx: &Ctx, req: &ResourceRequest, body: &Value) -> Result<Observed> {
    match req.resource_type {
        ResourceType::RoleAssignment => role_assignment::observe(ctx, req, body),
        t => Ok(spec_observe(ctx, ctx.spec(t)?, &req.inputs, body)),
    }
}

/// Fills a listing's path template. A leading `{scope}` is an ARM id (it holds `/`): it must start
/// with `/` and hold no `?` or `#`; the rest fills as resource paths do. A `?query` part stays as
/// written (`$filter=atScope()`).
fn list_path(ctx: &Ctx, template: &str, inputs: &serde_json::Map<String, Value>) -> Result<String> {
    let (template, query) = match template.split_once('?') {
        Some((t, q)) => (t, Some(q)),
        None => (template, None),
    };
    let path = match template.strip_prefix("{scope}") {
        Some(rest) => {
            let scope = inputs
                .get("scope")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim_end_matches('/');
            if !scope.starts_with('/') || scope.contains(['?', '#']) {
                return Err(crate::provider::error::ProviderError::invalid(format!(
                    "scope {scope:?} must be an ARM id starting with /"
                )));
            }
            format!("{scope}{}", ctx.fill(rest, inputs)?)
        }
        None => ctx.fill(template, inputs)?,
    };
    Ok(match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::pipeline::fake::{FakeClock, FakeTransport, reply};
    use crate::provider::resources::common::tests::{azure_config, ctx_with};
    use serde_json::json;
    use std::sync::Arc;

    fn deployment(name: &str) -> ResourceRequest {
        let inputs = json!({"name": name, "endpoint": "ep", "instance_type": "Standard_DS3_v2"});
        ResourceRequest::new(
            ResourceType::OnlineDeployment,
            name,
            serde_json::from_value(inputs).unwrap(),
        )
    }

    #[tokio::test]
    async fn deployments_of_an_endpoint_are_read_from_its_paged_listing_with_one_traffic_read() {
        let base = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/onlineEndpoints/ep";
        let body = |name: &str| {
            json!({"id": format!("{base}/deployments/{name}"), "name": name, "location": "eastus",
                   "sku": {"name": "Default", "capacity": 1},
                   "properties": {"instanceType": "Standard_DS3_v2", "provisioningState": "Succeeded"}})
        };
        let next = format!(
            "https://management.azure.com{base}/deployments?api-version=2025-12-01&$skip=1"
        );
        let t = FakeTransport::new(vec![
            reply(
                200,
                &[],
                &json!({"value": [body("blue")], "nextLink": next}).to_string(),
            ),
            reply(200, &[], &json!({"value": [body("other")]}).to_string()),
            reply(
                200,
                &[],
                &json!({"name": "ep", "properties": {"traffic": {"blue": 100}}}).to_string(),
            ),
        ]);
        let ctx = ctx_with(azure_config(), &t, &Arc::new(FakeClock::default()));
        let reqs = [deployment("blue"), deployment("green")];
        assert_eq!(group(&ctx, &reqs[0]), group(&ctx, &reqs[1]));
        let answers = read(&ctx, &reqs).await.unwrap();
        let blue = answers[0]
            .as_ref()
            .unwrap()
            .as_ref()
            .expect("blue is listed");
        assert_eq!(blue.inputs["traffic"], 100);
        assert!(answers[1].as_ref().unwrap().is_none(), "green is gone");
        // Two pages and one read of the endpoint's traffic: no GET per deployment.
        assert_eq!(
            sent_paths(&t),
            [
                format!("{base}/deployments"),
                format!("{base}/deployments"),
                base.to_owned()
            ]
        );
    }

    #[tokio::test]
    async fn role_assignments_at_a_scope_are_read_from_one_filtered_listing() {
        let scope =
            "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct";
        let assignment = |principal: &str| {
            let inputs = json!({"principal_id": principal, "role": "Storage Blob Data Reader", "scope": scope});
            ResourceRequest::new(
                ResourceType::RoleAssignment,
                principal,
                serde_json::from_value(inputs).unwrap(),
            )
        };
        let reqs = [assignment("p1"), assignment("p2")];
        let reader = "/subscriptions/sub/providers/Microsoft.Authorization/roleDefinitions/2a2b9908-6ea1-4ae2-8e65-a410df84e7d1";
        let p1 = role_assignment::parts(&reqs[0].inputs).unwrap().path;
        let listed = json!({"value": [
            {"id": p1, "name": "x", "properties": {"roleDefinitionId": reader, "principalId": "p1", "scope": scope}},
            // Inherited from the subscription: atScope() lists it too; it is nobody's here.
            {"id": "/subscriptions/sub/providers/Microsoft.Authorization/roleAssignments/y", "name": "y",
             "properties": {"roleDefinitionId": reader, "principalId": "p2", "scope": "/subscriptions/sub"}}
        ]});
        let t = FakeTransport::new(vec![reply(200, &[], &listed.to_string())]);
        let ctx = ctx_with(azure_config(), &t, &Arc::new(FakeClock::default()));
        assert_eq!(group(&ctx, &reqs[0]), group(&ctx, &reqs[1]));
        let answers = read(&ctx, &reqs).await.unwrap();
        let found = answers[0].as_ref().unwrap().as_ref().expect("p1 is listed");
        assert_eq!(found.inputs["role"], "Storage Blob Data Reader");
        assert!(
            answers[1].as_ref().unwrap().is_none(),
            "p2 has no assignment here"
        );
        let sent = t.requests();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].url.path(),
            format!("{scope}/providers/Microsoft.Authorization/roleAssignments")
        );
        assert!(
            sent[0]
                .url
                .query_pairs()
                .any(|(k, v)| k == "$filter" && v == "atScope()"),
            "{}",
            sent[0].url
        );
    }

    /// The paths of the requests `t` was sent, in order.
    fn sent_paths(t: &FakeTransport) -> Vec<String> {
        t.requests()
            .iter()
            .map(|r| r.url.path().to_owned())
            .collect()
    }

    const GROUP: &str = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Storage";

    fn named(t: ResourceType, inputs: Value) -> ResourceRequest {
        let name = inputs["name"].as_str().unwrap_or_default().to_owned();
        ResourceRequest::new(t, name, serde_json::from_value(inputs).unwrap())
    }

    fn account(name: &str) -> Value {
        json!({"id": format!("{GROUP}/storageAccounts/{name}"), "name": name, "location": "eastus",
               "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
               "properties": {"supportsHttpsTrafficOnly": true,
                              "primaryEndpoints": {"blob": format!("https://{name}.blob.test/")}}})
    }

    fn page(items: &[Value], next: Option<&str>) -> crate::provider::pipeline::fake::Reply {
        let mut body = json!({ "value": items });
        if let Some(next) = next {
            body["nextLink"] = json!(format!("https://management.azure.com{next}"));
        }
        reply(200, &[], &body.to_string())
    }

    #[tokio::test]
    async fn a_paged_listing_is_matched_page_by_page() {
        // A listing is matched as each page arrives (its pages are no longer held whole): what a
        // request needs is found on any page, what no request names is only remembered as an
        // account endpoint, and a request listed on no page is gone.
        let next = format!("{GROUP}/storageAccounts?api-version=2025-01-01&$skiptoken=2");
        let t = FakeTransport::new(vec![
            page(&[account("a"), account("stranger")], Some(&next)),
            page(&[account("b")], None),
        ]);
        let ctx = ctx_with(azure_config(), &t, &Arc::new(FakeClock::default()));
        let reqs: Vec<ResourceRequest> = ["a", "b", "gone"]
            .iter()
            .map(|n| {
                named(
                    ResourceType::StorageAccount,
                    json!({"name": n, "location": "eastus"}),
                )
            })
            .collect();
        assert_eq!(group(&ctx, &reqs[0]), group(&ctx, &reqs[2]));
        let answers = read(&ctx, &reqs).await.unwrap();
        for (answer, name) in answers.iter().zip(["a", "b"]) {
            let found = answer.as_ref().unwrap().as_ref().expect("listed");
            assert_eq!(found.id, format!("{GROUP}/storageAccounts/{name}"));
            assert_eq!(found.inputs["name"], name);
            assert_eq!(
                found.outputs["primary_blob_endpoint"],
                format!("https://{name}.blob.test/")
            );
        }
        assert!(answers[2].as_ref().unwrap().is_none(), "on no page: gone");
        assert_eq!(t.requests().len(), 2, "one GET per page, none per account");
        // Every listed account's blob endpoint is kept for the blob reads that follow.
        let endpoints = ctx.account_endpoints.lock().await;
        let mut names: Vec<&str> = endpoints.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "b", "stranger"]);
    }

    #[tokio::test]
    async fn a_listing_whose_parent_goes_between_pages_lists_nothing() {
        // As when the whole listing was read first: a parent gone (404) on a later page means its
        // children are gone, even those an earlier page listed, and nothing of it is remembered.
        let next = format!("{GROUP}/storageAccounts?api-version=2025-01-01&$skiptoken=2");
        let t = FakeTransport::new(vec![
            page(&[account("a")], Some(&next)),
            reply(
                404,
                &[],
                r#"{"error":{"code":"ResourceGroupNotFound","message":"gone"}}"#,
            ),
        ]);
        let ctx = ctx_with(azure_config(), &t, &Arc::new(FakeClock::default()));
        let reqs = [named(
            ResourceType::StorageAccount,
            json!({"name": "a", "location": "eastus"}),
        )];
        let answers = read(&ctx, &reqs).await.unwrap();
        assert!(answers[0].as_ref().unwrap().is_none());
        assert!(ctx.account_endpoints.lock().await.is_empty());
    }

    #[tokio::test]
    async fn an_incomplete_listing_reads_again_only_what_it_matched() {
        // A type whose listed entries are incomplete (`complete: false`) is read again by GET,
        // once per request a page matched: not for what the pages hold that no request names, and
        // not for a request no page holds.
        let mut registry = crate::provider::resources::common::tests::registry();
        let spec = registry.get_mut("blob_container").unwrap();
        spec.arm.list.as_mut().unwrap().complete = false;
        let base = format!("{GROUP}/storageAccounts/acct/blobServices/default/containers");
        let container = |name: &str| {
            json!({"id": format!("{base}/{name}"), "name": name,
                   "properties": {"publicAccess": "None"}})
        };
        let next = format!("{base}?api-version=2025-01-01&$skiptoken=2");
        let t = FakeTransport::new(vec![
            page(&[container("c1"), container("other")], Some(&next)),
            page(&[container("c2")], None),
            reply(200, &[], &container("c1").to_string()),
            reply(200, &[], &container("c2").to_string()),
        ]);
        let config = azure_config();
        let p = crate::provider::pipeline::fake::pipeline(
            &t,
            &Arc::new(FakeClock::default()),
            config.retry.clone(),
        );
        let arm =
            crate::provider::arm::Arm::new(p, config.arm_endpoint.clone(), config.arm_scope());
        let ctx = Ctx::new(config, arm, Arc::new(registry));
        let reqs: Vec<ResourceRequest> = ["c1", "c2", "c3"]
            .iter()
            .map(|n| {
                named(
                    ResourceType::BlobContainer,
                    json!({"name": n, "account": "acct"}),
                )
            })
            .collect();
        let answers = read(&ctx, &reqs).await.unwrap();
        assert!(answers[0].as_ref().unwrap().is_some());
        assert!(answers[1].as_ref().unwrap().is_some());
        assert!(answers[2].as_ref().unwrap().is_none());
        assert_eq!(
            sent_paths(&t),
            [
                base.clone(),
                base.clone(),
                format!("{base}/c1"),
                format!("{base}/c2")
            ]
        );
    }

    #[test]
    fn resources_group_by_their_collection() {
        let t = FakeTransport::new(vec![]);
        let ctx = ctx_with(azure_config(), &t, &Arc::new(FakeClock::default()));
        let blob = |account: &str, container: &str| {
            let inputs = json!({"account": account, "container": container, "name": "b"});
            ResourceRequest::new(
                ResourceType::Blob,
                "b",
                serde_json::from_value(inputs).unwrap(),
            )
        };
        assert_eq!(group(&ctx, &blob("a", "c")), group(&ctx, &blob("A", "c")));
        assert_ne!(group(&ctx, &blob("a", "c")), group(&ctx, &blob("a", "d")));
        // A type without a listing is read alone.
        let identity = ResourceRequest::new(
            ResourceType::UserAssignedIdentity,
            "i",
            serde_json::from_value(json!({"name": "i"})).unwrap(),
        );
        assert_eq!(group(&ctx, &identity), None);
    }
}
