//! The drift report as JUnit XML (`stackform drift --format junit`), the format CI systems read test
//! results in: one test suite for the stack, one test case per resource in state, and a `<failure>`
//! in the case of each resource that changed outside stackform (or was deleted), so a CI page shows
//! each drifted resource as a failed test.
//!
//! A pure function of the drift found: it never reads state or the cloud, and never writes a value
//! the plan hides (sensitive values are `(sensitive)` here as everywhere). Every text is escaped for
//! XML, and characters XML 1.0 cannot hold are replaced, so the document is always well-formed.
use std::fmt::Write as _;

use crate::plan::{AttributeChange, Drift, PlanValue};

/// The JUnit document for a drift check of `stack`: `checked` are the resources in state (address,
/// type) in state order, `drift` what changed among them.
pub(crate) fn render_junit(stack: &str, checked: &[(String, String)], drift: &[Drift]) -> String {
    // Drifted resources not in `checked` (never the case for a refresh of state) still get a case.
    let extra = drift
        .iter()
        .filter(|d| !checked.iter().any(|(a, _)| *a == d.address))
        .map(|d| (d.address.clone(), d.type_name.clone()));
    let cases: Vec<(String, String)> = checked.iter().cloned().chain(extra).collect();
    let (tests, failures) = (cases.len(), drift.len());
    let suite = format!("stackform drift: {stack}");
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\">",
        escape(&suite)
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">",
        escape(&suite)
    );
    for (address, type_name) in cases {
        let _ = write!(
            out,
            "    <testcase name=\"{}\" classname=\"{}\"",
            escape(&address),
            escape(&format!("{stack}.{type_name}"))
        );
        match drift.iter().find(|d| d.address == address) {
            None => out.push_str("/>\n"),
            Some(d) => {
                out.push_str(">\n");
                let _ = writeln!(
                    out,
                    "      <failure type=\"drift\" message=\"{}\">{}</failure>",
                    escape(&message(d)),
                    escape(&details(d))
                );
                out.push_str("    </testcase>\n");
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// One line on what happened to the resource.
fn message(d: &Drift) -> String {
    if d.gone {
        format!(
            "{} ({}) was deleted outside stackform",
            d.address, d.type_name
        )
    } else {
        format!(
            "{} ({}) changed outside stackform: {}",
            d.address,
            d.type_name,
            d.attributes
                .iter()
                .map(|a| a.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Each changed attribute as `path: recorded → live`.
fn details(d: &Drift) -> String {
    if d.gone {
        return "deleted outside stackform; `stackform plan` shows how apply would re-create it\n"
            .to_string();
    }
    let mut out = String::new();
    for a in &d.attributes {
        let _ = writeln!(
            out,
            "{}: {} → {}",
            a.path,
            value(a, a.before.as_deref()),
            value(a, Some(&a.after))
        );
    }
    out
}

fn value(a: &AttributeChange, v: Option<&PlanValue>) -> String {
    match v {
        _ if a.sensitive => "(sensitive)".to_string(),
        None => "(none)".to_string(),
        Some(PlanValue::Sensitive) => "(sensitive)".to_string(),
        Some(v) => v.to_json().to_string(),
    }
}

/// Text as XML character data or an attribute value: the five markup characters as entities, and
/// the characters XML 1.0 cannot hold (controls other than tab, newline and carriage return) as
/// U+FFFD.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn changed(
        address: &str,
        path: &str,
        before: serde_json::Value,
        after: serde_json::Value,
    ) -> Drift {
        Drift {
            address: address.into(),
            type_name: "blob".into(),
            gone: false,
            attributes: vec![AttributeChange::new(
                path.to_string(),
                Some(PlanValue::Known(before)),
                PlanValue::Known(after),
            )],
        }
    }

    #[test]
    fn markup_and_control_characters_are_escaped() {
        assert_eq!(
            escape("a<b>&\"c\"'d'\u{1}\te"),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;\u{FFFD}\te"
        );
    }

    #[test]
    fn each_drifted_resource_is_a_failed_case_and_the_others_pass() {
        let checked = vec![
            ("store".to_string(), "storage_account".to_string()),
            ("greeting".to_string(), "blob".to_string()),
        ];
        let drift = vec![changed(
            "greeting",
            "metadata.note",
            json!("<a & b>"),
            json!("x\u{7}y"),
        )];
        let xml = render_junit("demo", &checked, &drift);
        assert!(
            xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
            "{xml}"
        );
        assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
        assert!(
            xml.contains("<testcase name=\"store\" classname=\"demo.storage_account\"/>"),
            "{xml}"
        );
        assert!(
            xml.contains("message=\"greeting (blob) changed outside stackform: metadata.note\""),
            "{xml}"
        );
        assert!(
            xml.contains("metadata.note: &quot;&lt;a &amp; b&gt;&quot; → &quot;x\\u0007y&quot;"),
            "{xml}"
        );
        let gone = Drift {
            address: "store".into(),
            type_name: "storage_account".into(),
            gone: true,
            attributes: Vec::new(),
        };
        let xml = render_junit("demo", &checked, &[gone]);
        assert!(
            xml.contains("store (storage_account) was deleted outside stackform"),
            "{xml}"
        );
    }
}
