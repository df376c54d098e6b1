//! Ownership: which stack an object in the cloud belongs to, and the checks that keep one stack from
//! claiming or deleting what another created.
//!
//! ARM's PUT is create-or-update (on Azure as on the local cloud), so two stacks that create an
//! object of the same name at the same moment both get a success. Each create and update therefore
//! writes the stack's stamp (its state's lineage and its name, where the type's spec says:
//! `arm.stamp`), and [`Owned`] wraps the run's provider so that:
//!
//! - every create, update and delete request carries the stamp ([`ResourceRequest::owner`]);
//! - a create whose object comes back with another lineage's stamp fails
//!   ([`OWNED_ELSEWHERE`]), and the object is neither recorded nor rolled back (another stack's PUT
//!   landed after ours: the object is theirs);
//! - an update or a delete first reads the object, and refuses one another stack stamped, naming
//!   that stack (rollback and destroy delete through here too);
//! - an object with no stamp (made before stamps, or by hand and imported) is this stack's when its
//!   state records it: an update stamps it.
//!
//! It never decides what to record (the scheduler does) and never sends anything but the wrapped
//! provider's calls plus one read before an update or a delete.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::provider::{
    ErrorKind, MapRequest, Observed, Owner, Preserved, Provider, ProviderError, ProviderFuture,
    ResourceRequest, Result,
};
use crate::state::StateFile;

/// The error code of a create, update or delete refused because another stack's stamp is on the
/// object. Such a failure leaves the object as it is and out of this stack's state.
pub(crate) const OWNED_ELSEWHERE: &str = "StackformOwnedElsewhere";

/// The owner a state stamps its objects with.
pub(crate) fn owner_of(state: &StateFile) -> Owner {
    Owner {
        lineage: state.lineage.to_string(),
        stack: state.stack.clone(),
    }
}

/// Whether `found` carries the stamp of a stack other than `ours`.
pub(crate) fn foreign<'a>(ours: &Owner, found: &'a Observed) -> Option<&'a Owner> {
    found
        .owner
        .as_ref()
        .filter(|o| !o.lineage.eq_ignore_ascii_case(&ours.lineage))
}

/// The error of a write refused because `other` owns the object.
pub(crate) fn refused(req: &ResourceRequest, other: &Owner, what: &str) -> ProviderError {
    ProviderError::new(
        ErrorKind::Conflict,
        format!(
            "{} `{}` belongs to {other}: {what}; it is left as it is",
            req.resource_type, req.address
        ),
    )
    .with_code(OWNED_ELSEWHERE)
}

/// A provider whose writes carry `owner`'s stamp and whose creates, updates and deletes refuse an
/// object another stack stamped (see the module doc).
pub(crate) struct Owned {
    inner: Arc<dyn Provider>,
    owner: Owner,
}

impl Owned {
    pub(crate) fn wrap(inner: Arc<dyn Provider>, owner: Owner) -> Arc<dyn Provider> {
        Arc::new(Self { inner, owner })
    }

    fn stamped(&self, req: &ResourceRequest) -> ResourceRequest {
        let mut r = req.clone();
        r.owner = Some(self.owner.clone());
        r
    }

    /// Reads the object a write is about to change; refuses it when another stack stamped it.
    /// `Ok(false)` when it is gone.
    async fn check_live(&self, req: &ResourceRequest, what: &str) -> Result<bool> {
        let found = match self.inner.read(req).await {
            Ok(found) => found,
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        match &found {
            Some(obs) => match foreign(&self.owner, obs) {
                Some(other) => Err(refused(req, other, what)),
                None => Ok(true),
            },
            None => Ok(false),
        }
    }
}

impl Provider for Owned {
    fn read<'a>(&'a self, req: &'a ResourceRequest) -> ProviderFuture<'a, Option<Observed>> {
        self.inner.read(req)
    }

    fn create<'a>(&'a self, req: &'a ResourceRequest) -> ProviderFuture<'a, Observed> {
        Box::pin(async move {
            let observed = self.inner.create(&self.stamped(req)).await?;
            match foreign(&self.owner, &observed) {
                Some(other) => Err(refused(
                    req,
                    other,
                    "another stack created it at the same time and its stamp is on the object now, so it is not recorded in this stack's state",
                )),
                None => Ok(observed),
            }
        })
    }

    fn update<'a>(
        &'a self,
        prior: &'a Observed,
        req: &'a ResourceRequest,
    ) -> ProviderFuture<'a, Observed> {
        Box::pin(async move {
            self.check_live(
                req,
                &format!(
                    "this stack will not update what another stack owns (`stackform state rm {}` forgets it)",
                    req.address
                ),
            )
            .await?;
            self.inner.update(prior, &self.stamped(req)).await
        })
    }

    fn delete<'a>(&'a self, req: &'a ResourceRequest) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            if self
                .check_live(
                    req,
                    &format!(
                        "this stack will not delete what another stack owns (`stackform state rm {}` forgets it)",
                        req.address
                    ),
                )
                .await?
            {
                self.inner.delete(&self.stamped(req)).await
            } else {
                Ok(())
            }
        })
    }

    fn read_text<'a>(&'a self, req: &'a ResourceRequest) -> ProviderFuture<'a, Option<String>> {
        self.inner.read_text(req)
    }

    fn list_group(&self, req: &ResourceRequest) -> Option<String> {
        self.inner.list_group(req)
    }

    fn read_listed<'a>(
        &'a self,
        reqs: &'a [ResourceRequest],
    ) -> ProviderFuture<'a, Vec<Result<Option<Observed>>>> {
        self.inner.read_listed(reqs)
    }

    fn preserve<'a>(&'a self, req: &'a ResourceRequest) -> ProviderFuture<'a, Option<Preserved>> {
        self.inner.preserve(req)
    }

    fn restore<'a>(
        &'a self,
        req: &'a ResourceRequest,
        kept: &'a Preserved,
    ) -> ProviderFuture<'a, Observed> {
        Box::pin(async move { self.inner.restore(&self.stamped(req), kept).await })
    }

    fn release<'a>(
        &'a self,
        req: &'a ResourceRequest,
        kept: &'a Preserved,
    ) -> ProviderFuture<'a, ()> {
        self.inner.release(req, kept)
    }

    fn set_map<'a>(&'a self, req: &'a MapRequest) -> ProviderFuture<'a, BTreeMap<String, u64>> {
        self.inner.set_map(req)
    }
}
