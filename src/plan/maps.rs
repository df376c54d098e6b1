//! Map changes: a field whose spec says `aggregate` (a deployment's `traffic`) is one entry of a map
//! that another resource holds (its endpoint's `properties.traffic`). The cloud takes such a map only
//! whole — adding up to 100, or empty, and naming only members that exist — so the planner never
//! changes an entry through its member: it gathers the entries of every member of one owner into one
//! [`MapChange`], which apply runs as its own step:
//!
//! ```text
//!   create/update of each member ──► set the map ──► delete of each member that goes
//! ```
//!
//! A member is created with no entry, so the map it joins stays valid until the one update that
//! sets the whole new map; a member that goes loses its entry in that update, before its delete. A
//! member that is *replaced* while it holds a share needs its entry gone before its delete and back
//! after its create: the change then also has an `interim` map (without it), set before the
//! deletes, and the final map after the creates.
//!
//! The map before is the live entries of the members (as the refresh read them from the owner), so
//! a map changed outside stackform shows as drift of the members and as this change. Pure.
use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;
use serde_json::Value;

use super::action::{Action, ReplaceOrder};
use super::model::{MapChange, MapMember};
use super::snapshot::{Live, Snapshot};
use super::value::PlanValue;
use crate::specs::ResourceSpec;
use crate::state::ResourceState;

/// What the planner knows of one member when the map changes are made.
pub(super) struct MemberView<'a> {
    pub address: &'a str,
    pub spec: &'a ResourceSpec,
    /// The planned action of the member (`Delete` for one removed from the stack).
    pub action: Action,
    /// Desired inputs (`None` for a member that is deleted).
    pub desired: Option<&'a PlanValue>,
    /// The record in state, when there is one.
    pub prior: Option<&'a ResourceState>,
    /// The owner's address in the stack or in state, when known.
    pub owner_address: Option<String>,
}

/// A map entry value as a share, when it is one.
fn share(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_u64)
}

/// A text input as planned: `Ok(Some)` known, `Ok(None)` known only after apply, `Err(())` absent or
/// not text (the member cannot be placed in any map).
fn text(v: Option<PlanValue>) -> Result<Option<String>, ()> {
    match v {
        Some(PlanValue::Known(Value::String(s))) => Ok(Some(s)),
        Some(v) if v.has_unknown() => Ok(None),
        _ => Err(()),
    }
}

/// The map changes of `members`, one per (owner, map), in the order their owners first appear. An
/// owner, key or share that refers to a value known only after apply leaves the map after apply
/// unknown (the apply step computes it when it runs, once every member is done).
pub(super) fn map_changes(members: &[MemberView<'_>], snapshot: &Snapshot) -> Vec<MapChange> {
    #[derive(Default)]
    struct Group {
        owner: Option<String>,
        owner_address: Option<String>,
        before: BTreeMap<String, u64>,
        after: BTreeMap<String, u64>,
        /// Some owner, key or share is known only after apply.
        unknown: bool,
        /// Keys whose object stays through the run (kept members).
        kept: BTreeSet<String>,
        /// Keys of members holding a share now that are deleted before their replacement exists.
        replaced: BTreeSet<String>,
        members: Vec<MapMember>,
        releases: Vec<String>,
    }
    let mut groups: IndexMap<(String, String, String, String), Group> = IndexMap::new();
    for m in members {
        for (field, fspec, agg) in m.spec.aggregates() {
            let Some(owner_type) = m
                .spec
                .fields
                .get(&agg.owner)
                .and_then(|f| f.parent_ref.clone())
            else {
                continue;
            };
            let recorded = |name: &str| {
                m.prior
                    .and_then(|p| p.inputs.get(name))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let (owner, key) = match m.desired {
                Some(d) => match (text(d.get(&agg.owner)), text(d.get(&agg.key))) {
                    (Ok(owner), Ok(key)) => (owner, key),
                    // Nothing to place (the loader refuses such a stack; a plan never guesses).
                    _ => continue,
                },
                None => match (recorded(&agg.owner), recorded(&agg.key)) {
                    (Some(owner), Some(key)) => (Some(owner), Some(key)),
                    _ => continue,
                },
            };
            // The share the live map gives this member's object now (none when it does not exist).
            let live_share = match (snapshot.live.get(m.address), m.prior) {
                (_, None) | (Some(Live::Gone), _) => None,
                (Some(Live::Present { inputs, .. }), _) => share(inputs.get(field)),
                (_, Some(p)) => share(p.inputs.get(field)),
            };
            let desired_share = m.desired.map(|d| match d.get(field) {
                Some(v) if v.is_null() => fspec.default.as_ref().and_then(Value::as_u64),
                Some(v) => v.into_known().as_ref().and_then(Value::as_u64),
                None => fspec.default.as_ref().and_then(Value::as_u64),
            });
            let group_owner = owner
                .clone()
                .unwrap_or_else(|| format!("@{}", m.owner_address.as_deref().unwrap_or(m.address)));
            let g = groups
                .entry((owner_type, agg.map.clone(), group_owner, field.to_owned()))
                .or_default();
            if g.owner.is_none() {
                g.owner.clone_from(&owner);
            }
            if g.owner_address.is_none() {
                g.owner_address.clone_from(&m.owner_address);
            }
            // The live object's key: a renamed (replaced) member's old name.
            let old_key = recorded(&agg.key).or_else(|| key.clone());
            if let (Some(k), Some(s)) = (&old_key, live_share.filter(|s| *s > 0)) {
                g.before.insert(k.clone(), s);
            }
            match (&key, desired_share) {
                (Some(k), Some(Some(s))) if s > 0 => {
                    g.after.insert(k.clone(), s);
                }
                (Some(_), Some(Some(_)) | None) => {}
                _ => g.unknown = true,
            }
            if owner.is_none() {
                g.unknown = true;
            }
            if matches!(m.action, Action::NoOp | Action::Update)
                && let Some(k) = &key
            {
                g.kept.insert(k.clone());
            }
            let object_goes = matches!(m.action, Action::Delete | Action::Replace(_));
            if object_goes && live_share.is_some_and(|s| s > 0) {
                g.releases.push(m.address.to_owned());
                // Deleted before its replacement exists: its entry must go before the delete and
                // come back after the create, so the map is set twice.
                if m.action == Action::Replace(ReplaceOrder::DeleteBeforeCreate)
                    && let Some(k) = &old_key
                {
                    g.replaced.insert(k.clone());
                }
            }
            g.members.push(MapMember {
                address: m.address.to_owned(),
                key,
                after: desired_share.flatten(),
                stays: m.desired.is_some(),
            });
        }
    }
    groups
        .into_iter()
        .map(|((owner_type, map, _, field), g)| {
            let interim = (!g.replaced.is_empty())
                .then(|| interim(&g.before, &g.replaced, &g.after, &g.kept));
            let changes = g.unknown || g.before != g.after || !g.releases.is_empty();
            let address = g
                .owner_address
                .clone()
                .or_else(|| g.owner.clone())
                .unwrap_or_default();
            MapChange {
                address,
                owner_type,
                owner: g.owner,
                field,
                map,
                action: if changes {
                    Action::Update
                } else {
                    Action::NoOp
                },
                before: g.before,
                after: (!g.unknown).then_some(g.after),
                interim,
                members: g.members,
                releases: g.releases,
            }
        })
        .collect()
}

/// The map to set before the deletes when members holding a share are replaced: the final map when
/// it names only objects that stay; else the current map without the replaced members, their share
/// spread over the rest in proportion (largest remainder); else empty (nothing serves until the final
/// map is set).
fn interim(
    before: &BTreeMap<String, u64>,
    replaced: &BTreeSet<String>,
    after: &BTreeMap<String, u64>,
    kept: &BTreeSet<String>,
) -> BTreeMap<String, u64> {
    if after.keys().all(|k| kept.contains(k)) && after.values().sum::<u64>() == 100 {
        return after.clone();
    }
    let rest: BTreeMap<String, u64> = before
        .iter()
        .filter(|(k, _)| !replaced.contains(*k))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let total: u64 = rest.values().sum();
    if total == 0 || total == 100 {
        return rest;
    }
    let mut scaled: Vec<(String, u64, u64)> = rest
        .iter()
        .map(|(k, v)| (k.clone(), v * 100 / total, v * 100 % total))
        .collect();
    let mut left = 100 - scaled.iter().map(|(_, s, _)| s).sum::<u64>();
    let mut by_remainder: Vec<usize> = (0..scaled.len()).collect();
    by_remainder.sort_by(|a, b| scaled[*b].2.cmp(&scaled[*a].2).then(a.cmp(b)));
    for i in by_remainder {
        if left == 0 {
            break;
        }
        scaled[i].1 += 1;
        left -= 1;
    }
    scaled.into_iter().map(|(k, s, _)| (k, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
        entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    fn set(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|k| (*k).to_owned()).collect()
    }

    #[test]
    fn an_interim_map_always_adds_up_to_100_or_0() {
        // The final map names only what stays: it is the interim map too.
        assert_eq!(
            interim(
                &map(&[("blue", 50), ("green", 50)]),
                &set(&["blue"]),
                &map(&[("green", 100)]),
                &set(&["green"])
            ),
            map(&[("green", 100)])
        );
        // The replaced member's share goes to the others, in proportion.
        assert_eq!(
            interim(
                &map(&[("a", 50), ("b", 30), ("c", 20)]),
                &set(&["a"]),
                &map(&[("a", 50), ("b", 30), ("c", 20)]),
                &set(&["b", "c"])
            ),
            map(&[("b", 60), ("c", 40)])
        );
        assert_eq!(
            interim(
                &map(&[("a", 1), ("b", 1), ("c", 1), ("d", 97)]),
                &set(&["d"]),
                &map(&[("d", 100)]),
                &set(&["a", "b", "c"])
            ),
            map(&[("a", 34), ("b", 33), ("c", 33)])
        );
        // Nothing else serves: empty until the replacement is back.
        assert_eq!(
            interim(
                &map(&[("blue", 100)]),
                &set(&["blue"]),
                &map(&[("blue", 100)]),
                &set(&[])
            ),
            map(&[])
        );
    }
}
