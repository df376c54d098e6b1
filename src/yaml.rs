//! A YAML reader that keeps the source span of every value, built on `saphyr-parser`'s event stream.
//!
//! Why not serde: every later check (unknown field, dangling reference, cycle) must point at
//! `file:line:col`, so values carry spans. Why events: the reader enforces its own budgets while it
//! builds the tree, so a hostile file (alias bomb, deep nesting, huge input) is refused in bounded time and
//! memory instead of being expanded first. It never panics on any input.
//!
//! Scalars follow the YAML 1.2 core schema: plain `null`/`~`/empty, `true`/`false`, integers, floats;
//! quoted and block scalars are strings. Duplicate mapping keys are errors (YAML says keys are unique; a
//! silent "last one wins" hides mistakes).
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::diag::{Diagnostic, SourceFile, Span};

/// The default size limit of a file: 64 MiB. A stack of 100,000 resources of the usual shape is
/// about 20 MiB, so this leaves room for twice that and more; a larger file is refused unless the
/// limit is raised (`--max-file-size`). The limit also bounds what the file's own values cost (each
/// value takes at least a byte or two of text).
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Limits that keep a hostile file from exhausting memory or time.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Size of the text; bounds the values the file itself spells out.
    pub max_bytes: usize,
    pub max_depth: usize,
    /// Values that aliases (`*name`) add to the tree, each alias counted at the expanded size of
    /// its anchor. The file's own values are not counted here: its size bounds them. This is what
    /// refuses an alias bomb ("billion laughs"), whose few bytes expand exponentially.
    pub max_alias_nodes: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_bytes: DEFAULT_MAX_BYTES,
            max_depth: 64,
            max_alias_nodes: 1_000_000,
        }
    }
}

impl Budget {
    /// The default budget with another size limit.
    pub fn with_max_bytes(max_bytes: usize) -> Budget {
        Budget {
            max_bytes,
            ..Budget::default()
        }
    }
}

/// A YAML value with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Seq(Vec<Node>),
    /// Keys are strings with their own spans; order is the file's order; keys are unique.
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

impl Node {
    pub fn kind(&self) -> &'static str {
        self.value.kind()
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Looks up a key in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// Converts to JSON, dropping spans (for data that needs no diagnostics, such as the embedded specs).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::String(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    fn count(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::count).sum(),
            Value::Map(entries) => entries.iter().map(|(_, v)| 1 + v.count()).sum(),
            _ => 0,
        }
    }
}

impl Value {
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "number",
            Value::String(_) => "string",
            Value::Seq(_) => "list",
            Value::Map(_) => "mapping",
        }
    }
}

/// Parses one YAML document. Returns every independent problem found (duplicate keys are all reported);
/// a syntax error or an exceeded budget stops the parse.
pub fn parse(src: &SourceFile, budget: Budget) -> Result<Node, Vec<Diagnostic>> {
    if src.text.len() > budget.max_bytes {
        let d = Diagnostic::new(
            src,
            Span::new(0, 0),
            format!(
                "file is too large: {} bytes (the limit is {} bytes)",
                src.text.len(),
                budget.max_bytes
            ),
        )
        .label("refused before parsing")
        .help("a stack file this large is almost certainly not a stack file");
        return Err(vec![d]);
    }
    if let Some(pos) = src.text.find('\0') {
        let d = Diagnostic::new(
            src,
            Span::new(pos, pos + 1),
            "file contains a NUL byte; it is not a text YAML file",
        )
        .label("binary data");
        return Err(vec![d]);
    }
    Builder::new(src, budget).run()
}

enum Frame {
    Seq {
        start: Span,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: Span,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        pending_key: Option<PendingKey>,
        /// Position of each key in `entries`, built once the mapping is large enough for a linear
        /// search to matter (the `resources:` of a large stack), so checking duplicates stays linear.
        index: Option<HashMap<String, usize>>,
    },
}

/// The key read before its value: kept, or dropped because it duplicates an earlier key.
enum PendingKey {
    Keep(Key),
    Drop,
}

struct Builder<'a> {
    src: &'a SourceFile,
    budget: Budget,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize)>,
    /// Values added by aliases so far (see [`Budget::max_alias_nodes`]).
    alias_nodes: usize,
    errors: Vec<Diagnostic>,
    root: Option<Node>,
    documents: usize,
}

impl<'a> Builder<'a> {
    fn new(src: &'a SourceFile, budget: Budget) -> Self {
        Builder {
            src,
            budget,
            stack: Vec::new(),
            anchors: HashMap::new(),
            alias_nodes: 0,
            errors: Vec::new(),
            root: None,
            documents: 0,
        }
    }

    fn span(&self, s: saphyr_parser::Span) -> Span {
        let start = self.src.offset(s.start.line(), s.start.col());
        let end = self.src.offset(s.end.line(), s.end.col());
        Span::new(start, end)
    }

    fn run(mut self) -> Result<Node, Vec<Diagnostic>> {
        let text = self.src.text.clone();
        let mut parser = Parser::new_from_str(&text);
        while let Some(item) = parser.next_event() {
            let (event, raw_span) = match item {
                Ok(pair) => pair,
                Err(err) => {
                    let m = err.marker();
                    let at = self.src.offset(m.line(), m.col());
                    let d = if err.info().contains("recursion limit") {
                        Diagnostic::new(
                            self.src,
                            Span::new(at, at + 1),
                            format!(
                                "nesting is too deep (more than {} levels)",
                                self.budget.max_depth
                            ),
                        )
                        .label("refused here")
                    } else {
                        Diagnostic::new(
                            self.src,
                            Span::new(at, at + 1),
                            format!("invalid YAML: {}", err.info()),
                        )
                        .label("here")
                    };
                    self.errors.push(d);
                    return Err(self.errors);
                }
            };
            let span = self.span(raw_span);
            if let Err(d) = self.event(event, span) {
                self.errors.push(*d);
                return Err(self.errors);
            }
        }
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        Ok(self.root.unwrap_or(Node {
            value: Value::Null,
            span: Span::new(0, 0),
        }))
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Box<Diagnostic>> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Box::new(
                        Diagnostic::new(
                            self.src,
                            span,
                            "a stack file holds exactly one YAML document",
                        )
                        .label("a second document starts here")
                        .help("remove the `---` separator and merge the documents"),
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = self.scalar(&text, style, tag.as_deref(), span)?;
                self.push(Node { value, span }, anchor)?;
            }
            Event::Alias(id) => {
                let Some(&(_, size)) = self.anchors.get(&id) else {
                    return Err(Box::new(
                        Diagnostic::new(self.src, span, "alias refers to an unknown anchor")
                            .label("here"),
                    ));
                };
                // Charged before the copy is made, so a refused expansion costs nothing.
                self.charge(size, span)?;
                let Some((mut node, _)) = self.anchors.get(&id).cloned() else {
                    return Ok(());
                };
                // The alias points at the anchored value; spans stay those of the anchor's definition.
                node.span = span;
                self.attach(node)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.enter(span)?;
                self.stack.push(Frame::Seq {
                    start: span,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, _) => {
                self.enter(span)?;
                self.stack.push(Frame::Map {
                    start: span,
                    anchor,
                    entries: Vec::new(),
                    pending_key: None,
                    index: None,
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    start,
                    anchor,
                    items,
                }) = self.stack.pop()
                {
                    let end = items
                        .last()
                        .map_or(start.end, |n| n.span.end.max(start.end));
                    self.push(
                        Node {
                            value: Value::Seq(items),
                            span: Span::new(start.start, end),
                        },
                        anchor,
                    )?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    start,
                    anchor,
                    entries,
                    ..
                }) = self.stack.pop()
                {
                    let end = entries
                        .last()
                        .map_or(start.end, |(_, n)| n.span.end.max(start.end));
                    self.push(
                        Node {
                            value: Value::Map(entries),
                            span: Span::new(start.start, end),
                        },
                        anchor,
                    )?;
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn enter(&mut self, span: Span) -> Result<(), Box<Diagnostic>> {
        if self.stack.len() >= self.budget.max_depth {
            return Err(Box::new(
                Diagnostic::new(
                    self.src,
                    span,
                    format!(
                        "nesting is too deep (more than {} levels)",
                        self.budget.max_depth
                    ),
                )
                .label("refused here"),
            ));
        }
        Ok(())
    }

    /// Counts the values an alias adds; refuses past the budget.
    fn charge(&mut self, nodes: usize, span: Span) -> Result<(), Box<Diagnostic>> {
        self.alias_nodes = self.alias_nodes.saturating_add(nodes);
        if self.alias_nodes > self.budget.max_alias_nodes {
            return Err(Box::new(
                Diagnostic::new(self.src, span, format!(
                    "aliases expand to more than {} values; refusing to expand them (is this an alias bomb?)",
                    self.budget.max_alias_nodes
                ))
                .label("limit reached here")
                .help("aliases (`*name`) are expanded in full; avoid nesting them inside each other"),
            ));
        }
        Ok(())
    }

    /// Records an anchor and attaches the finished node to its parent.
    fn push(&mut self, node: Node, anchor: usize) -> Result<(), Box<Diagnostic>> {
        if anchor != 0 {
            let size = node.count();
            self.anchors.insert(anchor, (node.clone(), size));
        }
        self.attach(node)
    }

    fn attach(&mut self, node: Node) -> Result<(), Box<Diagnostic>> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                index,
                ..
            }) => {
                match pending_key.take() {
                    None => {
                        let name = match &node.value {
                            Value::String(s) => s.clone(),
                            Value::Int(i) => i.to_string(),
                            Value::Bool(b) => b.to_string(),
                            Value::Float(f) => f.to_string(),
                            Value::Null => "null".to_string(),
                            Value::Seq(_) | Value::Map(_) => {
                                return Err(Box::new(
                                    Diagnostic::new(
                                        self.src,
                                        node.span,
                                        "mapping keys must be plain names",
                                    )
                                    .label(format!("a {} used as a key", node.kind())),
                                ));
                            }
                        };
                        let first = match index {
                            Some(ix) => ix.get(&name).map(|&i| &entries[i].0),
                            None => entries.iter().map(|(k, _)| k).find(|k| k.name == name),
                        };
                        if let Some(first) = first {
                            let d = Diagnostic::new(self.src, node.span, format!("duplicate key `{name}`"))
                            .label("defined again here")
                            .note(self.src, first.span, "first defined here")
                            .help("each key may appear once in a mapping; remove or rename one of them");
                            self.errors.push(d);
                            // Keep parsing so later, independent problems are reported too; the value of the
                            // duplicate is read and dropped.
                            *pending_key = Some(PendingKey::Drop);
                            return Ok(());
                        }
                        *pending_key = Some(PendingKey::Keep(Key {
                            name,
                            span: node.span,
                        }));
                    }
                    Some(PendingKey::Keep(key)) => {
                        match index {
                            Some(ix) => {
                                ix.insert(key.name.clone(), entries.len());
                            }
                            None if entries.len() >= 32 => {
                                let mut ix: HashMap<String, usize> = entries
                                    .iter()
                                    .enumerate()
                                    .map(|(i, (k, _))| (k.name.clone(), i))
                                    .collect();
                                ix.insert(key.name.clone(), entries.len());
                                *index = Some(ix);
                            }
                            None => {}
                        }
                        entries.push((key, node));
                    }
                    Some(PendingKey::Drop) => {}
                }
            }
        }
        Ok(())
    }

    fn scalar(
        &self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&saphyr_parser::Tag>,
        span: Span,
    ) -> Result<Value, Box<Diagnostic>> {
        if let Some(tag) = tag {
            let known = tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!";
            return match (known, tag.suffix.as_str()) {
                (true, "str") => Ok(Value::String(text.to_string())),
                (true, "int") => text
                    .parse()
                    .map(Value::Int)
                    .map_err(|_| self.bad_tag(span, "an integer")),
                (true, "float") => text
                    .parse()
                    .map(Value::Float)
                    .map_err(|_| self.bad_tag(span, "a number")),
                (true, "bool") => match text {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    _ => Err(self.bad_tag(span, "true or false")),
                },
                (true, "null") => Ok(Value::Null),
                _ => Err(Box::new(
                    Diagnostic::new(
                        self.src,
                        span,
                        format!("unsupported YAML tag `{}{}`", tag.handle, tag.suffix),
                    )
                    .label("tag not understood")
                    .help("stack files use plain values; remove the tag"),
                )),
            };
        }
        if style != ScalarStyle::Plain {
            return Ok(Value::String(text.to_string()));
        }
        Ok(resolve_plain(text))
    }

    fn bad_tag(&self, span: Span, expected: &str) -> Box<Diagnostic> {
        Box::new(
            Diagnostic::new(self.src, span, format!("tagged value is not {expected}"))
                .label("here"),
        )
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let bytes = text.as_bytes();
    let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits_only(unsigned) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Int(i);
        }
        return text
            .parse::<f64>()
            .map_or_else(|_| Value::String(text.to_string()), Value::Float);
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Value::Int(i);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Value::Int(i);
    }
    let looks_float = bytes
        .first()
        .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.'))
        && bytes
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        && bytes.iter().any(u8::is_ascii_digit);
    if looks_float && let Ok(f) = text.parse::<f64>() {
        return Value::Float(f);
    }
    Value::String(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Node, Vec<Diagnostic>> {
        parse(&SourceFile::new("t.yaml", text), Budget::default())
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let n = parse_str("a: 1\nb: 1.5\nc: true\nd: ~\ne: '1'\nf: hello\ng: 0x1f\n").unwrap();
        assert_eq!(n.get("a").unwrap().value, Value::Int(1));
        assert_eq!(n.get("b").unwrap().value, Value::Float(1.5));
        assert_eq!(n.get("c").unwrap().value, Value::Bool(true));
        assert_eq!(n.get("d").unwrap().value, Value::Null);
        assert_eq!(n.get("e").unwrap().value, Value::String("1".into()));
        assert_eq!(n.get("f").unwrap().value, Value::String("hello".into()));
        assert_eq!(n.get("g").unwrap().value, Value::Int(31));
    }

    #[test]
    fn spans_point_at_values() {
        let src = SourceFile::new("t.yaml", "top:\n  key: value\n");
        let n = parse(&src, Budget::default()).unwrap();
        let v = n.get("top").unwrap().get("key").unwrap();
        assert_eq!(src.line_col(v.span.start), (2, 8));
        assert_eq!(&src.text[v.span.start..v.span.end], "value");
    }

    /// Large mappings check duplicates through an index (a linear search per key made loading 40,000
    /// resources quadratic); the index must find the same duplicates with the same first location.
    #[test]
    fn duplicates_in_a_large_mapping_are_reported() {
        let mut text: String = (0..100).map(|i| format!("k{i}: {i}\n")).collect();
        text.push_str("k5: again\nk99: again\n");
        let errs = parse_str(&text).unwrap_err();
        let messages: Vec<&str> = errs.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(messages, ["duplicate key `k5`", "duplicate key `k99`"]);
        assert_eq!(errs[0].line_col(), (101, 1));
    }

    #[test]
    fn every_duplicate_key_is_reported() {
        let errs = parse_str("a: 1\nb: 2\na: 3\nb: 4\n").unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].message, "duplicate key `a`");
        assert_eq!(errs[0].line_col(), (3, 1));
        assert_eq!(errs[1].message, "duplicate key `b`");
    }

    #[test]
    fn alias_bomb_is_refused_in_bounded_memory() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        // 10^12 values if expanded; refused quickly (well under a second even in a debug build).
        let started = std::time::Instant::now();
        let errs = parse_str(&text).unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            errs[0].message.contains("alias bomb"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(5000) + &"]".repeat(5000);
        let errs = parse_str(&text).unwrap_err();
        assert!(
            errs[0].message.contains("nesting is too deep"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn huge_input_is_refused_before_parsing() {
        let text = format!("a: \"{}\"\n", "x".repeat(5 * 1024));
        let errs = parse(
            &SourceFile::new("t.yaml", text),
            Budget::with_max_bytes(4096),
        )
        .unwrap_err();
        assert!(errs[0].message.starts_with("file is too large"));
    }

    /// A file's own values are not an alias expansion: 40,000 resources of five values each (about
    /// 300,000 values, more than the alias budget of 200,000 values there once was) load, with
    /// no alias in sight.
    #[test]
    fn many_values_without_aliases_are_not_an_alias_bomb() {
        let mut text = String::from("resources:\n");
        for i in 0..40_000 {
            text.push_str(&format!(
                "  r{i}:\n    type: blob\n    account: a\n    container: c\n    name: n{i}\n"
            ));
        }
        let n = parse_str(&text).unwrap();
        assert_eq!(n.get("resources").unwrap().as_map().unwrap().len(), 40_000);
    }

    /// Aliases of large anchors still count in full, so many copies of a legitimate anchor hit the
    /// budget even though no nesting is involved.
    #[test]
    fn alias_budget_counts_what_aliases_add() {
        let mut text = String::from("base: &b [1, 2, 3, 4, 5, 6, 7, 8, 9]\ncopies:\n");
        for _ in 0..11 {
            text.push_str("  - *b\n");
        }
        let budget = Budget {
            max_alias_nodes: 100,
            ..Budget::default()
        };
        // 11 copies of 10 values: 110 added values, over 100 (the file's own 10 are not counted).
        let errs = parse(&SourceFile::new("t.yaml", text.clone()), budget).unwrap_err();
        assert!(
            errs[0].message.contains("alias bomb"),
            "{}",
            errs[0].message
        );
        let budget = Budget {
            max_alias_nodes: 110,
            ..budget
        };
        assert!(parse(&SourceFile::new("t.yaml", text), budget).is_ok());
    }

    #[test]
    fn syntax_errors_are_located() {
        let errs = parse_str("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(
            errs[0].message.starts_with("invalid YAML"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn a_second_document_is_refused() {
        let errs = parse_str("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(errs[0].line_col(), (2, 1));
    }

    #[test]
    fn aliases_expand_to_the_anchored_value() {
        let n = parse_str("base: &b {x: 1}\ncopy: *b\n").unwrap();
        assert_eq!(
            n.get("copy").unwrap().get("x").unwrap().value,
            Value::Int(1)
        );
    }
}
