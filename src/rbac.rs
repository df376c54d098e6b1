//! Azure RBAC permission arithmetic on plain strings: whether an action such as
//! `Microsoft.Authorization/roleAssignments/write` is granted by one permission entry (`actions` minus
//! `notActions`, each an action pattern where `*` matches any run of characters, compared without
//! regard to case, as Azure documents for role definitions:
//! <https://learn.microsoft.com/azure/role-based-access-control/role-definitions#actions>).
//!
//! The one rule the local cloud (answering "Permissions - List" and checking role writes) and the
//! preflight (reading that answer) share. A pure leaf: it imports nothing of the crate, never panics
//! and decides nothing about which roles exist.

/// The action that creates a role assignment.
pub(crate) const ROLE_ASSIGNMENT_WRITE: &str = "Microsoft.Authorization/roleAssignments/write";

/// Whether `pattern` (with `*` wildcards) matches `action`, case-insensitively.
pub(crate) fn matches(pattern: &str, action: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let a = action.to_ascii_lowercase();
    let mut parts = p.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = a.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole action must have matched the prefix.
        return rest.is_empty();
    };
    for m in middle {
        match rest.find(m) {
            Some(i) => rest = &rest[i + m.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Whether one permission entry grants `action`: some `actions` pattern matches and no `notActions`
/// pattern does.
pub(crate) fn grants<A: AsRef<str>, N: AsRef<str>>(
    actions: &[A],
    not_actions: &[N],
    action: &str,
) -> bool {
    actions.iter().any(|p| matches(p.as_ref(), action))
        && !not_actions.iter().any(|p| matches(p.as_ref(), action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_any_run_case_insensitively() {
        assert!(matches("*", ROLE_ASSIGNMENT_WRITE));
        assert!(matches("Microsoft.Authorization/*", ROLE_ASSIGNMENT_WRITE));
        assert!(matches(
            "Microsoft.Authorization/*/Write",
            ROLE_ASSIGNMENT_WRITE
        ));
        assert!(matches("*/read", "Microsoft.Storage/storageAccounts/read"));
        assert!(!matches("*/read", ROLE_ASSIGNMENT_WRITE));
        assert!(matches(
            ROLE_ASSIGNMENT_WRITE,
            &ROLE_ASSIGNMENT_WRITE.to_uppercase()
        ));
        assert!(!matches(
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/writeX"
        ));
        assert!(!matches("Microsoft.Storage/*", ROLE_ASSIGNMENT_WRITE));
        assert!(!matches("", ROLE_ASSIGNMENT_WRITE));
    }

    #[test]
    fn not_actions_take_away_what_actions_give() {
        // Contributor (Microsoft Learn, "Azure built-in roles"): `*` without Microsoft.Authorization writes.
        let contributor_not = [
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
        ];
        assert!(!grants(&["*"], &contributor_not, ROLE_ASSIGNMENT_WRITE));
        assert!(grants(
            &["*"],
            &contributor_not,
            "Microsoft.Storage/storageAccounts/write"
        ));
        // User Access Administrator: `*/read` and `Microsoft.Authorization/*`.
        let none: [&str; 0] = [];
        assert!(grants(
            &["*/read", "Microsoft.Authorization/*"],
            &none,
            ROLE_ASSIGNMENT_WRITE
        ));
    }
}
