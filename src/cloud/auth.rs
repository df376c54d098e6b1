//! Tokens and permissions of the local cloud: HS256-signed JWTs (key in the data folder), the
//! audiences each surface accepts, and the role-based checks (ARM actions and blob data actions)
//! evaluated against the stored role assignments.
//!
//! It never answers HTTP itself and never logs a token or key.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::store::RoleAssignment;

/// Claims carried by every token the cloud issues.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub oid: String,
    pub tid: String,
    pub appid: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token audience is not accepted here")]
    WrongAudience,
}

/// Signs and verifies tokens with one secret key.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

type HmacSha256 = Hmac<Sha256>;

impl Signer {
    pub fn new(key: Vec<u8>) -> Self {
        Signer { key }
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    /// Issues a JWT for `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{body}");
        let sig = URL_SAFE_NO_PAD.encode(self.mac(signing_input.as_bytes()));
        format!("{signing_input}.{sig}")
    }

    /// Verifies signature and expiry, and that the audience is one of `audiences` (compared without a
    /// trailing slash, case-insensitively).
    pub fn verify(&self, token: &str, audiences: &[&str], now: u64) -> Result<Claims, TokenError> {
        let claims = self.verify_any_audience(token, now)?;
        if !audiences.iter().any(|a| same_audience(a, &claims.aud)) {
            return Err(TokenError::WrongAudience);
        }
        Ok(claims)
    }

    /// Verifies signature and expiry only: who a token names, whatever it was issued for. Never
    /// grants anything by itself (the fault filter uses it to tell callers apart).
    pub(crate) fn verify_any_audience(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(b), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = HmacSha256::new_from_slice(&self.key).map_err(|_| TokenError::Malformed)?;
        mac.update(format!("{h}.{b}").as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let body = URL_SAFE_NO_PAD
            .decode(b)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&body).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// Audiences compare case-insensitively and ignoring trailing slashes.
pub(crate) fn same_audience(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// The storage data-plane audience.
pub(crate) const STORAGE_AUDIENCE: &str = "https://storage.azure.com/";
/// The Azure ML scoring audience.
pub(crate) const ML_AUDIENCE: &str = "https://ml.azure.com/";

/// Built-in role definitions: GUID, name, the coarse ARM and data levels the request checks use, and
/// the role's ARM `actions` / `notActions` as Microsoft publishes them (Microsoft Learn, "Azure
/// built-in roles": General/Privileged, Storage, AI + machine learning), which "Permissions - List"
/// answers and which decide who may write role assignments.
pub(crate) struct RoleDef {
    pub guid: &'static str,
    pub name: &'static str,
    pub arm: ArmLevel,
    pub data: DataLevel,
    pub actions: &'static [&'static str],
    pub not_actions: &'static [&'static str],
    pub data_actions: &'static [&'static str],
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum ArmLevel {
    None,
    Read,
    /// Everything except granting roles.
    Write,
    /// Everything, including role assignments.
    All,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum DataLevel {
    None,
    Read,
    Write,
}

const BLOB_CONTAINERS_READ: &[&str] = &[
    "Microsoft.Storage/storageAccounts/blobServices/containers/read",
    "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
];

pub(crate) const ROLES: &[RoleDef] = &[
    RoleDef {
        guid: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        name: "Owner",
        arm: ArmLevel::All,
        data: DataLevel::None,
        actions: &["*"],
        not_actions: &[],
        data_actions: &[],
    },
    RoleDef {
        guid: "b24988ac-6180-42a0-ab88-20f7382dd24c",
        name: "Contributor",
        arm: ArmLevel::Write,
        data: DataLevel::None,
        actions: &["*"],
        not_actions: &[
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
            "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
            "Microsoft.Subscription/cancel/action",
            "Microsoft.Subscription/enable/action",
        ],
        data_actions: &[],
    },
    RoleDef {
        guid: "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        name: "Reader",
        arm: ArmLevel::Read,
        data: DataLevel::None,
        actions: &["*/read"],
        not_actions: &[],
        data_actions: &[],
    },
    RoleDef {
        guid: "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        name: "User Access Administrator",
        arm: ArmLevel::Read,
        data: DataLevel::None,
        actions: &["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
        not_actions: &[],
        data_actions: &[],
    },
    RoleDef {
        guid: "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
        name: "Role Based Access Control Administrator",
        arm: ArmLevel::Read,
        data: DataLevel::None,
        actions: &[
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        ],
        not_actions: &[],
        data_actions: &[],
    },
    RoleDef {
        guid: "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        name: "Storage Blob Data Reader",
        arm: ArmLevel::None,
        data: DataLevel::Read,
        actions: BLOB_CONTAINERS_READ,
        not_actions: &[],
        data_actions: &["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"],
    },
    RoleDef {
        guid: "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        name: "Storage Blob Data Contributor",
        arm: ArmLevel::None,
        data: DataLevel::Write,
        actions: &[
            "Microsoft.Storage/storageAccounts/blobServices/containers/delete",
            "Microsoft.Storage/storageAccounts/blobServices/containers/read",
            "Microsoft.Storage/storageAccounts/blobServices/containers/write",
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
        ],
        not_actions: &[],
        data_actions: &[
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
        ],
    },
    RoleDef {
        guid: "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        name: "Storage Blob Data Owner",
        arm: ArmLevel::None,
        data: DataLevel::Write,
        actions: &[
            "Microsoft.Storage/storageAccounts/blobServices/containers/*",
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
        ],
        not_actions: &[],
        data_actions: &["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*"],
    },
    RoleDef {
        guid: "7f951dda-4ed3-4680-a7ca-43fe172d538d",
        name: "AcrPull",
        arm: ArmLevel::None,
        data: DataLevel::None,
        actions: &["Microsoft.ContainerRegistry/registries/pull/read"],
        not_actions: &[],
        data_actions: &[],
    },
];

/// The trailing GUID of a role definition id, lowercase.
pub(crate) fn role_guid(role_definition_id: &str) -> String {
    role_definition_id
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

pub(crate) fn role(guid: &str) -> Option<&'static RoleDef> {
    ROLES.iter().find(|r| r.guid.eq_ignore_ascii_case(guid))
}

/// True when `scope` equals `target` or is one of its ancestors (segment boundary, case-insensitive).
pub(crate) fn scope_covers(scope: &str, target: &str) -> bool {
    let s = scope.trim_end_matches('/').to_ascii_lowercase();
    let t = target.trim_end_matches('/').to_ascii_lowercase();
    s.is_empty() || t == s || (t.starts_with(&s) && t.as_bytes().get(s.len()) == Some(&b'/'))
}

/// Assignments among `assignments` (one principal's) that cover `target` and are older than
/// `min_age_ms` (the propagation-delay fault).
fn effective<'a>(
    assignments: &'a [RoleAssignment],
    target: &'a str,
    now_ms: u64,
    min_age_ms: u64,
) -> impl Iterator<Item = &'static RoleDef> + 'a {
    assignments
        .iter()
        .filter(move |ra| {
            scope_covers(&ra.scope, target) && now_ms.saturating_sub(ra.created_ms) >= min_age_ms
        })
        .filter_map(|ra| role(&role_guid(&ra.role_definition_id)))
}

/// Whether a principal's `assignments` (at or above `target`) grant the ARM `action` there: some
/// covering assignment's role has it in `actions` and not in `notActions`.
pub(crate) fn permits(assignments: &[RoleAssignment], target: &str, action: &str) -> bool {
    effective(assignments, target, 0, 0)
        .any(|r| crate::rbac::grants(r.actions, r.not_actions, action))
}

/// The roles a principal's `assignments` give it at `target`, one per covering assignment.
pub(crate) fn roles_at<'a>(
    assignments: &'a [RoleAssignment],
    target: &'a str,
) -> impl Iterator<Item = &'static RoleDef> + 'a {
    effective(assignments, target, 0, 0)
}

/// Highest ARM level a principal's `assignments` grant on `target`.
pub(crate) fn arm_level(assignments: &[RoleAssignment], target: &str, now_ms: u64) -> ArmLevel {
    effective(assignments, target, now_ms, 0)
        .map(|r| r.arm)
        .max()
        .unwrap_or(ArmLevel::None)
}

/// Highest blob data level a principal's `assignments` grant on `target`, counting only assignments
/// older than `delay_ms`.
pub(crate) fn data_level(
    assignments: &[RoleAssignment],
    target: &str,
    now_ms: u64,
    delay_ms: u64,
) -> DataLevel {
    effective(assignments, target, now_ms, delay_ms)
        .map(|r| r.data)
        .max()
        .unwrap_or(DataLevel::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(aud: &str, exp: u64) -> Claims {
        Claims {
            aud: aud.into(),
            iss: "i".into(),
            oid: "o".into(),
            tid: "t".into(),
            appid: "a".into(),
            iat: 0,
            nbf: 0,
            exp,
        }
    }

    #[test]
    fn verify_checks_signature_expiry_and_audience() {
        let s = Signer::new(b"k1".to_vec());
        let t = s.sign(&claims("https://storage.azure.com/", 100));
        assert!(s.verify(&t, &["https://storage.azure.com"], 50).is_ok());
        assert_eq!(
            s.verify(&t, &["https://storage.azure.com"], 100),
            Err(TokenError::Expired)
        );
        assert_eq!(
            s.verify(&t, &["https://management.azure.com/"], 50),
            Err(TokenError::WrongAudience)
        );
        let other = Signer::new(b"k2".to_vec());
        assert_eq!(
            other.verify(&t, &["https://storage.azure.com"], 50),
            Err(TokenError::BadSignature)
        );
        assert_eq!(s.verify("abc", &["x"], 0), Err(TokenError::Malformed));
    }

    #[test]
    fn levels_come_from_covering_assignments_old_enough() {
        let ra = |scope: &str, role: &str, created_ms: u64| RoleAssignment {
            id: String::new(),
            name: String::new(),
            scope: scope.into(),
            role_definition_id: format!(
                "/providers/Microsoft.Authorization/roleDefinitions/{role}"
            ),
            principal_id: "p".into(),
            principal_type: "User".into(),
            description: None,
            created_ms,
            created_on: String::new(),
        };
        let held = [
            ra(
                "/subscriptions/s",
                "acdd72a7-3385-48ef-bd42-f606fba81ae7",
                0,
            ),
            ra(
                "/subscriptions/s/rg",
                "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
                100,
            ),
        ];
        assert_eq!(arm_level(&held, "/subscriptions/s/rg/x", 0), ArmLevel::Read);
        assert_eq!(arm_level(&held, "/subscriptions/t", 0), ArmLevel::None);
        assert_eq!(
            data_level(&held, "/subscriptions/s/rg", 150, 0),
            DataLevel::Write
        );
        assert_eq!(
            data_level(&held, "/subscriptions/s/rg", 150, 60),
            DataLevel::None
        );
    }

    #[test]
    fn scopes_cover_descendants_only() {
        assert!(scope_covers(
            "/subscriptions/A",
            "/subscriptions/a/resourceGroups/x"
        ));
        assert!(scope_covers("/subscriptions/a", "/subscriptions/a"));
        assert!(!scope_covers("/subscriptions/a", "/subscriptions/ab"));
        assert!(!scope_covers("/subscriptions/a/x", "/subscriptions/a"));
    }
}
