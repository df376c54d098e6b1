//! ARM routing: turns a request path into an [`ArmRoute`] once per request, so handlers take typed
//! inputs (an endpoint's id and name, a container's account, ...) instead of picking path segments by
//! position. Literal segments match case-insensitively, as ARM's do; ids keep the request's casing,
//! because ARM answers with the id as the client spelled it.
//!
//! Parsing looks at the path only: it must never read the store, check existence or decide on the
//! method. Paths no handler owns parse to [`ArmRoute::Unimplemented`], carrying the scope whose
//! existence is still checked first, so the error order stays that of Azure (unknown subscription,
//! then missing resource group, then "not implemented").

/// A resource group: `/subscriptions/{sub}/resourceGroups/{name}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RgRef {
    pub(crate) sub: String,
    /// The id with the request's casing.
    pub(crate) id: String,
    pub(crate) name: String,
}

/// A resource below another one (endpoint below workspace, deployment below endpoint, ...).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChildRef<P> {
    pub(crate) parent: P,
    pub(crate) id: String,
    pub(crate) name: String,
}

impl<P> ChildRef<P> {
    /// Lowercase id: the store's key.
    pub(crate) fn key(&self) -> String {
        self.id.to_ascii_lowercase()
    }
}

/// A resource directly under a provider in a resource group (storage account, identity, workspace);
/// its parent is the resource group.
pub(crate) type ResRef = ChildRef<RgRef>;
pub(crate) type EndpointRef = ChildRef<ResRef>;
pub(crate) type DeploymentRef = ChildRef<EndpointRef>;

/// The asset kinds of a workspace, by their path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AssetKind {
    Codes,
    Models,
    Environments,
}

impl AssetKind {
    /// The path segment, lowercase (`codes`, `models`, `environments`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AssetKind::Codes => "codes",
            AssetKind::Models => "models",
            AssetKind::Environments => "environments",
        }
    }

    fn parse(seg: &str) -> Option<AssetKind> {
        [AssetKind::Codes, AssetKind::Models, AssetKind::Environments]
            .into_iter()
            .find(|k| seg.eq_ignore_ascii_case(k.as_str()))
    }
}

/// The scope whose existence is checked before a path is answered "not implemented".
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scope {
    /// Nothing to check (tenant-level paths, role paths at any scope).
    None,
    Subscription(String),
    ResourceGroup(RgRef),
    /// A storage account that must exist (paths under `blobServices/default`).
    StorageAccount(ResRef),
    Workspace(ResRef),
}

/// Every ARM path the local cloud knows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ArmRoute {
    /// `/subscriptions`
    Subscriptions,
    /// `/subscriptions/{sub}`
    Subscription {
        sub: String,
    },
    /// `/subscriptions/{sub}/resourceGroups`
    ResourceGroups {
        sub: String,
    },
    /// `/subscriptions/{sub}/resourceGroups/{rg}`
    ResourceGroup(RgRef),
    /// `/subscriptions/{sub}/providers/{namespace}`: "Providers - Get"
    Provider {
        sub: String,
        namespace: String,
    },
    /// `.../providers/Microsoft.Storage/checkNameAvailability`
    CheckNameAvailability {
        sub: String,
    },
    /// `.../providers/Microsoft.Storage/locations/{location}/asyncoperations/{op}` (pattern A)
    StorageOperation {
        sub: String,
        location: String,
        op: String,
    },
    /// `.../providers/Microsoft.MachineLearningServices/locations/{location}/{kind}/{op}`
    /// (patterns B and C; `kind` is `mfeOperationsStatus` or `mfeOperationResults`)
    MlOperation {
        sub: String,
        location: String,
        kind: String,
        op: String,
    },
    /// `{rg}/providers/Microsoft.Storage/storageAccounts`
    StorageAccounts {
        rg: RgRef,
    },
    StorageAccount(ResRef),
    /// `{account}/listKeys`
    StorageAccountKeys(ResRef),
    /// `{account}/blobServices/default/containers`
    Containers(ResRef),
    /// `{account}/blobServices/default/containers/{name}`
    Container(ChildRef<ResRef>),
    /// `{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities`
    Identities {
        rg: RgRef,
    },
    Identity(ResRef),
    /// `{rg}/providers/Microsoft.MachineLearningServices/workspaces/{name}`
    Workspace(ResRef),
    Datastores(ResRef),
    Datastore(ChildRef<ResRef>),
    /// `{datastore}/listSecrets`
    DatastoreSecrets(ChildRef<ResRef>),
    /// `{workspace}/{codes|models|environments}`
    AssetContainers {
        ws: ResRef,
        kind: AssetKind,
    },
    /// `{workspace}/{kind}/{name}`
    AssetContainer {
        kind: AssetKind,
        asset: ChildRef<ResRef>,
    },
    /// `{workspace}/{kind}/{name}/versions`
    AssetVersions {
        kind: AssetKind,
        asset: ChildRef<ResRef>,
    },
    /// `{workspace}/{kind}/{name}/versions/{version}`
    AssetVersion {
        kind: AssetKind,
        version: ChildRef<ChildRef<ResRef>>,
    },
    /// `{workspace}/{kind}/{name}/versions/{version}/startPendingUpload`
    AssetPendingUpload {
        ws: ResRef,
    },
    OnlineEndpoints(ResRef),
    OnlineEndpoint(EndpointRef),
    /// `{endpoint}/listKeys`
    EndpointKeys(EndpointRef),
    /// `{endpoint}/token`
    EndpointToken(EndpointRef),
    Deployments(EndpointRef),
    Deployment(DeploymentRef),
    /// `{deployment}/getLogs`
    DeploymentLogs(DeploymentRef),
    /// `{scope}/providers/Microsoft.Authorization/roleDefinitions` (`scope` may be empty)
    RoleDefinitions {
        scope: String,
    },
    RoleDefinition {
        scope: String,
        guid: String,
    },
    RoleAssignments {
        scope: String,
    },
    RoleAssignment {
        scope: String,
        id: String,
        name: String,
    },
    /// `{scope}/providers/Microsoft.Authorization/permissions`: "Permissions - List For Resource
    /// Group / For Resource", the caller's own permissions at `scope`
    Permissions {
        scope: String,
    },
    /// A path no handler owns; `scope` is checked first.
    Unimplemented {
        scope: Scope,
    },
}

/// Case-insensitive match of `segs` against `pat`, where `*` matches any segment.
fn is(segs: &[String], pat: &[&str]) -> bool {
    segs.len() == pat.len()
        && segs
            .iter()
            .zip(pat)
            .all(|(s, p)| *p == "*" || s.eq_ignore_ascii_case(p))
}

/// True when `segs` starts with `pat` (same rules as [`is`]).
fn starts(segs: &[String], pat: &[&str]) -> bool {
    segs.len() >= pat.len() && is(&segs[..pat.len()], pat)
}

/// The resource named by segment `n - 1`, below `parent`, with the id of the first `n` segments.
fn child<P>(s: &[String], parent: P, n: usize) -> ChildRef<P> {
    ChildRef {
        parent,
        id: id(s, n),
        name: s[n - 1].clone(),
    }
}

/// `/`-joined id of the first `n` segments, with the request's casing.
fn id(segs: &[String], n: usize) -> String {
    format!("/{}", segs[..n.min(segs.len())].join("/"))
}

impl ArmRoute {
    /// The resource provider namespace and resource type whose api-versions this route is served by
    /// (`specs/api_versions.yaml`); `None` for paths no handler owns.
    pub(crate) fn resource_type(&self) -> Option<(&'static str, &'static str)> {
        use ArmRoute as R;
        const ML: &str = "Microsoft.MachineLearningServices";
        const AUTHZ: &str = "Microsoft.Authorization";
        Some(match self {
            R::Subscriptions | R::Subscription { .. } => ("Microsoft.Resources", "subscriptions"),
            R::ResourceGroups { .. } | R::ResourceGroup(_) => {
                ("Microsoft.Resources", "resourceGroups")
            }
            R::Provider { .. } => ("Microsoft.Resources", "providers"),
            R::CheckNameAvailability { .. } => ("Microsoft.Storage", "checkNameAvailability"),
            R::StorageOperation { .. } => ("Microsoft.Storage", "locations/asyncoperations"),
            R::StorageAccounts { .. } | R::StorageAccount(_) | R::StorageAccountKeys(_) => {
                ("Microsoft.Storage", "storageAccounts")
            }
            R::Containers(_) | R::Container(_) => (
                "Microsoft.Storage",
                "storageAccounts/blobServices/containers",
            ),
            R::Identities { .. } | R::Identity(_) => {
                ("Microsoft.ManagedIdentity", "userAssignedIdentities")
            }
            R::MlOperation { kind, .. } => {
                if kind.eq_ignore_ascii_case("mfeOperationResults") {
                    (ML, "locations/mfeOperationResults")
                } else {
                    (ML, "locations/mfeOperationsStatus")
                }
            }
            R::Workspace(_) => (ML, "workspaces"),
            R::Datastores(_) | R::Datastore(_) | R::DatastoreSecrets(_) => {
                (ML, "workspaces/datastores")
            }
            R::AssetContainers { kind, .. } | R::AssetContainer { kind, .. } => match kind {
                AssetKind::Codes => (ML, "workspaces/codes"),
                AssetKind::Models => (ML, "workspaces/models"),
                AssetKind::Environments => (ML, "workspaces/environments"),
            },
            R::AssetVersions { kind, .. } | R::AssetVersion { kind, .. } => match kind {
                AssetKind::Codes => (ML, "workspaces/codes/versions"),
                AssetKind::Models => (ML, "workspaces/models/versions"),
                AssetKind::Environments => (ML, "workspaces/environments/versions"),
            },
            R::AssetPendingUpload { .. } => (ML, "workspaces/codes/versions"),
            R::OnlineEndpoints(_)
            | R::OnlineEndpoint(_)
            | R::EndpointKeys(_)
            | R::EndpointToken(_) => (ML, "workspaces/onlineEndpoints"),
            R::Deployments(_) | R::Deployment(_) | R::DeploymentLogs(_) => {
                (ML, "workspaces/onlineEndpoints/deployments")
            }
            R::RoleDefinitions { .. } | R::RoleDefinition { .. } => (AUTHZ, "roleDefinitions"),
            R::RoleAssignments { .. } | R::RoleAssignment { .. } => (AUTHZ, "roleAssignments"),
            R::Permissions { .. } => (AUTHZ, "permissions"),
            R::Unimplemented { .. } => return None,
        })
    }

    /// The deepest scope that must exist before this route is answered: its subscription, then its
    /// resource group, then the workspace or (for containers) the storage account.
    pub(crate) fn scope(&self) -> Scope {
        use ArmRoute as R;
        match self {
            R::Subscriptions
            | R::Permissions { .. }
            | R::RoleDefinitions { .. }
            | R::RoleDefinition { .. }
            | R::RoleAssignments { .. }
            | R::RoleAssignment { .. } => Scope::None,
            R::Subscription { sub }
            | R::Provider { sub, .. }
            | R::ResourceGroups { sub }
            | R::CheckNameAvailability { sub }
            | R::StorageOperation { sub, .. }
            | R::MlOperation { sub, .. } => Scope::Subscription(sub.clone()),
            // A resource group's own route checks the subscription only: GET answers its own 404.
            R::ResourceGroup(rg) => Scope::Subscription(rg.sub.clone()),
            R::StorageAccounts { rg } | R::Identities { rg } => Scope::ResourceGroup(rg.clone()),
            R::StorageAccount(a) | R::StorageAccountKeys(a) | R::Identity(a) => {
                Scope::ResourceGroup(a.parent.clone())
            }
            R::Containers(a) => Scope::StorageAccount(a.clone()),
            R::Container(c) => Scope::StorageAccount(c.parent.clone()),
            R::Workspace(ws)
            | R::Datastores(ws)
            | R::AssetContainers { ws, .. }
            | R::AssetPendingUpload { ws }
            | R::OnlineEndpoints(ws) => Scope::Workspace(ws.clone()),
            R::Datastore(c)
            | R::DatastoreSecrets(c)
            | R::AssetContainer { asset: c, .. }
            | R::AssetVersions { asset: c, .. } => Scope::Workspace(c.parent.clone()),
            R::AssetVersion { version, .. } => Scope::Workspace(version.parent.parent.clone()),
            R::OnlineEndpoint(e) | R::EndpointKeys(e) | R::EndpointToken(e) | R::Deployments(e) => {
                Scope::Workspace(e.parent.clone())
            }
            R::Deployment(d) | R::DeploymentLogs(d) => Scope::Workspace(d.parent.parent.clone()),
            R::Unimplemented { scope } => scope.clone(),
        }
    }

    /// Routes percent-decoded path segments.
    pub(crate) fn parse(s: &[String]) -> ArmRoute {
        let unimplemented = |scope| ArmRoute::Unimplemented { scope };
        // Role assignments and definitions at any scope (the last `providers/Microsoft.Authorization`).
        if let Some(pos) = s
            .windows(2)
            .rposition(|w| is(w, &["providers", "Microsoft.Authorization"]))
        {
            let scope = if pos == 0 { String::new() } else { id(s, pos) };
            let rest = &s[pos + 2..];
            return match rest {
                [] if pos == 2 && s[0].eq_ignore_ascii_case("subscriptions") => {
                    ArmRoute::Provider {
                        sub: s[1].clone(),
                        namespace: s[3].clone(),
                    }
                }
                [kind] if kind.eq_ignore_ascii_case("permissions") && pos > 0 => {
                    ArmRoute::Permissions { scope }
                }
                [kind] if kind.eq_ignore_ascii_case("roleDefinitions") => {
                    ArmRoute::RoleDefinitions { scope }
                }
                [kind, guid] if kind.eq_ignore_ascii_case("roleDefinitions") => {
                    ArmRoute::RoleDefinition {
                        scope,
                        guid: guid.clone(),
                    }
                }
                [kind] if kind.eq_ignore_ascii_case("roleAssignments") => {
                    ArmRoute::RoleAssignments { scope }
                }
                [kind, name] if kind.eq_ignore_ascii_case("roleAssignments") => {
                    ArmRoute::RoleAssignment {
                        scope,
                        id: id(s, s.len()),
                        name: name.clone(),
                    }
                }
                _ => unimplemented(Scope::None),
            };
        }
        if is(s, &["subscriptions"]) {
            return ArmRoute::Subscriptions;
        }
        if s.len() < 2 || !s[0].eq_ignore_ascii_case("subscriptions") {
            return unimplemented(Scope::None);
        }
        let sub = s[1].clone();
        if s.len() == 2 {
            return ArmRoute::Subscription { sub };
        }
        if is(s, &["subscriptions", "*", "providers", "*"]) {
            return ArmRoute::Provider {
                sub,
                namespace: s[3].clone(),
            };
        }
        if starts(s, &["subscriptions", "*", "providers", "Microsoft.Storage"]) {
            if is(
                s,
                &[
                    "subscriptions",
                    "*",
                    "providers",
                    "Microsoft.Storage",
                    "checkNameAvailability",
                ],
            ) {
                return ArmRoute::CheckNameAvailability { sub };
            }
            let op = [
                "subscriptions",
                "*",
                "providers",
                "Microsoft.Storage",
                "locations",
                "*",
                "asyncoperations",
                "*",
            ];
            if is(s, &op) {
                return ArmRoute::StorageOperation {
                    sub,
                    location: s[5].clone(),
                    op: s[7].clone(),
                };
            }
            return unimplemented(Scope::Subscription(sub));
        }
        let ml_locations = [
            "subscriptions",
            "*",
            "providers",
            "Microsoft.MachineLearningServices",
            "locations",
            "*",
        ];
        if starts(s, &ml_locations) {
            if s.len() == 8 {
                return ArmRoute::MlOperation {
                    sub,
                    location: s[5].clone(),
                    kind: s[6].clone(),
                    op: s[7].clone(),
                };
            }
            return unimplemented(Scope::Subscription(sub));
        }
        if is(s, &["subscriptions", "*", "resourceGroups"]) {
            return ArmRoute::ResourceGroups { sub };
        }
        if !starts(s, &["subscriptions", "*", "resourceGroups", "*"]) {
            return unimplemented(Scope::Subscription(sub));
        }
        let rg = RgRef {
            sub,
            id: id(s, 4),
            name: s[3].clone(),
        };
        if s.len() == 4 {
            return ArmRoute::ResourceGroup(rg);
        }
        let res = |rg: &RgRef| ResRef {
            parent: rg.clone(),
            id: id(s, 8),
            name: s[7].clone(),
        };
        let rg_prefix = ["subscriptions", "*", "resourceGroups", "*", "providers"];
        let under = |ns: &str, kind: &str| {
            let mut p = rg_prefix.to_vec();
            p.extend([ns, kind]);
            starts(s, &p)
        };
        if under("Microsoft.Storage", "storageAccounts") {
            return Self::storage(s, res, rg);
        }
        if starts(
            s,
            &[
                &rg_prefix[..],
                &["Microsoft.MachineLearningServices", "workspaces", "*"],
            ]
            .concat(),
        ) {
            return Self::ml(s, res(&rg));
        }
        if under("Microsoft.ManagedIdentity", "userAssignedIdentities") {
            return match s.len() {
                7 => ArmRoute::Identities { rg },
                8 => ArmRoute::Identity(res(&rg)),
                _ => unimplemented(Scope::ResourceGroup(rg)),
            };
        }
        unimplemented(Scope::ResourceGroup(rg))
    }

    /// Paths under `{rg}/providers/Microsoft.Storage/storageAccounts`.
    fn storage(s: &[String], res: impl Fn(&RgRef) -> ResRef, rg: RgRef) -> ArmRoute {
        if s.len() == 7 {
            return ArmRoute::StorageAccounts { rg };
        }
        let account = res(&rg);
        match &s[8..] {
            [] => ArmRoute::StorageAccount(account),
            [k] if k.eq_ignore_ascii_case("listKeys") => ArmRoute::StorageAccountKeys(account),
            [b, d, rest @ ..] if is(&[b.clone(), d.clone()], &["blobServices", "default"]) => {
                match rest {
                    [c] if c.eq_ignore_ascii_case("containers") => ArmRoute::Containers(account),
                    [c, name] if c.eq_ignore_ascii_case("containers") => {
                        ArmRoute::Container(ChildRef {
                            parent: account,
                            id: id(s, 12),
                            name: name.clone(),
                        })
                    }
                    _ => ArmRoute::Unimplemented {
                        scope: Scope::StorageAccount(account),
                    },
                }
            }
            _ => ArmRoute::Unimplemented {
                scope: Scope::ResourceGroup(account.parent),
            },
        }
    }

    /// Paths under `{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}`.
    fn ml(s: &[String], ws: ResRef) -> ArmRoute {
        let lit = |i: usize, l: &str| s.get(i).is_some_and(|x| x.eq_ignore_ascii_case(l));
        let unimplemented = |ws: ResRef| ArmRoute::Unimplemented {
            scope: Scope::Workspace(ws),
        };
        if s.len() == 8 {
            return ArmRoute::Workspace(ws);
        }
        if lit(8, "datastores") {
            return match s.len() {
                9 => ArmRoute::Datastores(ws),
                10 => ArmRoute::Datastore(child(s, ws, 10)),
                11 if lit(10, "listSecrets") => ArmRoute::DatastoreSecrets(child(s, ws, 10)),
                _ => unimplemented(ws),
            };
        }
        if let Some(kind) = AssetKind::parse(&s[8]) {
            return match s.len() {
                9 => ArmRoute::AssetContainers { ws, kind },
                10 => ArmRoute::AssetContainer {
                    kind,
                    asset: child(s, ws, 10),
                },
                11 if lit(10, "versions") => ArmRoute::AssetVersions {
                    kind,
                    asset: child(s, ws, 10),
                },
                12 if lit(10, "versions") => ArmRoute::AssetVersion {
                    kind,
                    version: child(s, child(s, ws, 10), 12),
                },
                13 if lit(12, "startPendingUpload") => ArmRoute::AssetPendingUpload { ws },
                _ => unimplemented(ws),
            };
        }
        if !lit(8, "onlineEndpoints") {
            return unimplemented(ws);
        }
        if s.len() == 9 {
            return ArmRoute::OnlineEndpoints(ws);
        }
        let endpoint = child(s, ws.clone(), 10);
        match s.len() {
            10 => ArmRoute::OnlineEndpoint(endpoint),
            11 if lit(10, "listKeys") => ArmRoute::EndpointKeys(endpoint),
            11 if lit(10, "token") => ArmRoute::EndpointToken(endpoint),
            11 if lit(10, "deployments") => ArmRoute::Deployments(endpoint),
            12 if lit(10, "deployments") => ArmRoute::Deployment(child(s, endpoint, 12)),
            13 if lit(10, "deployments") && lit(12, "getLogs") => {
                ArmRoute::DeploymentLogs(child(s, endpoint, 12))
            }
            _ => unimplemented(ws),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &str) -> ArmRoute {
        let segs: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        ArmRoute::parse(&segs)
    }

    const RG: &str = "/subscriptions/S/resourceGroups/rg";
    const WS: &str = "/subscriptions/S/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws";

    fn rg() -> RgRef {
        RgRef {
            sub: "S".into(),
            id: RG.into(),
            name: "rg".into(),
        }
    }

    fn res(id: &str, name: &str) -> ResRef {
        ResRef {
            parent: rg(),
            id: id.into(),
            name: name.into(),
        }
    }

    fn ws() -> ResRef {
        res(WS, "ws")
    }

    fn child<P>(parent: P, id: String, name: &str) -> ChildRef<P> {
        ChildRef {
            parent,
            id,
            name: name.into(),
        }
    }

    #[test]
    fn subscription_and_group_routes() {
        use ArmRoute as R;
        assert_eq!(parse("/subscriptions"), R::Subscriptions);
        assert_eq!(
            parse("/SUBSCRIPTIONS/S"),
            R::Subscription { sub: "S".into() }
        );
        assert_eq!(
            parse("/subscriptions/S/resourcegroups"),
            R::ResourceGroups { sub: "S".into() }
        );
        assert_eq!(parse(RG), R::ResourceGroup(rg()));
        // Ids keep the request's casing, literal segments included.
        let R::ResourceGroup(g) = parse("/subscriptions/S/RESOURCEGROUPS/rg") else {
            panic!("not a resource group");
        };
        assert_eq!(g.id, "/subscriptions/S/RESOURCEGROUPS/rg");
        let ids = format!("{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities");
        assert_eq!(parse(&ids), R::Identities { rg: rg() });
        assert_eq!(
            parse(&format!("{ids}/u1")),
            R::Identity(res(&format!("{ids}/u1"), "u1"))
        );
    }

    #[test]
    fn storage_routes() {
        use ArmRoute as R;
        let sp = "/subscriptions/S/providers/Microsoft.Storage";
        assert_eq!(
            parse(&format!("{sp}/checkNameAvailability")),
            R::CheckNameAvailability { sub: "S".into() }
        );
        assert_eq!(
            parse(&format!("{sp}/locations/eastus/asyncoperations/op1")),
            R::StorageOperation {
                sub: "S".into(),
                location: "eastus".into(),
                op: "op1".into()
            }
        );
        let accts = format!("{RG}/providers/Microsoft.Storage/storageAccounts");
        let a_id = format!("{accts}/acct");
        let a = || res(&a_id, "acct");
        assert_eq!(parse(&accts), R::StorageAccounts { rg: rg() });
        assert_eq!(parse(&a_id), R::StorageAccount(a()));
        assert_eq!(
            parse(&format!("{a_id}/listKeys")),
            R::StorageAccountKeys(a())
        );
        let cs = format!("{a_id}/blobServices/default/containers");
        assert_eq!(parse(&cs), R::Containers(a()));
        assert_eq!(
            parse(&format!("{cs}/c1")),
            R::Container(child(a(), format!("{cs}/c1"), "c1"))
        );
    }

    #[test]
    fn ml_routes() {
        use ArmRoute as R;
        assert_eq!(
            parse(
                "/subscriptions/S/providers/Microsoft.MachineLearningServices/locations/eastus/mfeOperationsStatus/op"
            ),
            R::MlOperation {
                sub: "S".into(),
                location: "eastus".into(),
                kind: "mfeOperationsStatus".into(),
                op: "op".into()
            }
        );
        assert_eq!(parse(WS), R::Workspace(ws()));
        assert_eq!(parse(&format!("{WS}/datastores")), R::Datastores(ws()));
        let ds = format!("{WS}/datastores/workspaceblobstore");
        let d = || child(ws(), ds.clone(), "workspaceblobstore");
        assert_eq!(parse(&ds), R::Datastore(d()));
        assert_eq!(
            parse(&format!("{ds}/listSecrets")),
            R::DatastoreSecrets(d())
        );
        assert_eq!(
            parse(&format!("{WS}/Models")),
            R::AssetContainers {
                ws: ws(),
                kind: AssetKind::Models
            }
        );
        let code = format!("{WS}/codes/c");
        let asset = || child(ws(), code.clone(), "c");
        assert_eq!(
            parse(&code),
            R::AssetContainer {
                kind: AssetKind::Codes,
                asset: asset()
            }
        );
        assert_eq!(
            parse(&format!("{code}/versions")),
            R::AssetVersions {
                kind: AssetKind::Codes,
                asset: asset()
            }
        );
        let v = format!("{code}/versions/1");
        assert_eq!(
            parse(&v),
            R::AssetVersion {
                kind: AssetKind::Codes,
                version: child(asset(), v.clone(), "1")
            }
        );
        assert_eq!(
            parse(&format!("{v}/startPendingUpload")),
            R::AssetPendingUpload { ws: ws() }
        );
        assert_eq!(
            parse(&format!("{WS}/onlineEndpoints")),
            R::OnlineEndpoints(ws())
        );
        let e = format!("{WS}/onlineEndpoints/ep");
        let ep = || child(ws(), e.clone(), "ep");
        assert_eq!(parse(&e), R::OnlineEndpoint(ep()));
        assert_eq!(parse(&format!("{e}/listKeys")), R::EndpointKeys(ep()));
        assert_eq!(parse(&format!("{e}/token")), R::EndpointToken(ep()));
        assert_eq!(parse(&format!("{e}/deployments")), R::Deployments(ep()));
        let d = format!("{e}/deployments/blue");
        assert_eq!(parse(&d), R::Deployment(child(ep(), d.clone(), "blue")));
        assert_eq!(
            parse(&format!("{d}/getLogs")),
            R::DeploymentLogs(child(ep(), d.clone(), "blue"))
        );
    }

    #[test]
    fn role_routes_at_any_scope() {
        use ArmRoute as R;
        let auth = "providers/Microsoft.Authorization";
        assert_eq!(
            parse(&format!("/{auth}/roleDefinitions")),
            R::RoleDefinitions {
                scope: String::new()
            }
        );
        assert_eq!(
            parse(&format!("{RG}/{auth}/roleDefinitions/g")),
            R::RoleDefinition {
                scope: RG.into(),
                guid: "g".into()
            }
        );
        assert_eq!(
            parse(&format!("{WS}/{auth}/roleAssignments")),
            R::RoleAssignments { scope: WS.into() }
        );
        assert_eq!(
            parse(&format!("{RG}/{auth}/roleAssignments/n")),
            R::RoleAssignment {
                scope: RG.into(),
                id: format!("{RG}/{auth}/roleAssignments/n"),
                name: "n".into()
            }
        );
    }

    #[test]
    fn provider_and_permission_routes() {
        use ArmRoute as R;
        for ns in [
            "Microsoft.Storage",
            "microsoft.authorization",
            "Microsoft.Compute",
        ] {
            assert_eq!(
                parse(&format!("/subscriptions/S/providers/{ns}")),
                R::Provider {
                    sub: "S".into(),
                    namespace: ns.into()
                }
            );
        }
        let auth = "providers/Microsoft.Authorization";
        assert_eq!(
            parse(&format!("{RG}/{auth}/permissions")),
            R::Permissions { scope: RG.into() }
        );
        let a = format!("{RG}/providers/Microsoft.Storage/storageAccounts/a");
        assert_eq!(
            parse(&format!("{a}/{auth}/permissions")),
            R::Permissions { scope: a.clone() }
        );
        assert_eq!(
            parse(&format!("{a}/blobServices/default/containers/c")).resource_type(),
            Some((
                "Microsoft.Storage",
                "storageAccounts/blobServices/containers"
            ))
        );
        assert_eq!(
            parse(&format!("{WS}/onlineEndpoints/e/deployments/d")).resource_type(),
            Some((
                "Microsoft.MachineLearningServices",
                "workspaces/onlineEndpoints/deployments"
            ))
        );
        assert_eq!(parse("/subscriptions/S/tagNames").resource_type(), None);
    }

    #[test]
    fn unknown_paths_keep_the_scope_to_check_first() {
        let un = |scope| ArmRoute::Unimplemented { scope };
        assert_eq!(parse("/providers/Microsoft.Compute"), un(Scope::None));
        assert_eq!(
            parse("/subscriptions/S/providers/Microsoft.Authorization/policies"),
            un(Scope::None)
        );
        assert_eq!(
            parse("/subscriptions/S/providers/Microsoft.Storage/usages"),
            un(Scope::Subscription("S".into()))
        );
        assert_eq!(
            parse("/subscriptions/S/providers/Microsoft.MachineLearningServices/locations/x"),
            un(Scope::Subscription("S".into()))
        );
        assert_eq!(
            parse("/subscriptions/S/tagNames"),
            un(Scope::Subscription("S".into()))
        );
        assert_eq!(
            parse(&format!(
                "{RG}/providers/Microsoft.Compute/virtualMachines/vm"
            )),
            un(Scope::ResourceGroup(rg()))
        );
        let a_id = format!("{RG}/providers/Microsoft.Storage/storageAccounts/acct");
        assert_eq!(
            parse(&format!("{a_id}/fileServices/default")),
            un(Scope::ResourceGroup(rg()))
        );
        assert_eq!(
            parse(&format!("{a_id}/blobServices/default")),
            un(Scope::StorageAccount(res(&a_id, "acct")))
        );
        assert_eq!(
            parse(&format!("{WS}/computes/c")),
            un(Scope::Workspace(ws()))
        );
        assert_eq!(
            parse(&format!("{WS}/onlineEndpoints/ep/deployments/d/skus")),
            un(Scope::Workspace(ws()))
        );
        assert_eq!(
            parse(&format!("{WS}/codes/c/other/1")),
            un(Scope::Workspace(ws()))
        );
    }

    #[test]
    fn scopes_of_routes() {
        assert_eq!(parse(RG).scope(), Scope::Subscription("S".into()));
        assert_eq!(
            parse(&format!("{RG}/providers/Microsoft.Storage/storageAccounts/a/blobServices/default/containers/c")).scope(),
            Scope::StorageAccount(res(
                &format!("{RG}/providers/Microsoft.Storage/storageAccounts/a"),
                "a"
            ))
        );
        assert_eq!(
            parse(&format!("{WS}/onlineEndpoints/ep/deployments/d")).scope(),
            Scope::Workspace(ws())
        );
    }
}
