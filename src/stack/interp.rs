//! The `${...}` syntax inside string values: `${var.NAME}`, `${env.NAME}`, `${stack.NAME}`,
//! `${resource.path}`, `${resource["key"].path}` (one instance of a resource with `for_each`) and
//! `${each.key}` / `${each.value...}` (inside such a resource), with `$${` as the escape for a
//! literal `${`. This module only splits a string into pieces and says where each
//! piece sits in the string; it knows nothing of variables, the environment or resources.

/// One piece of a string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Text(String),
    Var(String),
    Env(String),
    /// `${stack.NAME}`: a value of the run itself (`${stack.env}`, the `--env` chosen).
    Stack(String),
    /// `${resource.path}`; `path` is dotted and non-empty. `resource` is an address: a name, or an
    /// instance `name["key"]`.
    Ref {
        resource: String,
        path: String,
    },
    /// `${each.key}`, `${each.value}` or `${each.value.a.b}`: the dotted path after `each.`.
    Each(String),
}

/// A segment with its byte range inside the string (the whole `${...}` for references).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Piece {
    pub segment: Segment,
    pub start: usize,
    pub end: usize,
}

/// A malformed `${...}`, with its byte range inside the string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub message: String,
    pub help: Option<String>,
    pub start: usize,
    pub end: usize,
}

/// Splits `text` into literal text and references. Adjacent text is merged. Every malformed reference is
/// reported; a string without `${` is one text piece (or none when empty).
pub(crate) fn split(text: &str) -> Result<Vec<Piece>, Vec<SyntaxError>> {
    let mut pieces: Vec<Piece> = Vec::new();
    let mut errors = Vec::new();
    let mut text_buf = String::new();
    let mut text_start = 0;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        if text[i..].starts_with("$${") {
            if text_buf.is_empty() {
                text_start = i;
            }
            text_buf.push_str("${");
            i += 3;
            continue;
        }
        if text[i..].starts_with("${") {
            let open = i;
            let Some(close_rel) = text[open + 2..].find('}') else {
                errors.push(SyntaxError {
                    message: "unclosed `${`: a reference ends with `}`".to_string(),
                    help: Some("write a literal `${` as `$${`".to_string()),
                    start: open,
                    end: text.len(),
                });
                break;
            };
            let inner_start = open + 2;
            let inner_end = inner_start + close_rel;
            let end = inner_end + 1;
            match parse_inner(&text[inner_start..inner_end]) {
                Ok(segment) => {
                    if !text_buf.is_empty() {
                        pieces.push(Piece {
                            segment: Segment::Text(std::mem::take(&mut text_buf)),
                            start: text_start,
                            end: open,
                        });
                    }
                    pieces.push(Piece {
                        segment,
                        start: open,
                        end,
                    });
                }
                Err((message, help)) => errors.push(SyntaxError {
                    message,
                    help,
                    start: open,
                    end,
                }),
            }
            i = end;
            continue;
        }
        let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
        if text_buf.is_empty() {
            text_start = i;
        }
        text_buf.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    if !text_buf.is_empty() {
        pieces.push(Piece {
            segment: Segment::Text(text_buf),
            start: text_start,
            end: text.len(),
        });
    }
    if errors.is_empty() {
        Ok(pieces)
    } else {
        Err(errors)
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

const FORMS: &str = "references are `${var.NAME}`, `${env.NAME}` or `${resource.attribute}`";

/// Whether `key` may be an instance key of `for_each` (it becomes part of an address).
pub(crate) fn valid_instance_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 64 && key.chars().all(is_name_char)
}

/// `name["key"]`, the address of one instance of a resource with `for_each`.
pub(crate) fn instance_address(name: &str, key: &str) -> String {
    format!("{name}[\"{key}\"]")
}

/// `${name["key"].path}`: the instance address and the path, or why it is malformed.
fn parse_indexed(inner: &str, open: usize) -> Result<Segment, (String, Option<String>)> {
    let bad = || {
        (
            format!("malformed instance reference `${{{inner}}}`"),
            Some("refer to one instance as `${name[\"key\"].attribute}`".to_string()),
        )
    };
    let name = &inner[..open];
    let rest = inner[open..].strip_prefix("[\"").ok_or_else(bad)?;
    let close = rest.find("\"]").ok_or_else(bad)?;
    let key = &rest[..close];
    let path = rest[close + 2..].strip_prefix('.').ok_or_else(bad)?;
    if !name.starts_with(is_name_start) || !name.chars().all(is_name_char) {
        return Err(bad());
    }
    if !valid_instance_key(key) {
        return Err((
            format!("invalid instance key `{key}` in `${{{inner}}}`"),
            Some("instance keys are 1 to 64 letters, digits, `_` and `-`".to_string()),
        ));
    }
    if path.is_empty()
        || path.split('.').any(str::is_empty)
        || !path.chars().all(|c| is_name_char(c) || c == '.')
    {
        return Err(bad());
    }
    Ok(Segment::Ref {
        resource: instance_address(name, key),
        path: path.to_string(),
    })
}

fn parse_inner(inner: &str) -> Result<Segment, (String, Option<String>)> {
    if inner.trim().is_empty() {
        return Err(("empty reference `${}`".to_string(), Some(FORMS.to_string())));
    }
    if let Some(open) = inner.find('[')
        && !inner[..open].contains('.')
    {
        return parse_indexed(inner, open);
    }
    if let Some(c) = inner
        .chars()
        .find(|c| !is_name_char(*c) && *c != '.' && !c.is_whitespace())
    {
        return Err((
            format!(
                "invalid character `{}` in reference `${{{inner}}}`",
                c.escape_default()
            ),
            Some(FORMS.to_string()),
        ));
    }
    if inner.chars().any(char::is_whitespace) {
        return Err((
            format!("reference `${{{inner}}}` contains spaces"),
            Some("write references without spaces, e.g. `${store.name}`".to_string()),
        ));
    }
    let parts: Vec<&str> = inner.split('.').collect();
    if parts.len() < 2 {
        return Err((
            format!("reference `${{{inner}}}` needs a dot"),
            Some(FORMS.to_string()),
        ));
    }
    if parts.iter().any(|p| p.is_empty()) {
        return Err((
            format!("reference `${{{inner}}}` has an empty part"),
            Some(FORMS.to_string()),
        ));
    }
    let head = parts[0];
    if !head.starts_with(is_name_start) {
        return Err((
            format!("reference `${{{inner}}}` must start with a name, not `{head}`"),
            Some(FORMS.to_string()),
        ));
    }
    match head {
        "each" => match parts[1] {
            "key" if parts.len() == 2 => Ok(Segment::Each("key".to_string())),
            "value" => Ok(Segment::Each(parts[1..].join("."))),
            _ => Err((
                format!("`${{{inner}}}`: `each` has `key` and `value`"),
                Some("write `${each.key}` or `${each.value}`".to_string()),
            )),
        },
        "var" | "env" | "stack" => {
            if parts.len() != 2 {
                return Err((
                    format!("`${{{inner}}}`: a `{head}.` reference names exactly one {head}"),
                    Some(format!("write `${{{head}.NAME}}`")),
                ));
            }
            let name = parts[1];
            if !name.starts_with(is_name_start) || name.contains('-') {
                return Err((
                    format!("invalid {} name `{name}` in `${{{inner}}}`", match head { "var" => "variable", "stack" => "stack value", _ => "environment variable" }),
                    Some("names are letters, digits and underscores, starting with a letter or underscore".to_string()),
                ));
            }
            Ok(match head {
                "var" => Segment::Var(name.to_string()),
                "stack" => Segment::Stack(name.to_string()),
                _ => Segment::Env(name.to_string()),
            })
        }
        _ => Ok(Segment::Ref {
            resource: head.to_string(),
            path: parts[1..].join("."),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(s: &str) -> Vec<Segment> {
        split(s).unwrap().into_iter().map(|p| p.segment).collect()
    }

    #[test]
    fn plain_text_is_one_piece() {
        assert_eq!(segs("hello"), [Segment::Text("hello".into())]);
        assert!(segs("").is_empty());
    }

    #[test]
    fn references_and_text_interleave_with_positions() {
        let pieces = split("mi${var.suffix}-${store.name}").unwrap();
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces[0].segment, Segment::Text("mi".into()));
        assert_eq!(pieces[1].segment, Segment::Var("suffix".into()));
        assert_eq!((pieces[1].start, pieces[1].end), (2, 15));
        assert_eq!(
            pieces[3].segment,
            Segment::Ref {
                resource: "store".into(),
                path: "name".into()
            }
        );
        assert_eq!((pieces[3].start, pieces[3].end), (16, 29));
    }

    #[test]
    fn nested_paths_and_env() {
        assert_eq!(
            segs("${endpoint.identity.principal_id}"),
            [Segment::Ref {
                resource: "endpoint".into(),
                path: "identity.principal_id".into()
            }]
        );
        assert_eq!(segs("${env.HOME}"), [Segment::Env("HOME".into())]);
        assert_eq!(segs("${stack.env}"), [Segment::Stack("env".into())]);
    }

    #[test]
    fn instance_references_and_each() {
        assert_eq!(
            segs("${blue[\"a-1\"].identity.principal_id}"),
            [Segment::Ref {
                resource: "blue[\"a-1\"]".into(),
                path: "identity.principal_id".into()
            }]
        );
        assert_eq!(
            segs("x-${each.key}-${each.value.sku}"),
            [
                Segment::Text("x-".into()),
                Segment::Each("key".into()),
                Segment::Text("-".into()),
                Segment::Each("value.sku".into())
            ]
        );
        for bad in [
            "${blue[a].name}",
            "${blue[\"a\"]}",
            "${blue[\"a\"]name}",
            "${blue[\"a b\"].name}",
            "${each.other}",
        ] {
            assert!(split(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn double_dollar_escapes() {
        assert_eq!(segs("a$${b}c"), [Segment::Text("a${b}c".into())]);
        assert_eq!(segs("$5 and $x"), [Segment::Text("$5 and $x".into())]);
    }

    #[test]
    fn malformed_references_are_located() {
        let e = split("ab${store.name").unwrap_err();
        assert_eq!(
            (e[0].start, e[0].message.starts_with("unclosed")),
            (2, true)
        );
        let e = split("${}").unwrap_err();
        assert!(e[0].message.starts_with("empty reference"));
        let e = split("x ${store.na!me} ${var}").unwrap_err();
        assert_eq!(e.len(), 2);
        assert!(
            e[0].message.contains("invalid character `!`"),
            "{}",
            e[0].message
        );
        assert_eq!(e[1].start, 17);
        assert!(e[1].message.contains("needs a dot"));
        let e = split("${var.a.b}").unwrap_err();
        assert!(e[0].message.contains("exactly one var"), "{}", e[0].message);
        let e = split("${store..name}").unwrap_err();
        assert!(e[0].message.contains("empty part"));
        let e = split("${ store.name }").unwrap_err();
        assert!(e[0].message.contains("spaces"));
    }
}
