//! The plan's vocabulary: what will happen to a resource ([`Action`]), why ([`ActionReason`]), and
//! which kind of planning produced it ([`PlanMode`]). Plain data; no I/O, no formatting for humans
//! beyond the short stable words and symbols each variant is known by.
use std::fmt;

/// What applying the plan will do to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Nothing: the resource matches the configuration.
    NoOp,
    /// Create a resource that does not exist.
    Create,
    /// Change the resource in place.
    Update,
    /// Delete the resource and create it again (a field that cannot change in place changed).
    Replace(ReplaceOrder),
    /// Delete the resource.
    Delete,
}

/// The order of the two halves of a replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplaceOrder {
    /// Delete the old object first: the new one has the same name, and Azure names are unique.
    DeleteBeforeCreate,
    /// Create the new object first: it has a different name, so both may exist for a moment.
    CreateBeforeDelete,
}

impl Action {
    /// The symbol shown before the resource in a plan: `+`, `~`, `-/+`, `+/-`, `-`, or a blank.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace(ReplaceOrder::DeleteBeforeCreate) => "-/+",
            Action::Replace(ReplaceOrder::CreateBeforeDelete) => "+/-",
            Action::Delete => "-",
        }
    }

    /// The stable word used in the JSON plan: `no-op`, `create`, `update`, `replace`, `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::NoOp => "no-op",
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace(_) => "replace",
            Action::Delete => "delete",
        }
    }

    pub fn is_noop(self) -> bool {
        self == Action::NoOp
    }

    pub(crate) fn is_replace(self) -> bool {
        matches!(self, Action::Replace(_))
    }

    /// Whether a new object comes into existence (create or replace).
    pub(crate) fn creates(self) -> bool {
        matches!(self, Action::Create | Action::Replace(_))
    }

    /// Whether an existing object goes away (delete or replace).
    #[cfg(test)]
    pub(crate) fn deletes(self) -> bool {
        matches!(self, Action::Delete | Action::Replace(_))
    }
}

impl ReplaceOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplaceOrder::DeleteBeforeCreate => "delete_before_create",
            ReplaceOrder::CreateBeforeDelete => "create_before_delete",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of plan to make. Destroy and drift detection are modes of planning, not separate engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PlanMode {
    /// Bring the cloud to the configuration.
    #[default]
    Normal,
    /// Delete everything in state, in reverse dependency order.
    Destroy,
    /// Change nothing; only report drift (what changed in the cloud since the last apply).
    RefreshOnly,
}

impl PlanMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanMode::Normal => "normal",
            PlanMode::Destroy => "destroy",
            PlanMode::RefreshOnly => "refresh-only",
        }
    }
}

/// Why a resource gets its action.
///
/// Reasons are for display only: the apply engine decides from [`Action`] alone and must never
/// branch on a reason. Several reasons may explain one action (a replacement forced by two fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionReason {
    /// The resource is in the stack file but not in state.
    NotInState,
    /// The resource is in state but no longer in the stack file.
    RemovedFromConfig,
    /// The plan was made in destroy mode.
    DestroyRequested,
    /// A field that cannot change in place changed. `reason` comes from the spec's `immutable_reason`
    /// or says that changing the field forces replacement.
    ImmutableField { field: String, reason: String },
    /// A field that cannot change in place refers to an attribute of a resource that is created or
    /// replaced, so its value will change.
    KnockOn {
        upstream: String,
        attribute: String,
        field: String,
        reason: String,
        /// The upstream resource is created again (it was gone) rather than replaced.
        upstream_recreated: bool,
    },
    /// The resource lives in a parent that is replaced; deleting the parent deletes it.
    ParentReplaced {
        parent: String,
        child_type: String,
        /// The parent is created anew (it was gone, or its address changed) rather than replaced.
        parent_created: bool,
    },
    /// A previous apply failed halfway through creating or updating it.
    Tainted,
    /// It is in state but the cloud no longer has it.
    GoneFromCloud,
    /// The state recorded it with another type.
    TypeChanged { from: String, to: String },
}

impl ActionReason {
    /// A stable snake_case word for the JSON plan.
    pub fn kind(&self) -> &'static str {
        match self {
            ActionReason::NotInState => "not_in_state",
            ActionReason::RemovedFromConfig => "removed_from_config",
            ActionReason::DestroyRequested => "destroy_requested",
            ActionReason::ImmutableField { .. } => "immutable_field",
            ActionReason::KnockOn { .. } => "knock_on",
            ActionReason::ParentReplaced { .. } => "parent_replaced",
            ActionReason::Tainted => "tainted",
            ActionReason::GoneFromCloud => "gone_from_cloud",
            ActionReason::TypeChanged { .. } => "type_changed",
        }
    }

    /// Whether this reason forces a replacement (as opposed to explaining a create or delete).
    pub(crate) fn forces_replacement(&self) -> bool {
        matches!(
            self,
            ActionReason::ImmutableField { .. }
                | ActionReason::KnockOn { .. }
                | ActionReason::ParentReplaced { .. }
                | ActionReason::Tainted
                | ActionReason::TypeChanged { .. }
        )
    }

    /// One sentence for people.
    pub fn message(&self) -> String {
        match self {
            ActionReason::NotInState => "not in the state yet".to_string(),
            ActionReason::RemovedFromConfig => "no longer in the stack file".to_string(),
            ActionReason::DestroyRequested => "destroy was requested".to_string(),
            ActionReason::ImmutableField { reason, .. } => reason.clone(),
            ActionReason::KnockOn {
                upstream,
                attribute,
                reason,
                upstream_recreated,
                ..
            } => format!(
                "`{upstream}` is {}, so its `{attribute}` will be new; {reason}",
                if *upstream_recreated {
                    "created again"
                } else {
                    "replaced"
                }
            ),
            ActionReason::ParentReplaced {
                parent,
                child_type,
                parent_created: false,
            } => format!(
                "`{parent}` is replaced, and deleting it deletes the {}s in it",
                child_type.replace('_', " ")
            ),
            ActionReason::ParentReplaced {
                parent,
                child_type,
                parent_created: true,
            } => format!(
                "`{parent}` is created anew, so the {}s in it are created again",
                child_type.replace('_', " ")
            ),
            ActionReason::Tainted => {
                "a previous apply failed halfway through it, so it is not trusted".to_string()
            }
            ActionReason::GoneFromCloud => {
                "it was deleted outside stackform, so it is created again".to_string()
            }
            ActionReason::TypeChanged { from, to } => {
                format!("its type changed from `{from}` to `{to}`")
            }
        }
    }
}

impl fmt::Display for ActionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// The default explanation of an immutable field that has no `immutable_reason` in its spec.
pub(crate) fn default_immutable_reason(field: &str) -> String {
    format!("changing `{field}` forces replacement")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_words_and_predicates() {
        let dbc = Action::Replace(ReplaceOrder::DeleteBeforeCreate);
        let cbd = Action::Replace(ReplaceOrder::CreateBeforeDelete);
        let table = [
            (Action::NoOp, " ", "no-op"),
            (Action::Create, "+", "create"),
            (Action::Update, "~", "update"),
            (dbc, "-/+", "replace"),
            (cbd, "+/-", "replace"),
            (Action::Delete, "-", "delete"),
        ];
        for (action, symbol, word) in table {
            assert_eq!(action.symbol(), symbol);
            assert_eq!(action.to_string(), word);
        }
        assert!(dbc.is_replace() && dbc.creates() && dbc.deletes());
        assert!(Action::Create.creates() && !Action::Create.deletes());
        assert!(Action::Delete.deletes() && !Action::Delete.creates());
        assert!(Action::NoOp.is_noop() && !Action::Update.is_noop());
        assert_eq!(PlanMode::default(), PlanMode::Normal);
        assert_eq!(PlanMode::RefreshOnly.as_str(), "refresh-only");
    }

    #[test]
    fn reasons_explain_themselves() {
        let knock_on = ActionReason::KnockOn {
            upstream: "endpoint".into(),
            attribute: "identity.principal_id".into(),
            field: "principal_id".into(),
            reason: "a role assignment cannot change its principal".into(),
            upstream_recreated: false,
        };
        assert_eq!(
            knock_on.message(),
            "`endpoint` is replaced, so its `identity.principal_id` will be new; a role assignment cannot change its principal"
        );
        assert!(knock_on.forces_replacement());
        assert_eq!(knock_on.kind(), "knock_on");
        let parent = ActionReason::ParentReplaced {
            parent: "endpoint".into(),
            child_type: "online_deployment".into(),
            parent_created: false,
        };
        assert_eq!(
            parent.message(),
            "`endpoint` is replaced, and deleting it deletes the online deployments in it"
        );
        assert!(!ActionReason::NotInState.forces_replacement());
        assert_eq!(
            default_immutable_reason("kind"),
            "changing `kind` forces replacement"
        );
    }
}
