//! The request-body rules of the published REST definitions, in one table: for each body the local
//! cloud accepts on a PUT, the properties the definition of that api-version requires and the values
//! its enums allow, each rule with the definition it comes from, and the status and error code the
//! service answers with when a rule is broken.
//!
//! Only what the service itself refuses is here: unknown properties are not refused (ARM and these
//! resource providers ignore them), and enum values compare case-insensitively, as the services parse
//! them. This module only judges a body; it must never change one, read the store or answer anything
//! but the refusal.
use axum::http::StatusCode;
use serde_json::Value;

use super::protocol::{ArmCode, ArmError};

/// The published definitions the rules cite, by short name.
const ML: &str = "Azure/azure-rest-api-specs: specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices/stable/2025-12-01/openapi.json";
const STORAGE: &str = "Azure/azure-rest-api-specs: specification/storage/resource-manager/Microsoft.Storage/stable/2025-01-01/storage.json";
const STORAGE_COMMON: &str = "Azure/azure-rest-api-specs: specification/storage/resource-manager/Microsoft.Storage/stable/2025-01-01/common.json";
const BLOB: &str = "Azure/azure-rest-api-specs: specification/storage/resource-manager/Microsoft.Storage/stable/2025-01-01/blob.json";
const AUTHZ: &str = "Azure/azure-rest-api-specs: specification/authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/authorization-RoleAssignmentsCalls.json";
const ARM_IDENTITY: &str = "Azure/azure-rest-api-specs: specification/common-types/resource-management/v3/managedidentity.json";
const ARM_TYPES: &str =
    "Azure/azure-rest-api-specs: specification/common-types/resource-management/v3/types.json";

/// What one rule asks of the value at its pointer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check {
    /// Present and not null.
    Required,
    /// Present and not null whenever the object holding it is present.
    RequiredInParent,
    /// When present (and not null), one of these strings, compared case-insensitively.
    OneOf(&'static [&'static str]),
}

/// One rule: the JSON pointer it looks at, what it checks, and where the rule is published.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    pub(crate) pointer: &'static str,
    pub(crate) check: Check,
    /// `(file, definition)` of the published definition.
    pub(crate) source: (&'static str, &'static str),
}

const fn rule(pointer: &'static str, check: Check, source: (&'static str, &'static str)) -> Rule {
    Rule {
        pointer,
        check,
        source,
    }
}

use Check::{OneOf, Required, RequiredInParent};

/// The bodies the rules cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    OnlineEndpoint,
    /// An endpoint PATCH (`PartialMinimalTrackedResourceWithIdentity`).
    OnlineEndpointPatch,
    OnlineDeployment,
    /// A deployment PATCH (`PartialMinimalTrackedResourceWithSku`).
    OnlineDeploymentPatch,
    CodeVersion,
    ModelVersion,
    EnvironmentVersion,
    StorageAccount,
    BlobContainer,
    RoleAssignment,
}

/// The refusal a service answers with: Azure ML's front end answers 400 `UserError` for a body it
/// cannot accept (the contract pack, section 6, and recorded `azure-ai-ml` errors such as "(UserError)
/// Model version must be a positive integer."); ARM answers 400 `InvalidRequestContent` for "values
/// that aren't recognized, or required values … missing" (MicrosoftDocs/azure-docs:
/// articles/azure-resource-manager/troubleshooting/common-deployment-errors.md), which the Storage and
/// Authorization providers use for their bodies.
fn refusal(kind: BodyKind) -> (StatusCode, ArmCode) {
    match kind {
        BodyKind::OnlineEndpoint
        | BodyKind::OnlineEndpointPatch
        | BodyKind::OnlineDeployment
        | BodyKind::OnlineDeploymentPatch
        | BodyKind::CodeVersion
        | BodyKind::ModelVersion
        | BodyKind::EnvironmentVersion => (StatusCode::BAD_REQUEST, ArmCode::UserError),
        BodyKind::StorageAccount | BodyKind::BlobContainer | BodyKind::RoleAssignment => {
            (StatusCode::BAD_REQUEST, ArmCode::InvalidRequestContent)
        }
    }
}

const ENABLED_DISABLED: &[&str] = &["Enabled", "Disabled"];
/// `ManagedServiceIdentityType` (common types v3).
const IDENTITY_TYPES: &[&str] = &[
    "None",
    "SystemAssigned",
    "UserAssigned",
    "SystemAssigned,UserAssigned",
];

/// The table: every rule of every body, with its source.
pub(crate) fn rules(kind: BodyKind) -> &'static [Rule] {
    match kind {
        BodyKind::OnlineEndpoint => ONLINE_ENDPOINT,
        BodyKind::OnlineEndpointPatch => ONLINE_ENDPOINT_PATCH,
        BodyKind::OnlineDeployment => ONLINE_DEPLOYMENT,
        BodyKind::OnlineDeploymentPatch => ONLINE_DEPLOYMENT_PATCH,
        BodyKind::CodeVersion => CODE_VERSION,
        BodyKind::ModelVersion => MODEL_VERSION,
        BodyKind::EnvironmentVersion => ENVIRONMENT_VERSION,
        BodyKind::StorageAccount => STORAGE_ACCOUNT,
        BodyKind::BlobContainer => BLOB_CONTAINER,
        BodyKind::RoleAssignment => ROLE_ASSIGNMENT,
    }
}

const ONLINE_ENDPOINT: &[Rule] = &[
    rule("/properties", Required, (ML, "OnlineEndpoint.required")),
    rule(
        "/properties/authMode",
        Required,
        (ML, "EndpointPropertiesBase.required"),
    ),
    rule(
        "/properties/authMode",
        OneOf(&["AMLToken", "Key", "AADToken"]),
        (ML, "EndpointAuthMode"),
    ),
    rule(
        "/properties/publicNetworkAccess",
        OneOf(ENABLED_DISABLED),
        (ML, "OnlineEndpointProperties.publicNetworkAccess"),
    ),
    rule(
        "/identity/type",
        RequiredInParent,
        (ARM_IDENTITY, "ManagedServiceIdentity.required"),
    ),
    rule(
        "/identity/type",
        OneOf(IDENTITY_TYPES),
        (ARM_IDENTITY, "ManagedServiceIdentityType"),
    ),
];

const ONLINE_ENDPOINT_PATCH: &[Rule] = &[rule(
    "/identity/type",
    OneOf(IDENTITY_TYPES),
    (ML, "PartialManagedServiceIdentity.type"),
)];

const SKU_TIERS: &[&str] = &["Free", "Basic", "Standard", "Premium"];

const ONLINE_DEPLOYMENT_PATCH: &[Rule] =
    &[rule("/sku/tier", OneOf(SKU_TIERS), (ML, "PartialSku.tier"))];

const ONLINE_DEPLOYMENT: &[Rule] = &[
    rule("/properties", Required, (ML, "OnlineDeployment.required")),
    rule(
        "/properties/endpointComputeType",
        Required,
        (ML, "OnlineDeploymentProperties.required"),
    ),
    rule(
        "/properties/endpointComputeType",
        OneOf(&["Managed", "Kubernetes", "AzureMLCompute"]),
        (ML, "EndpointComputeType"),
    ),
    rule(
        "/properties/egressPublicNetworkAccess",
        OneOf(ENABLED_DISABLED),
        (ML, "OnlineDeploymentProperties.egressPublicNetworkAccess"),
    ),
    rule(
        "/properties/scaleSettings/scaleType",
        RequiredInParent,
        (ML, "OnlineScaleSettings.required"),
    ),
    rule(
        "/properties/scaleSettings/scaleType",
        OneOf(&["Default", "TargetUtilization"]),
        (ML, "ScaleType"),
    ),
    rule("/sku/name", RequiredInParent, (ARM_TYPES, "Sku.required")),
    rule("/sku/tier", OneOf(SKU_TIERS), (ARM_TYPES, "SkuTier")),
];

const CODE_VERSION: &[Rule] = &[
    rule("/properties", Required, (ML, "CodeVersion.required")),
    // The definition types `codeUri` as nullable; a version without it names no code, and
    // this cloud has always refused it (the deployment could not start from it).
    rule(
        "/properties/codeUri",
        Required,
        (ML, "CodeVersionProperties.codeUri"),
    ),
];

const MODEL_VERSION: &[Rule] = &[
    rule("/properties", Required, (ML, "ModelVersion.required")),
    // As for code: nullable in the definition, refused here since a model without contents
    // cannot be deployed.
    rule(
        "/properties/modelUri",
        Required,
        (ML, "ModelVersionProperties.modelUri"),
    ),
];

const ENVIRONMENT_VERSION: &[Rule] = &[
    rule("/properties", Required, (ML, "EnvironmentVersion.required")),
    rule(
        "/properties/osType",
        OneOf(&["Linux", "Windows"]),
        (ML, "EnvironmentVersionProperties.osType"),
    ),
    rule(
        "/properties/autoRebuild",
        OneOf(&["Disabled", "OnBaseImageUpdate"]),
        (ML, "EnvironmentVersionProperties.autoRebuild"),
    ),
];

const STORAGE_ACCOUNT: &[Rule] = &[
    rule(
        "/sku",
        Required,
        (STORAGE, "StorageAccountCreateParameters.required"),
    ),
    rule(
        "/kind",
        Required,
        (STORAGE, "StorageAccountCreateParameters.required"),
    ),
    rule("/sku/name", Required, (STORAGE_COMMON, "Sku.required")),
    rule(
        "/sku/name",
        OneOf(&[
            "Standard_LRS",
            "Standard_GRS",
            "Standard_RAGRS",
            "Standard_ZRS",
            "Premium_LRS",
            "Premium_ZRS",
            "Standard_GZRS",
            "Standard_RAGZRS",
            "StandardV2_LRS",
            "StandardV2_GRS",
            "StandardV2_ZRS",
            "StandardV2_GZRS",
            "PremiumV2_LRS",
            "PremiumV2_ZRS",
        ]),
        (STORAGE_COMMON, "SkuName"),
    ),
    rule(
        "/kind",
        OneOf(&[
            "Storage",
            "StorageV2",
            "BlobStorage",
            "FileStorage",
            "BlockBlobStorage",
        ]),
        (STORAGE, "StorageAccountCreateParameters.kind"),
    ),
    rule(
        "/properties/accessTier",
        OneOf(&["Hot", "Cool", "Premium", "Cold"]),
        (STORAGE, "AccessTier"),
    ),
    rule(
        "/properties/minimumTlsVersion",
        OneOf(&["TLS1_0", "TLS1_1", "TLS1_2", "TLS1_3"]),
        (STORAGE, "MinimumTlsVersion"),
    ),
    rule(
        "/properties/publicNetworkAccess",
        OneOf(&["Enabled", "Disabled", "SecuredByPerimeter"]),
        (STORAGE, "PublicNetworkAccess"),
    ),
];

const BLOB_CONTAINER: &[Rule] = &[rule(
    "/properties/publicAccess",
    OneOf(&["Container", "Blob", "None"]),
    (BLOB, "ContainerProperties.publicAccess"),
)];

const ROLE_ASSIGNMENT: &[Rule] = &[
    rule(
        "/properties",
        Required,
        (AUTHZ, "RoleAssignmentCreateParameters.required"),
    ),
    rule(
        "/properties/roleDefinitionId",
        Required,
        (AUTHZ, "RoleAssignmentProperties.required"),
    ),
    rule(
        "/properties/principalId",
        Required,
        (AUTHZ, "RoleAssignmentProperties.required"),
    ),
    // The service accepts fewer values than some older definitions listed ("The PrincipalType
    // property 'MSI' is not valid. It must be 'User', 'Group' or 'ServicePrincipal'.",
    // Azure/azure-cli#11594); 2022-04-01 lists these four.
    rule(
        "/properties/principalType",
        OneOf(&["User", "Group", "ServicePrincipal", "ForeignGroup"]),
        (AUTHZ, "RoleAssignmentProperties.principalType"),
    ),
];

/// The value at `pointer`, `None` when absent or null.
fn at<'a>(body: &'a Value, pointer: &str) -> Option<&'a Value> {
    body.pointer(pointer).filter(|v| !v.is_null())
}

/// The JSON path of a pointer, as the services name properties (`properties.authMode`).
fn dotted(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

/// The first rule of `kind` the body breaks, as the service's refusal.
pub(crate) fn check(kind: BodyKind, body: &Value) -> Result<(), ArmError> {
    let (status, code) = refusal(kind);
    for r in rules(kind) {
        let value = at(body, r.pointer);
        let broken = match r.check {
            Required => value
                .is_none()
                .then(|| format!("The property '{}' is required.", dotted(r.pointer))),
            RequiredInParent => {
                let parent = r.pointer.rsplit_once('/').map_or("", |(p, _)| p);
                (at(body, parent).is_some() && value.is_none())
                    .then(|| format!("The property '{}' is required.", dotted(r.pointer)))
            }
            OneOf(allowed) => value.and_then(|v| {
                let ok = v
                    .as_str()
                    .is_some_and(|s| allowed.iter().any(|a| a.eq_ignore_ascii_case(s)));
                (!ok).then(|| {
                    format!(
                        "The value {v} of property '{}' is not valid; allowed values are {}.",
                        dotted(r.pointer),
                        allowed.join(", ")
                    )
                })
            }),
        };
        if let Some(message) = broken {
            tracing::debug!(
                definition = r.source.1,
                file = r.source.0,
                "request body refused: {message}"
            );
            return Err(ArmError::new(status, code, &message));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALL: [BodyKind; 10] = [
        BodyKind::OnlineEndpoint,
        BodyKind::OnlineEndpointPatch,
        BodyKind::OnlineDeployment,
        BodyKind::OnlineDeploymentPatch,
        BodyKind::CodeVersion,
        BodyKind::ModelVersion,
        BodyKind::EnvironmentVersion,
        BodyKind::StorageAccount,
        BodyKind::BlobContainer,
        BodyKind::RoleAssignment,
    ];

    #[test]
    fn every_rule_cites_a_published_definition() {
        for kind in ALL {
            for r in rules(kind) {
                assert!(
                    r.source
                        .0
                        .starts_with("Azure/azure-rest-api-specs: specification/"),
                    "{r:?}"
                );
                assert!(!r.source.1.is_empty(), "{r:?}");
                assert!(r.pointer.starts_with('/'), "{r:?}");
            }
        }
    }

    #[test]
    fn required_enum_and_parent_rules() {
        let ok = json!({"location": "eastus", "properties": {"authMode": "key"}});
        assert!(
            check(BodyKind::OnlineEndpoint, &ok).is_ok(),
            "enums compare case-insensitively"
        );
        let e = check(BodyKind::OnlineEndpoint, &json!({"properties": {}})).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, ArmCode::UserError)
        );
        assert!(e.message.contains("properties.authMode"), "{}", e.message);
        let e = check(
            BodyKind::OnlineEndpoint,
            &json!({"properties": {"authMode": "Password"}}),
        )
        .unwrap_err();
        assert!(
            e.message.contains("AMLToken, Key, AADToken"),
            "{}",
            e.message
        );
        // `identity.type` is required only when there is an identity.
        let e = check(
            BodyKind::OnlineEndpoint,
            &json!({"properties": {"authMode": "Key"}, "identity": {}}),
        )
        .unwrap_err();
        assert!(e.message.contains("identity.type"), "{}", e.message);
        let e = check(
            BodyKind::StorageAccount,
            &json!({"sku": {"name": "Standard_XYZ"}, "kind": "StorageV2"}),
        )
        .unwrap_err();
        assert_eq!(e.code, ArmCode::InvalidRequestContent);
        assert!(check(BodyKind::StorageAccount, &json!({"sku": {"name": "StandardV2_LRS"}, "kind": "StorageV2", "properties": {"minimumTlsVersion": "TLS1_3"}})).is_ok());
        // Unknown properties pass: the services ignore them.
        assert!(
            check(
                BodyKind::BlobContainer,
                &json!({"properties": {"publicAccess": "None", "somethingNew": 1}})
            )
            .is_ok()
        );
        let e = check(
            BodyKind::OnlineDeploymentPatch,
            &json!({"sku": {"tier": "Gold"}}),
        )
        .unwrap_err();
        assert!(e.message.contains("sku.tier"), "{}", e.message);
        assert!(
            check(
                BodyKind::OnlineDeploymentPatch,
                &json!({"sku": {"name": "Default", "capacity": 3}})
            )
            .is_ok()
        );
        let e = check(BodyKind::RoleAssignment, &json!({"properties": {"roleDefinitionId": "/x", "principalId": "p", "principalType": "MSI"}})).unwrap_err();
        assert!(e.message.contains("principalType"), "{}", e.message);
    }
}
