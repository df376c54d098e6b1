//! A plan for people: Terraform-like symbols (`+ ~ -/+ -`), attribute-level differences, multi-line
//! text diffed line by line, sensitive values as `(sensitive)`, drift in its own section, and the
//! summary line. A pure function from a [`Plan`] to a `String`; colour only when the caller asks
//! (the CLI decides from `NO_COLOR` and whether stdout is a terminal).
use std::fmt::Write as _;

use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use crate::plan::{
    Action, ActionReason, AttributeChange, Change, ContentChange, Drift, MapChange, OutputChange,
    Plan, PlanMode, PlanValue,
};

/// How to render.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RenderOptions {
    /// Use ANSI colours (green `+`, yellow `~`, red `-`).
    pub color: bool,
}

const INDENT: &str = "      ";
/// The symbol of an adopted object (`import:`), as Terraform shows a read.
const IMPORT: &str = " <=";
const DIFF_INDENT: &str = "        ";
/// Unchanged lines shown around each changed block of a text diff.
const CONTEXT_LINES: usize = 3;

#[derive(Clone, Copy)]
enum Paint {
    Green,
    Yellow,
    Red,
    Bold,
    Dim,
}

struct Painter {
    color: bool,
}

impl Painter {
    fn paint(&self, paint: Paint, text: &str) -> String {
        if !self.color || text.is_empty() {
            return text.to_string();
        }
        let code = match paint {
            Paint::Green => "32",
            Paint::Yellow => "33",
            Paint::Red => "31",
            Paint::Bold => "1",
            Paint::Dim => "2",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// The action symbol, right-aligned in three columns.
    fn symbol(&self, action: Action) -> String {
        let sym = action.symbol();
        let pad = " ".repeat(3usize.saturating_sub(sym.chars().count()));
        let painted = match action {
            Action::Create => self.paint(Paint::Green, sym),
            Action::Update => self.paint(Paint::Yellow, sym),
            Action::Delete => self.paint(Paint::Red, sym),
            Action::Replace(_) => sym
                .chars()
                .map(|c| match c {
                    '-' => self.paint(Paint::Red, "-"),
                    '+' => self.paint(Paint::Green, "+"),
                    other => other.to_string(),
                })
                .collect(),
            Action::NoOp => sym.to_string(),
        };
        format!("{pad}{painted}")
    }
}

/// Renders the whole plan: drift, the legend, each change, output changes and the summary line.
pub(crate) fn render_plan(plan: &Plan, opts: &RenderOptions) -> String {
    let p = Painter { color: opts.color };
    let mut out = String::new();
    if !plan.drift.is_empty() {
        out.push_str(&render_drift_with(&plan.drift, &p));
        if plan.mode == PlanMode::Normal {
            out.push_str(
                "Unless the stack file is changed to match, applying this plan undoes these changes.\n\n",
            );
        }
    }
    let visible: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| !c.action.is_noop())
        .collect();
    let maps: Vec<&MapChange> = plan.maps.iter().filter(|m| !m.action.is_noop()).collect();
    for m in &plan.moved {
        let _ = writeln!(
            out,
            "  {}",
            p.paint(Paint::Dim, &format!("# {} has moved to {}", m.from, m.to))
        );
    }
    if !plan.moved.is_empty() {
        out.push('\n');
    }
    if !visible.is_empty() || !maps.is_empty() || !plan.imports.is_empty() {
        out.push_str("Resource actions are shown with these symbols:\n");
        let mut symbols = legend(&visible);
        if !maps.is_empty() && !symbols.iter().any(|(a, _)| *a == Action::Update) {
            symbols.push((Action::Update, "update in place"));
        }
        for (action, word) in symbols {
            let _ = writeln!(out, "{} {word}", p.symbol(action));
        }
        if !plan.imports.is_empty() {
            let _ = writeln!(out, "{} import", p.paint(Paint::Green, IMPORT));
        }
        out.push('\n');
        out.push_str(&p.paint(
            Paint::Bold,
            "stackform will perform these actions, in this order:",
        ));
        out.push_str("\n\n");
        for import in &plan.imports {
            let type_name = plan
                .change(&import.address)
                .map_or("", |c| c.type_name.as_str());
            let _ = writeln!(
                out,
                "{} resource {} ({type_name})\n{INDENT}{}",
                p.paint(Paint::Green, IMPORT),
                p.paint(Paint::Bold, &quoted(&import.address)),
                p.paint(Paint::Dim, &format!("# imported from {}", import.id)),
            );
            out.push('\n');
        }
        for change in visible {
            out.push_str(&render_change_with(change, &p));
            out.push('\n');
        }
        for m in maps {
            out.push_str(&render_map_change(m, &p));
        }
        if !plan.maps.iter().all(|m| m.action.is_noop()) {
            out.push('\n');
        }
    }
    let outputs: Vec<&OutputChange> = plan
        .outputs
        .iter()
        .filter(|o| !o.action.is_noop())
        .collect();
    if !outputs.is_empty() && plan.mode != PlanMode::RefreshOnly {
        out.push_str(&p.paint(Paint::Bold, "Changes to outputs:"));
        out.push('\n');
        for o in outputs {
            out.push_str(&render_output(o, &p));
        }
        out.push('\n');
    }
    out.push_str(&p.paint(Paint::Bold, &summary_line(plan)));
    out.push('\n');
    out
}

/// A map as `{blue: 50, green: 50}` (`{}` when empty).
fn map_text(map: &std::collections::BTreeMap<String, u64>) -> String {
    let entries: Vec<String> = map.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{{{}}}", entries.join(", "))
}

/// The map after apply, or `(known after apply)`.
fn after_text(m: &MapChange) -> String {
    m.after
        .as_ref()
        .map_or_else(|| String::from("(known after apply)"), map_text)
}

/// One owner's map change: `~ endpoint traffic {blue: 100} → {blue: 50, green: 50}`, with the interim
/// map when replaced members hold a share, and what the update waits for.
pub(crate) fn map_change_line(m: &MapChange) -> String {
    match &m.interim {
        Some(interim) => format!(
            "{} {} {} → {} (while {} {} replaced) → {}",
            m.address,
            m.field,
            map_text(&m.before),
            map_text(interim),
            m.releases.join(", "),
            if m.releases.len() == 1 { "is" } else { "are" },
            after_text(m),
        ),
        None => format!(
            "{} {} {} → {}",
            m.address,
            m.field,
            map_text(&m.before),
            after_text(m)
        ),
    }
}

fn render_map_change(m: &MapChange, p: &Painter) -> String {
    let mut out = format!("{} {}\n", p.symbol(m.action), map_change_line(m));
    if !m.releases.is_empty() && m.interim.is_none() {
        let _ = writeln!(
            out,
            "{INDENT}{}",
            p.paint(
                Paint::Dim,
                &format!("# set before deleting {}", m.releases.join(", "))
            )
        );
    }
    out
}

/// The closing line: `Plan: 3 to add, 1 to change, 0 to destroy.`, or what "nothing" means in the
/// plan's mode.
pub(crate) fn summary_line(plan: &Plan) -> String {
    let s = plan.summary;
    match plan.mode {
        PlanMode::RefreshOnly if plan.drift.is_empty() => {
            "No drift. The cloud matches the last applied state.".to_string()
        }
        PlanMode::RefreshOnly => format!(
            "Drift: {} {} changed outside stackform.",
            s.drifted,
            if s.drifted == 1 {
                "resource"
            } else {
                "resources"
            }
        ),
        PlanMode::Destroy if !plan.has_changes() => {
            "No changes. There is nothing in the state to destroy.".to_string()
        }
        PlanMode::Normal if !plan.has_changes() && !plan.moved.is_empty() => format!(
            "No changes. Your infrastructure matches the configuration; apply records the new {}.",
            if plan.moved.len() == 1 {
                "address"
            } else {
                "addresses"
            }
        ),
        PlanMode::Normal if !plan.has_changes() => {
            "No changes. Your infrastructure matches the configuration.".to_string()
        }
        PlanMode::Normal if !plan.imports.is_empty() => format!(
            "Plan: {} to import, {} to add, {} to change, {} to destroy.",
            plan.imports.len(),
            s.add,
            s.change,
            s.destroy
        ),
        PlanMode::Normal | PlanMode::Destroy => format!(
            "Plan: {} to add, {} to change, {} to destroy.",
            s.add, s.change, s.destroy
        ),
    }
}

fn legend(changes: &[&Change]) -> Vec<(Action, &'static str)> {
    use crate::plan::ReplaceOrder::{CreateBeforeDelete, DeleteBeforeCreate};
    let all = [
        (Action::Create, "create"),
        (Action::Update, "update in place"),
        (Action::Delete, "delete"),
        (
            Action::Replace(DeleteBeforeCreate),
            "delete, then create the replacement",
        ),
        (
            Action::Replace(CreateBeforeDelete),
            "create the replacement, then delete",
        ),
    ];
    all.into_iter()
        .filter(|(a, _)| changes.iter().any(|c| c.action == *a))
        .collect()
}

/// One resource's block: header, reasons, attributes.
#[cfg(test)]
pub(crate) fn render_change(change: &Change, opts: &RenderOptions) -> String {
    render_change_with(change, &Painter { color: opts.color })
}

fn render_change_with(change: &Change, p: &Painter) -> String {
    let mut out = header(change.action, &change.address, &change.type_name, p);
    for reason in &change.reasons {
        if let Some(line) = reason_line(reason) {
            let _ = writeln!(out, "{INDENT}{}", p.paint(Paint::Dim, &line));
        }
    }
    out.push_str(&render_attributes(&change.attributes, change.action, p));
    out
}

fn header(action: Action, address: &str, type_name: &str, p: &Painter) -> String {
    format!(
        "{} resource {} ({type_name})\n",
        p.symbol(action),
        p.paint(Paint::Bold, &quoted(address))
    )
}

/// `"store"`; an instance address (`blue["a"]`) has quotes of its own and is shown as it is.
fn quoted(address: &str) -> String {
    if address.contains('[') {
        address.to_string()
    } else {
        format!("\"{address}\"")
    }
}

/// The `# …` line explaining a reason; `None` for reasons the symbol already says.
fn reason_line(reason: &ActionReason) -> Option<String> {
    match reason {
        ActionReason::NotInState | ActionReason::DestroyRequested => None,
        ActionReason::RemovedFromConfig | ActionReason::GoneFromCloud => {
            Some(format!("# {}", reason.message()))
        }
        r if r.forces_replacement() => Some(format!("# forces replacement: {}", r.message())),
        r => Some(format!("# {}", r.message())),
    }
}

fn render_attributes(attrs: &[AttributeChange], action: Action, p: &Painter) -> String {
    let width = attrs
        .iter()
        .map(|a| a.path.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for a in attrs {
        let pad = " ".repeat(width - a.path.chars().count());
        let name = format!("{}:{pad}", a.path);
        if let Some(block) = multiline(a, p) {
            let _ = writeln!(out, "{INDENT}{name} {}", block.0);
            out.push_str(&block.1);
            continue;
        }
        let value = match (a.before.as_deref(), action) {
            (_, Action::Create) => value_text(&a.after),
            (None, _) => format!("null → {}", value_text(&a.after)),
            (Some(before), _) => format!("{} → {}", value_text(before), value_text(&a.after)),
        };
        let suffix = if a.forces_replacement && action.is_replace() {
            format!("  {}", p.paint(Paint::Dim, "# forces replacement"))
        } else {
            String::new()
        };
        let _ = writeln!(out, "{INDENT}{name} {value}{suffix}");
    }
    out
}

/// A multi-line value (or a path whose content changed) as a first line and a line diff.
fn multiline(a: &AttributeChange, p: &Painter) -> Option<(String, String)> {
    if let Some(content) = a.content.as_deref() {
        return Some(content_block(a, content, p));
    }
    let after = match &a.after {
        PlanValue::Known(Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let before = match a.before.as_deref() {
        Some(PlanValue::Known(Value::String(s))) => Some(s.as_str()),
        _ => None,
    };
    let multi = |s: Option<&str>| s.is_some_and(|s| s.trim_end_matches('\n').contains('\n'));
    if a.sensitive || !(multi(after) || multi(before)) {
        return None;
    }
    let old = before.unwrap_or("");
    let new = match &a.after {
        PlanValue::Known(Value::Null) => "",
        _ => after?,
    };
    let first = if a.before.is_none() {
        "(text)".to_string()
    } else {
        "(text changed)".to_string()
    };
    Some((first, text_diff(old, new, p)))
}

fn content_block(a: &AttributeChange, c: &ContentChange, p: &Painter) -> (String, String) {
    let shown = match (a.before.as_deref(), &a.after) {
        (Some(b), PlanValue::Known(_)) if value_text(b) != value_text(&a.after) => {
            format!("{} → {}", value_text(b), value_text(&a.after))
        }
        _ => value_text(&a.after),
    };
    let first = format!("{shown} (content changed)");
    let body = match (&c.before_text, &c.after_text) {
        (Some(old), Some(new)) => text_diff(old, new, p),
        _ => format!(
            "{DIFF_INDENT}sha256 {} → {}\n",
            short_hash(c.before_sha256.as_deref()),
            short_hash(c.after_sha256.as_deref())
        ),
    };
    (first, body)
}

fn short_hash(h: Option<&str>) -> String {
    match h {
        Some(h) => h.chars().take(12).collect(),
        None => "(unknown)".to_string(),
    }
}

/// A line diff of two texts, indented for a plan, with a little context; runs of unchanged lines
/// between changes are elided.
#[cfg(test)]
pub(crate) fn line_diff(old: &str, new: &str, opts: &RenderOptions) -> String {
    text_diff(old, new, &Painter { color: opts.color })
}

fn text_diff(old: &str, new: &str, p: &Painter) -> String {
    let diff = TextDiff::from_lines(old, new);
    let mut out = String::new();
    for (i, group) in diff.grouped_ops(CONTEXT_LINES).iter().enumerate() {
        if i > 0 {
            let _ = writeln!(out, "{DIFF_INDENT}  ...");
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let text = change.value().trim_end_matches(['\n', '\r']);
                let line = match change.tag() {
                    ChangeTag::Equal => format!("  {text}"),
                    ChangeTag::Delete => p.paint(Paint::Red, &format!("- {text}")),
                    ChangeTag::Insert => p.paint(Paint::Green, &format!("+ {text}")),
                };
                let _ = writeln!(out, "{DIFF_INDENT}{}", line.trim_end());
            }
        }
    }
    out
}

/// A value as shown: JSON, unknowns as `(known after apply)`, secrets as `(sensitive)`.
pub(crate) fn value_text(v: &PlanValue) -> String {
    match v {
        PlanValue::Known(v) => v.to_string(),
        PlanValue::Unknown => "(known after apply)".to_string(),
        PlanValue::Sensitive => crate::plan::SENSITIVE_TEXT.to_string(),
        PlanValue::List(items) => format!(
            "[{}]",
            items.iter().map(value_text).collect::<Vec<_>>().join(", ")
        ),
        PlanValue::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), value_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn render_output(o: &OutputChange, p: &Painter) -> String {
    let value = match (&o.before, o.action) {
        (Some(b), Action::Update) => format!("{} → {}", value_text(b), value_text(&o.after)),
        (Some(b), Action::Delete) => value_text(b),
        _ => value_text(&o.after),
    };
    format!("{} {}: {value}\n", p.symbol(o.action), o.name)
}

/// The drift section on its own (what `stackform drift` prints).
pub(crate) fn render_drift(drift: &[Drift], opts: &RenderOptions) -> String {
    render_drift_with(drift, &Painter { color: opts.color })
}

fn render_drift_with(drift: &[Drift], p: &Painter) -> String {
    let mut out = p.paint(
        Paint::Bold,
        "Objects changed outside stackform since the last apply:",
    );
    out.push_str("\n\n");
    for d in drift {
        if d.gone {
            out.push_str(&header(Action::Delete, &d.address, &d.type_name, p));
            let _ = writeln!(
                out,
                "{INDENT}{}",
                p.paint(Paint::Dim, "# deleted outside stackform")
            );
        } else {
            out.push_str(&header(Action::Update, &d.address, &d.type_name, p));
            out.push_str(&render_attributes(&d.attributes, Action::Update, p));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
