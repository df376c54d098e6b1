//! The plan's data: [`Plan`], its [`Change`]s, [`Drift`] and [`OutputChange`]s. Plain values that the
//! apply engine executes and `report/` renders; nothing here formats for people.
use std::collections::BTreeMap;

use uuid::Uuid;

use super::action::{Action, ActionReason, PlanMode};
use super::value::PlanValue;

/// The result of planning: what applying would do, in apply order, and what drifted.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub mode: PlanMode,
    /// The `stack:` name.
    pub stack: String,
    /// The state the plan was made against; a saved plan is stale once the state's serial moves.
    pub prior_state: Option<StateRef>,
    /// One entry per resource in the stack or in state, in an order that respects dependencies:
    /// deletions of resources removed from the stack first (dependents before what they depend on),
    /// then every stack resource in topological order. No-op entries are included.
    pub changes: Vec<Change>,
    /// The maps that gather an entry of several resources (an endpoint's traffic), one per owner that
    /// a member of the stack or the state names; each runs as its own step (see `plan::maps`).
    pub maps: Vec<MapChange>,
    /// Differences between the state and the live cloud (out-of-band changes), per resource.
    pub drift: Vec<Drift>,
    /// The stack outputs as they will be after apply.
    pub outputs: Vec<OutputChange>,
    /// Records that move to a new address (`moved:` in the file); no cloud change. The changes
    /// above already use the new addresses. Set by the caller (see [`super::moves`]).
    pub moved: Vec<super::moves::Moved>,
    /// Existing objects adopted at their address (`import:` in the file); their changes above
    /// compare the file with the object as read. Set by the caller (see [`super::moves`]).
    pub imports: Vec<super::moves::PendingImport>,
    pub summary: Summary,
}

/// Identifies the state a plan was made against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateRef {
    pub lineage: Uuid,
    pub serial: u64,
}

/// What happens to one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The resource's key in the stack file (and in state).
    pub address: String,
    pub type_name: String,
    /// What apply does. Decisions are made from this alone.
    pub action: Action,
    /// The inputs as they are now (live when refreshed, else as recorded), normalised; `None` when
    /// the resource does not exist yet. Sensitive parts are [`PlanValue::Sensitive`].
    pub before: Option<PlanValue>,
    /// The inputs as they will be; `None` for a deletion. May hold unknown parts.
    pub after: Option<PlanValue>,
    /// Attribute-level differences: for a creation every set input (and computed attributes as
    /// unknown); for an update or replacement the inputs that differ.
    pub attributes: Vec<AttributeChange>,
    /// Why: for display only, never for decisions.
    pub reasons: Vec<ActionReason>,
    /// Prerequisites: from the graph for stack resources, from state for deletions.
    pub dependencies: Vec<String>,
}

/// One attribute that differs (or, for a creation, is set).
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeChange {
    /// Dotted path: `sku`, `identity.type`, `environment_variables.FILE_NAME`.
    pub path: String,
    /// `None` when there was no value (a creation, or a newly set map key). Boxed, as `content`:
    /// a plan of a large stack holds one of these per field of every resource it creates, mostly
    /// without a before or a content, and an inline value would be 80 bytes each.
    pub before: Option<Box<PlanValue>>,
    /// `Known(Null)` when the value is removed.
    pub after: PlanValue,
    /// The values are hidden ([`PlanValue::Sensitive`]) here and everywhere the plan is shown.
    pub sensitive: bool,
    /// This difference alone forces the resource to be replaced.
    pub forces_replacement: bool,
    /// A computed attribute (set by the cloud), listed for a creation.
    pub computed: bool,
    /// For a path field: the content of the file or folder it names changed.
    pub content: Option<Box<ContentChange>>,
}

impl AttributeChange {
    pub(crate) fn new(
        path: impl Into<String>,
        before: Option<PlanValue>,
        after: PlanValue,
    ) -> Self {
        AttributeChange {
            path: path.into(),
            before: before.map(Box::new),
            after,
            sensitive: false,
            forces_replacement: false,
            computed: false,
            content: None,
        }
    }
}

/// `attributes` with no spare capacity: a plan holds one list per resource, and a list grown by
/// doubling (or collected in the place of a larger item's) keeps up to twice what it holds.
pub(crate) fn exact(mut attributes: Vec<AttributeChange>) -> Vec<AttributeChange> {
    attributes.shrink_to_fit();
    attributes
}

/// The content behind a path field, before and after (hashes always when known; text when it is a
/// small UTF-8 file, so it can be diffed line by line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentChange {
    pub before_sha256: Option<String>,
    pub after_sha256: Option<String>,
    pub before_text: Option<String>,
    pub after_text: Option<String>,
}

/// One owner's map of entries (`aggregate` fields), before and after: an endpoint's traffic map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapChange {
    /// The owner's address in the stack (or in state), else its name in the cloud.
    pub address: String,
    /// The owner's type (the `parent_ref` of the members' owner field).
    pub owner_type: String,
    /// The owner's name in the cloud (`None`: known only after apply).
    pub owner: Option<String>,
    /// The members' field that is the entry (`traffic`).
    pub field: String,
    /// ARM path of the map in the owner's body (`properties.traffic`).
    pub map: String,
    /// `Update` when the map is set, else `NoOp`.
    pub action: Action,
    /// The live entries now (zero entries left out).
    pub before: BTreeMap<String, u64>,
    /// The entries after apply (zero entries left out); `None` when a member's key or share, or the
    /// owner, is known only after apply.
    pub after: Option<BTreeMap<String, u64>>,
    /// The map set before the deletes when a member holding a share is replaced (see `plan::maps`).
    pub interim: Option<BTreeMap<String, u64>>,
    /// Every member in the stack or in state: the map is set after their creates and updates.
    pub members: Vec<MapMember>,
    /// Members whose object goes (deleted or replaced) while it holds a share: their deletes wait
    /// for the map.
    pub releases: Vec<String>,
}

/// One resource whose field is an entry of a [`MapChange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapMember {
    pub address: String,
    /// Its key in the map (`None`: known only after apply).
    pub key: Option<String>,
    /// Its desired entry (`None` when it leaves the stack or is known only after apply).
    pub after: Option<u64>,
    /// It is in the stack (its desired inputs give its entry); else it leaves.
    pub stays: bool,
}

/// What changed in the cloud since the last apply, outside stackform.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    pub address: String,
    pub type_name: String,
    /// The resource was deleted.
    pub gone: bool,
    /// `before` is the recorded value, `after` the live one.
    pub attributes: Vec<AttributeChange>,
}

/// A stack output after apply.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputChange {
    pub name: String,
    /// `Create` (new), `Update`, `NoOp` or `Delete` (no longer in the stack file).
    pub action: Action,
    /// The value recorded in state (hidden when sensitive).
    pub before: Option<PlanValue>,
    pub after: PlanValue,
    pub sensitive: bool,
}

/// Counts, as people read them: a replacement is one to add and one to destroy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    /// Of which replacements (counted in both `add` and `destroy`).
    pub replace: usize,
    pub drifted: usize,
    pub outputs_changed: usize,
}

impl Summary {
    /// The counts of a plan; each map that is set is one change (one update of its owner), as the
    /// apply's summary counts it.
    pub(crate) fn of_plan(plan: &Plan) -> Summary {
        let mut s = Summary::of(&plan.changes, &plan.drift, &plan.outputs);
        s.change += plan.maps.iter().filter(|m| !m.action.is_noop()).count();
        s
    }

    pub(crate) fn of(changes: &[Change], drift: &[Drift], outputs: &[OutputChange]) -> Summary {
        let mut s = Summary {
            drifted: drift.len(),
            outputs_changed: outputs.iter().filter(|o| !o.action.is_noop()).count(),
            ..Summary::default()
        };
        for c in changes {
            match c.action {
                Action::NoOp => {}
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Replace(_) => {
                    s.add += 1;
                    s.destroy += 1;
                    s.replace += 1;
                }
                Action::Delete => s.destroy += 1,
            }
        }
        s
    }
}

impl Plan {
    /// Whether applying would change anything (a resource, an output, or what state tracks: an
    /// import). Drift alone is not a change, nor is a move (the objects stay as they are; apply
    /// records the new addresses all the same).
    pub(crate) fn has_changes(&self) -> bool {
        self.has_cloud_changes() || !self.imports.is_empty()
    }

    /// Whether applying would run any step: a resource, a map or an output changes.
    pub(crate) fn has_cloud_changes(&self) -> bool {
        self.changes.iter().any(|c| !c.action.is_noop())
            || self.maps.iter().any(|m| !m.action.is_noop())
            || self.outputs.iter().any(|o| !o.action.is_noop())
    }

    /// The id an address is imported from, when it is.
    pub fn import_of(&self, address: &str) -> Option<&str> {
        self.imports
            .iter()
            .find(|i| i.address == address)
            .map(|i| i.id.as_str())
    }

    /// Whether the resources (not only outputs) would change.
    #[cfg(test)]
    pub(crate) fn has_resource_changes(&self) -> bool {
        self.changes.iter().any(|c| !c.action.is_noop())
            || self.maps.iter().any(|m| !m.action.is_noop())
    }

    /// The map change of one owner (by its address).
    pub fn map_change(&self, address: &str) -> Option<&MapChange> {
        self.maps.iter().find(|m| m.address == address)
    }

    pub(crate) fn has_drift(&self) -> bool {
        !self.drift.is_empty()
    }

    /// The change for one address.
    pub fn change(&self, address: &str) -> Option<&Change> {
        self.changes.iter().find(|c| c.address == address)
    }
}
