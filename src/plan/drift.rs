//! Drift: the recorded inputs of each resource against what the refresh read, reported apart from
//! configuration changes. Only fields the state recorded are compared; secrets are not (the cloud
//! never returns them); file content is compared by hash.

use super::diff::{self, DiffCtx, Owner, SensitivePaths};
use super::model::Drift;
use super::snapshot::{DesiredExtras, Live, Snapshot};
use super::support::{live_content, recorded_content};
use super::value::PlanValue;
use crate::specs::Registry;
use crate::stack::Stack;
use crate::state::StateFile;

/// Drift: for every recorded resource the refresh read, the recorded inputs against the live ones.
pub(super) fn drift_of(
    state: &StateFile,
    snapshot: &Snapshot,
    registry: &Registry,
    desired: &Stack,
    extras: &DesiredExtras,
) -> Vec<Drift> {
    let mut out = Vec::new();
    for (address, r) in &state.resources {
        let Some(live) = snapshot.live.get(address) else {
            continue;
        };
        match live {
            Live::NotRefreshed => {}
            Live::Gone => out.push(Drift {
                address: address.clone(),
                type_name: r.resource_type.clone(),
                gone: true,
                attributes: Vec::new(),
            }),
            Live::Present {
                inputs,
                outputs,
                content,
                ..
            } => {
                let Some(spec) = registry.get(&r.resource_type) else {
                    continue;
                };
                let mut recorded = recorded_content(spec, r);
                // The recorded side has no text; the local file does when it still matches.
                for (field, c) in recorded.iter_mut() {
                    if let Some(local) = extras.content(address, field)
                        && local.sha256 == c.sha256
                    {
                        c.text.clone_from(&local.text);
                    }
                }
                let live_content = live_content(spec, content, outputs);
                let mut sensitive = SensitivePaths::default();
                for p in &r.sensitive {
                    sensitive.add(&p.to_string());
                }
                let ctx = DiffCtx {
                    dir: &desired.dir,
                    owner: Owner::State,
                    lineage: Some(state.lineage),
                    sensitive: &sensitive,
                    new_content: &live_content,
                    old_content: &recorded,
                };
                let diffs = diff::diff(
                    &ctx,
                    &spec.fields,
                    &PlanValue::Known(inputs.clone()),
                    &r.inputs,
                    None,
                );
                if !diffs.is_empty() {
                    out.push(Drift {
                        address: address.clone(),
                        type_name: r.resource_type.clone(),
                        gone: false,
                        attributes: super::model::exact(
                            diffs.into_iter().map(|d| d.change).collect(),
                        ),
                    });
                }
            }
        }
    }
    out
}
