//! The contract between the engine and the provider: the seven resource types, what the engine asks
//! for ([`ResourceRequest`]), what it gets back ([`Observed`]), long-running-operation progress, and the
//! [`Provider`] trait itself. Plain types and one trait; nothing here sends a request, and nothing here
//! may hold a secret in a form that `Debug` would print.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::error::ProviderError;

/// Result of every provider call.
pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

/// The boxed future the [`Provider`] trait returns (keeps the trait object-safe).
pub(crate) type ProviderFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// The seven resource types stackform manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    StorageAccount,
    BlobContainer,
    Blob,
    OnlineEndpoint,
    RoleAssignment,
    OnlineDeployment,
    UserAssignedIdentity,
}

impl ResourceType {
    /// All types, in a stable order.
    pub(crate) const ALL: [ResourceType; 7] = [
        Self::StorageAccount,
        Self::BlobContainer,
        Self::Blob,
        Self::OnlineEndpoint,
        Self::RoleAssignment,
        Self::OnlineDeployment,
        Self::UserAssignedIdentity,
    ];

    /// The stack-file name of the type (`storage_account`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StorageAccount => "storage_account",
            Self::BlobContainer => "blob_container",
            Self::Blob => "blob",
            Self::OnlineEndpoint => "online_endpoint",
            Self::RoleAssignment => "role_assignment",
            Self::OnlineDeployment => "online_deployment",
            Self::UserAssignedIdentity => "user_assigned_identity",
        }
    }

    /// Parses a stack-file type name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Progress of a long-running operation, as reported by the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressEvent {
    /// The resource's address in the stack (`endpoint`, `blue`, …).
    pub address: String,
    /// The cloud's status word: `Creating`, `Updating`, `Deleting`, `InProgress`, `Succeeded`, …
    pub status: String,
}

/// A callback for [`ProgressEvent`]s. Called from the task running the operation; must not block.
pub type ProgressSink = Arc<dyn Fn(ProgressEvent) + Send + Sync>;

/// What the engine asks the provider to read, create, update or delete.
#[derive(Clone)]
pub struct ResourceRequest {
    /// The resource type.
    pub resource_type: ResourceType,
    /// The resource's address in the stack file (for progress and error messages).
    pub address: String,
    /// Fully resolved inputs, keyed by the stack-file field names of the type.
    pub inputs: Map<String, Value>,
    /// The cloud id recorded in state, when known. Reads and deletes prefer it to an id built from the
    /// inputs (a role assignment adopted after `RoleAssignmentExists` has a name of its own).
    pub cloud_id: Option<String>,
    /// Optional receiver of long-running-operation status.
    pub progress: Option<ProgressSink>,
}

impl fmt::Debug for ResourceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceRequest")
            .field("resource_type", &self.resource_type)
            .field("address", &self.address)
            .field("inputs", &self.inputs)
            .field("cloud_id", &self.cloud_id)
            .finish_non_exhaustive()
    }
}

impl ResourceRequest {
    /// A request with no cloud id and no progress sink.
    pub fn new(
        resource_type: ResourceType,
        address: impl Into<String>,
        inputs: Map<String, Value>,
    ) -> Self {
        Self {
            resource_type,
            address: address.into(),
            inputs,
            cloud_id: None,
            progress: None,
        }
    }

    /// Sets the cloud id known from state.
    #[must_use]
    pub fn with_cloud_id(mut self, id: impl Into<String>) -> Self {
        self.cloud_id = Some(id.into());
        self
    }

    /// Sets the progress receiver.
    #[must_use]
    pub fn with_progress(mut self, sink: ProgressSink) -> Self {
        self.progress = Some(sink);
        self
    }

    pub(crate) fn report(&self, status: &str) {
        if let Some(sink) = &self.progress {
            sink(ProgressEvent {
                address: self.address.clone(),
                status: status.to_owned(),
            });
        }
    }
}

/// What the engine asks when it sets a map that several resources' entries make up (a spec's
/// `aggregate`: an endpoint's traffic map, made of its deployments' shares).
#[derive(Clone)]
pub struct MapRequest {
    /// The step's address (`endpoint.traffic`), for progress and error messages.
    pub address: String,
    /// The type of the resource holding the map.
    pub owner_type: ResourceType,
    /// Its name in the cloud.
    pub owner: String,
    /// ARM path of the map in its body (`properties.traffic`).
    pub map: String,
    /// The whole new map; entries left out are 0.
    pub entries: BTreeMap<String, u64>,
    pub progress: Option<ProgressSink>,
}

impl fmt::Debug for MapRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapRequest")
            .field("address", &self.address)
            .field("owner_type", &self.owner_type)
            .field("owner", &self.owner)
            .field("map", &self.map)
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

impl MapRequest {
    pub(crate) fn report(&self, status: &str) {
        if let Some(sink) = &self.progress {
            sink(ProgressEvent {
                address: self.address.clone(),
                status: status.to_owned(),
            });
        }
    }
}

/// A resource as the cloud has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The cloud id (an ARM id; for a blob, its URL).
    pub id: String,
    /// The inputs as read back, normalised to the stack-file field names and spellings so that
    /// `desired == observed` means "no change". Fields the cloud cannot report (a blob's local `source`)
    /// are echoed from the request only when the cloud's content matches them.
    pub inputs: Map<String, Value>,
    /// Computed attributes (`id`, `primary_blob_endpoint`, `identity.principal_id` nested as
    /// `{"identity": {"principal_id": …}}`, …).
    pub outputs: Map<String, Value>,
}

/// What a provider kept of a resource before an update overwrote it, so that a rollback can put the
/// resource back exactly as it was, whatever the local files now say (a blob's content: a snapshot of
/// the blob). Opaque to the engine, which hands it back to [`Provider::restore`] and
/// [`Provider::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preserved {
    /// The provider's name for what it kept (a blob snapshot's time, `x-ms-snapshot`).
    pub handle: String,
}

/// The error of a [`Provider::restore`] for a type whose provider keeps nothing before an update.
pub(crate) fn nothing_to_restore(resource_type: ResourceType) -> ProviderError {
    ProviderError::invalid(format!(
        "{resource_type} keeps nothing this provider can restore"
    ))
}

/// The engine's view of a cloud. Implemented by [`super::AzureProvider`]; tests may implement it
/// too.
pub trait Provider: Send + Sync {
    /// Reads a resource. `Ok(None)` means it does not exist (404); any other failure is an error.
    fn read<'a>(&'a self, req: &'a ResourceRequest) -> ProviderFuture<'a, Option<Observed>>;
    /// Creates a resource and waits for it to be ready.
    fn create<'a>(&'a self, req: &'a ResourceRequest) -> ProviderFuture<'a, Observed>;
    /// Brings an existing resource (`prior`, as last read or recorded) to the requested inputs.
    fn update<'a>(
        &'a self,
        prior: &'a Observed,
        req: &'a ResourceRequest,
    ) -> ProviderFuture<'a, Observed>;
    /// Deletes a resource and waits until it is gone; a resource that is already gone is success.
    fn delete<'a>(&'a self, req: &'a ResourceRequest) -> ProviderFuture<'a, ()>;
    /// The text a resource holds in the cloud (a blob's body), when it is small UTF-8: plans show a
    /// changed file as a line diff against it. `Ok(None)` when there is no such text (too large, not
    /// UTF-8, gone, or a type without content). Never logged.
    fn read_text<'a>(&'a self, _req: &'a ResourceRequest) -> ProviderFuture<'a, Option<String>> {
        Box::pin(async { Ok(None) })
    }
    /// The collection a resource can be read from together with others (a key naming it), `None`
    /// when it is read alone. Refresh reads the members of one collection with [`Provider::read_listed`].
    fn list_group(&self, _req: &ResourceRequest) -> Option<String> {
        None
    }
    /// Reads resources that share a [`Provider::list_group`] with one listing: one answer per request,
    /// in order (`Ok(None)` for one the listing does not hold). The default reads each alone.
    fn read_listed<'a>(
        &'a self,
        reqs: &'a [ResourceRequest],
    ) -> ProviderFuture<'a, Vec<Result<Option<Observed>>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(reqs.len());
            for r in reqs {
                out.push(self.read(r).await);
            }
            Ok(out)
        })
    }
    /// Before an update of the resource `req` names: keeps what the update will overwrite and the
    /// inputs cannot bring back (a blob's content, which a rollback cannot re-read from a local file
    /// that has changed since). `Ok(None)` when the type has nothing to keep or the resource does not
    /// exist. The default keeps nothing.
    fn preserve<'a>(&'a self, _req: &'a ResourceRequest) -> ProviderFuture<'a, Option<Preserved>> {
        Box::pin(async { Ok(None) })
    }
    /// Puts back what [`Provider::preserve`] kept, and reads the resource as it then is.
    fn restore<'a>(
        &'a self,
        req: &'a ResourceRequest,
        _kept: &'a Preserved,
    ) -> ProviderFuture<'a, Observed> {
        Box::pin(async move { Err(nothing_to_restore(req.resource_type)) })
    }
    /// Removes what [`Provider::preserve`] kept (once the run no longer needs it); already gone is
    /// success.
    fn release<'a>(
        &'a self,
        _req: &'a ResourceRequest,
        _kept: &'a Preserved,
    ) -> ProviderFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    /// Sets a whole map that resources' `aggregate` fields make up (an endpoint's traffic map) in one
    /// update of its owner, and returns the map it replaced (for a rollback). Entries at 0 may be
    /// left out. A provider without such maps refuses.
    fn set_map<'a>(&'a self, req: &'a MapRequest) -> ProviderFuture<'a, BTreeMap<String, u64>> {
        Box::pin(async move {
            Err(ProviderError::invalid(format!(
                "{} has no map `{}` this provider can set",
                req.owner_type, req.map
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip() {
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::parse(t.as_str()), Some(t));
        }
        assert_eq!(ResourceType::parse("vm"), None);
    }

    #[test]
    fn provider_is_object_safe() {
        fn takes(_: Option<&dyn Provider>) {}
        takes(None);
    }
}
