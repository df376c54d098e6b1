//! The loader's check of a role a stack names (a field compared as a role, `compare: role`): a
//! built-in role name, a role definition GUID or a full `roleDefinitionId`. Anything else is refused
//! at `validate` with the closest built-in name, instead of failing mid-apply after the resources
//! before it were created. Reads only the embedded role table.
use super::value::{Ctx, Val};
use crate::diag::{Diagnostic, did_you_mean};
use crate::specs::roles::{builtin_names, role_guid};

impl Ctx<'_> {
    /// `Some(())` when `s` names a role; otherwise reports it and returns `None`.
    pub(super) fn check_role(&mut self, owner: &str, path: &str, s: &str, val: &Val) -> Option<()> {
        if role_guid(s).is_some() {
            return Some(());
        }
        let names: Vec<&str> = builtin_names().collect();
        let help = did_you_mean(s, names.iter().copied()).unwrap_or_else(|| {
            format!(
                "use a built-in role ({}), a role definition GUID, or a full roleDefinitionId",
                names.join(", ")
            )
        });
        let shown = if val.sensitive {
            "(sensitive)".to_string()
        } else {
            format!("`{s}`")
        };
        self.error(
            Diagnostic::new(
                &val.loc.source,
                val.span(),
                format!("unknown role {shown} for `{path}` in {owner}"),
            )
            .label("not a built-in role, a GUID or a roleDefinitionId")
            .help(help),
        );
        None
    }
}
