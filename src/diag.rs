//! Located diagnostics for user input: a message, the `file:line:col` it points at, the source line with
//! a marker under the offending text, and optional notes and a hint. Library code builds [`Diagnostic`]s;
//! only the CLI renders them. Rendering is a pure function of the diagnostic, so it can be snapshot-tested.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A source file as the user wrote it, shared by every diagnostic that points into it.
///
/// One pointer to one shared allocation: every value of a loaded stack keeps the location it was
/// written at, so a clone must cost no allocation and a location little room (100,000 resources
/// hold millions of them). Its fields are those of [`SourceText`], reached through `Deref`.
#[derive(Clone)]
pub struct SourceFile(Arc<SourceText>);

/// What a [`SourceFile`] shares.
pub struct SourceText {
    /// The path as it should be shown to the user (as given on the command line, or joined from it).
    pub path: PathBuf,
    pub text: Arc<str>,
    line_starts: Box<[usize]>,
}

impl std::ops::Deref for SourceFile {
    type Target = SourceText;

    fn deref(&self) -> &SourceText {
        &self.0
    }
}

impl std::fmt::Debug for SourceFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceFile")
            .field("path", &self.path)
            .field("text", &self.text)
            .field("line_starts", &self.line_starts)
            .finish()
    }
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile(Arc::new(SourceText {
            path: path.into(),
            text,
            line_starts: starts.into(),
        }))
    }

    pub(crate) fn display_path(&self) -> String {
        display_path(&self.path)
    }

    /// Byte offset of a 1-based line and 0-based character column, clamped to the text.
    pub(crate) fn offset(&self, line: usize, char_col: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        let line_text = rest.split('\n').next().unwrap_or("");
        start
            + line_text
                .char_indices()
                .nth(char_col)
                .map_or(line_text.len(), |(i, _)| i)
    }

    /// 1-based line and 1-based column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let col = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count())
            + 1;
        (line, col)
    }

    fn line_text(&self, line: usize) -> &str {
        let Some(&start) = self.line_starts.get(line - 1) else {
            return "";
        };
        self.text[start..]
            .split('\n')
            .next()
            .unwrap_or("")
            .trim_end_matches('\r')
    }
}

/// Shows paths relative to the current folder when they are inside it, as compilers do.
pub(crate) fn display_path(path: &Path) -> String {
    if let Ok(cwd) = std::env::current_dir()
        && let Ok(rel) = path.strip_prefix(&cwd)
    {
        return rel.display().to_string();
    }
    path.display().to_string()
}

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start,
            end: end.max(start),
        }
    }
}

/// A place in a file with a short label, for secondary notes ("first defined here").
#[derive(Debug, Clone)]
pub struct Label {
    pub source: SourceFile,
    pub span: Span,
    pub text: String,
}

/// One problem in user input.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub message: String,
    pub source: SourceFile,
    pub span: Span,
    /// Short text printed under the marker.
    pub label: String,
    pub notes: Vec<Label>,
    /// Extra free-text lines (e.g. a printed cycle).
    pub details: Vec<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(source: &SourceFile, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            source: source.clone(),
            span,
            label: String::new(),
            notes: Vec::new(),
            details: Vec::new(),
            help: None,
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn maybe_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    pub(crate) fn note(mut self, source: &SourceFile, span: Span, text: impl Into<String>) -> Self {
        self.notes.push(Label {
            source: source.clone(),
            span,
            text: text.into(),
        });
        self
    }

    /// `path:line:col` of the primary span (1-based line and column).
    pub fn location(&self) -> String {
        let (line, col) = self.source.line_col(self.span.start);
        format!("{}:{line}:{col}", self.source.display_path())
    }

    /// 1-based line and column of the primary span.
    pub fn line_col(&self) -> (usize, usize) {
        self.source.line_col(self.span.start)
    }

    fn sort_key(&self) -> (PathBuf, usize) {
        (self.source.path.clone(), self.span.start)
    }
}

/// Sorts diagnostics by file and position, as they should be shown.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by_key(Diagnostic::sort_key);
}

/// Terminal styling for [`render`]; `plain()` for files, tests and non-terminals.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Renders diagnostics rustc-style:
///
/// ```text
/// error: unknown field `skuu` in storage_account `store`
///   --> stack.yaml:12:5
///    |
/// 12 |     skuu: Standard_LRS
///    |     ^^^^ not a field of storage_account
///    |
///    = help: did you mean `sku`?
/// ```
pub fn render(diags: &[Diagnostic], style: Style) -> String {
    render_as(diags, style, ("error", "1;31"))
}

/// Renders diagnostics as [`render`] does, headed `warning:` (for findings that change nothing).
pub fn render_warnings(diags: &[Diagnostic], style: Style) -> String {
    render_as(diags, style, ("warning", "1;33"))
}

fn render_as(diags: &[Diagnostic], style: Style, heading: (&str, &str)) -> String {
    let mut out = String::new();
    for d in diags {
        render_one(&mut out, d, style, heading);
        out.push('\n');
    }
    out
}

fn render_one(out: &mut String, d: &Diagnostic, style: Style, (word, color): (&str, &str)) {
    let _ = writeln!(
        out,
        "{}: {}",
        style.paint(color, word),
        style.paint("1", &d.message)
    );
    let (line, _) = d.line_col();
    let gutter = line.max(
        d.notes
            .iter()
            .map(|n| n.source.line_col(n.span.start).0)
            .max()
            .unwrap_or(0),
    );
    let width = gutter.to_string().len();
    let _ = writeln!(
        out,
        "{:width$}{} {}",
        "",
        style.paint("1;34", "-->"),
        d.location()
    );
    snippet(out, &d.source, d.span, &d.label, width, style, '^');
    for note in &d.notes {
        let (nl, nc) = note.source.line_col(note.span.start);
        let _ = writeln!(
            out,
            "{:width$} {} {}:{nl}:{nc}",
            "",
            style.paint("1;34", ":::"),
            note.source.display_path()
        );
        snippet(out, &note.source, note.span, &note.text, width, style, '-');
    }
    let bar = style.paint("1;34", "|");
    for detail in &d.details {
        let _ = writeln!(out, "{:width$} {bar}   {detail}", "");
    }
    if let Some(help) = &d.help {
        let _ = writeln!(
            out,
            "{:width$} {} help: {help}",
            "",
            style.paint("1;34", "=")
        );
    }
}

fn snippet(
    out: &mut String,
    src: &SourceFile,
    span: Span,
    label: &str,
    width: usize,
    style: Style,
    mark: char,
) {
    let (line, col) = src.line_col(span.start);
    let text = src.line_text(line);
    let bar = style.paint("1;34", "|");
    let _ = writeln!(out, "{:width$} {bar}", "");
    let _ = writeln!(
        out,
        "{} {bar} {}",
        style.paint("1;34", &format!("{line:>width$}")),
        printable(text)
    );
    // Underline the span on its first line (at least one character).
    let line_chars = text.chars().count();
    let (end_line, end_col) = src.line_col(span.end);
    let len = if end_line == line {
        end_col.saturating_sub(col)
    } else {
        line_chars + 1 - col.min(line_chars + 1)
    };
    let marker: String = std::iter::repeat_n(mark, len.max(1)).collect();
    let pad = " ".repeat(col.saturating_sub(1));
    let painted = style.paint(
        if mark == '^' { "1;31" } else { "1;34" },
        &format!("{marker} {label}"),
    );
    let _ = writeln!(out, "{:width$} {bar} {pad}{}", "", painted.trim_end());
}

/// Replaces control characters so a hostile file cannot drive the terminal.
fn printable(text: &str) -> String {
    const MAX: usize = 200;
    let mut s: String = text
        .chars()
        .take(MAX)
        .map(|c| {
            if c == '\t' {
                ' '
            } else if c.is_control() {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    if text.chars().count() > MAX {
        s.push('…');
    }
    s
}

/// Suggests the closest candidate to `wrong` ("did you mean"), if one is close enough.
pub(crate) fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let wrong_l = wrong.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&wrong_l, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_line_and_marker() {
        let src = SourceFile::new("stack.yaml", "resources:\n  store:\n    skuu: x\n");
        let start = src.offset(3, 4);
        let d = Diagnostic::new(&src, Span::new(start, start + 4), "unknown field `skuu`")
            .label("not a field")
            .help("did you mean `sku`?");
        let text = render(&[d], Style::default());
        assert_eq!(
            text,
            "error: unknown field `skuu`\n --> stack.yaml:3:5\n  |\n3 |     skuu: x\n  |     ^^^^ not a field\n  = help: did you mean `sku`?\n\n"
        );
    }

    #[test]
    fn line_col_round_trips_with_multibyte_text() {
        let src = SourceFile::new("f", "a: é\nb: ü x\n");
        let off = src.offset(2, 5);
        assert_eq!(&src.text[off..off + 1], "x");
        assert_eq!(src.line_col(off), (2, 6));
    }

    #[test]
    fn did_you_mean_finds_close_names_only() {
        assert_eq!(
            did_you_mean("skuu", ["sku", "kind", "name"]).as_deref(),
            Some("did you mean `sku`?")
        );
        assert_eq!(did_you_mean("zzzzzz", ["sku", "kind"]), None);
    }

    #[test]
    fn control_characters_are_not_echoed() {
        let src = SourceFile::new("f", "a: \u{1b}[31mred\n");
        let d = Diagnostic::new(&src, Span::new(0, 1), "bad");
        assert!(!render(&[d], Style::default()).contains('\u{1b}'));
    }
}
