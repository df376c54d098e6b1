//! The syntax of an ARM api-version (`2025-01-01`, `2024-01-01-preview`): the one check the stack
//! reader (`cloud.api_versions`) and the local cloud (the `api-version` query parameter) share.
//!
//! A pure function on a string: it never panics, never decides which versions exist (that is the
//! specs' and the service's business) and never writes a message; each caller words its own.

/// Whether a text is `YYYY-MM-DD`, optionally followed by `-preview`.
pub(crate) fn is_well_formed(v: &str) -> bool {
    let date = v.strip_suffix("-preview").unwrap_or(v);
    let b = date.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_with_an_optional_preview_suffix() {
        assert!(is_well_formed("2022-04-01"));
        assert!(is_well_formed("2024-01-01-preview"));
        for bad in ["2022-4-1", "latest", "", "2022-04-01-beta", "2022/04/01"] {
            assert!(!is_well_formed(bad), "{bad:?}");
        }
    }
}
