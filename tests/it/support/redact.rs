//! The one redactor of the snapshot tests: it turns what varies from run to run in the CLI's output into
//! stable placeholders, so a snapshot shows behaviour and nothing else. Temporary folders become
//! `[WORK]`, `[CLOUD]` and `[REPO]`; GUIDs become `[GUID-n]`, numbered by first appearance so a snapshot
//! still shows which ids are the same; loopback ports become `[PORT]`; clock times, timestamps and
//! durations become `[TIME]`, `[TIMESTAMP]` and `[DURATION]`; etags and pids become `[ETAG]` and `[PID]`. JSON is redacted value by value, and fields that hold a
//! duration or a moment are replaced whatever their type.
//!
//! It must never hide a difference in behaviour: it replaces values, never drops a line (the tests
//! choose which lines they snapshot), and it leaves well-known fixed ids (role definitions) alone.
//!
//! Model: nextest's `nextest-runner/src/redact.rs`, which redacts paths, durations and timestamps when
//! its output is snapshot-tested.
use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::Value;

use super::bin::Output;
use super::cloud::{CONTRIBUTOR_DATA, READER};
use super::fixtures::repo_root;
use super::test::Test;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid redaction pattern")
}

static GUID: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"));
static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    re(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?\b")
});
/// The clock time at the start of a progress line (`12:03:59 + store: creating…`).
static CLOCK: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\d{2}:\d{2}:\d{2} "));
static PORT: LazyLock<Regex> = LazyLock::new(|| re(r"\b(127\.0\.0\.1|localhost):\d{1,5}\b"));
/// A right-aligned or inline duration as the progress lines print them (`2.3s`, `  12.0s`, `250ms`).
static DURATION: LazyLock<Regex> = LazyLock::new(|| re(r"( {2,}|\b)\d+(\.\d+)?(ms|s)\b"));
static ETAG: LazyLock<Regex> = LazyLock::new(|| re(r"\b0x[0-9A-F]{12,}\b"));
static PID: LazyLock<Regex> = LazyLock::new(|| re(r"\bpid \d+\b"));
/// The request counts of a run's last line: how many polls a long-running operation takes depends on
/// timing (the exact counts are asserted by their own tests).
static REQUESTS: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b\d+ request\(s\) \(ARM \d+, blob and other \d+\)"));
/// A progress line that only says a long-running operation is still running: how many polls see it
/// (none or several) depends on timing.
const STILL_RUNNING: &str = "InProgress";

/// A line of refresh output (after redaction): resources are read in parallel, so the order of these
/// lines is not behaviour.
static REFRESHED: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^\[TIME\]   \S+: (read in \[DURATION\]|gone from the cloud|read failed)$")
});

/// JSON fields whose value is a moment or a span of time, by name.
fn is_time_field(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("duration")
        || key.contains("elapsed")
        || key.ends_with("_ms")
        || key.ends_with("_at")
        || key == "at"
        || key == "since"
        || key == "waited"
        || key == "retry_in"
        || key == "timestamp"
}

/// Replaces what varies between runs by stable placeholders; see the module docs.
pub(crate) struct Redactor {
    /// Literal paths and the placeholder of each, longest first.
    paths: Vec<(String, &'static str)>,
    /// GUIDs already seen (lower case) and their number.
    guids: std::cell::RefCell<HashMap<String, usize>>,
}

impl Redactor {
    /// Redacts the repository root; add the folders of a test with [`Redactor::path`].
    pub(crate) fn new() -> Redactor {
        Redactor {
            paths: Vec::new(),
            guids: std::cell::RefCell::default(),
        }
        .path(&repo_root(), "[REPO]")
    }

    /// For a [`Test`]: its working folder and its cloud's data folder too.
    pub(crate) fn for_test(test: &Test) -> Redactor {
        Redactor::new()
            .path(test.dir(), "[WORK]")
            .path(test.cloud_dir(), "[CLOUD]")
    }

    /// Replaces `path` (as given and canonicalized) by `placeholder`.
    pub(crate) fn path(mut self, path: &Path, placeholder: &'static str) -> Redactor {
        let mut forms = vec![path.to_string_lossy().into_owned()];
        if let Ok(real) = path.canonicalize() {
            forms.push(real.to_string_lossy().into_owned());
        }
        for form in forms {
            if !form.is_empty() && !self.paths.iter().any(|(p, _)| *p == form) {
                self.paths.push((form, placeholder));
            }
        }
        self.paths.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        self
    }

    /// Redacts a text (human output).
    pub(crate) fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (path, placeholder) in &self.paths {
            out = out.replace(path.as_str(), placeholder);
        }
        let out = TIMESTAMP.replace_all(&out, "[TIMESTAMP]");
        let out = CLOCK.replace_all(&out, "[TIME] ");
        let out = GUID.replace_all(&out, |c: &Captures| self.guid(&c[0]));
        let out = PORT.replace_all(&out, "$1:[PORT]");
        let out = ETAG.replace_all(&out, "[ETAG]");
        let out = PID.replace_all(&out, "pid [PID]");
        let out = REQUESTS.replace_all(&out, "[N] request(s) (ARM [N], blob and other [N])");
        let out = DURATION.replace_all(&out, |c: &Captures| {
            let lead = if c[1].is_empty() { "" } else { " " };
            format!("{lead}[DURATION]")
        });
        out.into_owned()
    }

    /// Redacts JSON output: every string as text, and fields that hold times whatever their type.
    pub(crate) fn json(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.json(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let v = if is_time_field(k) && !v.is_null() {
                            Value::String("[DURATION]".into())
                        } else {
                            self.json(v)
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Parses JSON lines (one object per line, as `--json` progress prints them) and redacts each.
    pub(crate) fn json_lines(&self, text: &str) -> Vec<Value> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
                self.json(&v)
            })
            .collect()
    }

    /// A run as a snapshot shows it: the command, its exit code and both streams, redacted. How many
    /// times a long-running operation is polled varies from run to run, so a line repeated right after
    /// itself is kept once and a progress line saying only that an operation is still running
    /// (`InProgress`) is left out; a run of refresh lines is sorted (resources are read in parallel).
    pub(crate) fn transcript(&self, args: &[&str], out: &Output) -> String {
        format!(
            "$ stackform {}\nexit {}\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            out.code,
            settle_lines(&self.text(&out.stdout)),
            settle_lines(&self.text(&out.stderr)),
        )
    }

    /// [`Redactor::transcript`] of a `--json` run: stdout parsed as one JSON document or as JSON lines
    /// (an event repeated right after itself kept once, `InProgress` progress left out, a run of refresh
    /// events sorted by address).
    pub(crate) fn json_transcript(&self, args: &[&str], out: &Output) -> Value {
        let stdout = match serde_json::from_str::<Value>(&out.stdout) {
            Ok(doc) => self.json(&doc),
            Err(_) => {
                let mut events = self.json_lines(&out.stdout);
                events.retain(|e| !(e["event"] == "step_progress" && e["status"] == STILL_RUNNING));
                events.dedup();
                sort_runs(
                    &mut events,
                    |e| e["event"] == "resource_refreshed",
                    |e| e["address"].as_str().unwrap_or_default().to_string(),
                );
                Value::Array(events)
            }
        };
        serde_json::json!({
            "command": format!("stackform {}", args.join(" ")),
            "exit": out.code,
            "stdout": stdout,
            "stderr": settle_lines(&self.text(&out.stderr)),
        })
    }

    fn guid(&self, guid: &str) -> String {
        let lower = guid.to_ascii_lowercase();
        if lower == READER || lower == CONTRIBUTOR_DATA {
            return guid.to_string();
        }
        let mut seen = self.guids.borrow_mut();
        let next = seen.len() + 1;
        let n = *seen.entry(lower).or_insert(next);
        format!("[GUID-{n}]")
    }
}

/// Leaves out `InProgress` progress lines, keeps one of each run of identical consecutive lines, and
/// sorts each run of refresh lines.
fn settle_lines(text: &str) -> String {
    let still_running = format!(": {STILL_RUNNING}");
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|l| !(l.starts_with("[TIME]   ") && l.ends_with(&still_running)))
        .collect();
    lines.dedup();
    sort_runs(&mut lines, |l| REFRESHED.is_match(l), |l| l.to_string());
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Sorts, by `key`, every run of consecutive items that `in_run` accepts; the rest keep their places.
fn sort_runs<T, K: Ord>(items: &mut [T], in_run: impl Fn(&T) -> bool, key: impl Fn(&T) -> K) {
    let mut start = 0;
    while start < items.len() {
        let len = items[start..].iter().take_while(|i| in_run(i)).count();
        items[start..start + len].sort_by_key(|i| key(i));
        start += len.max(1);
    }
}

#[test]
fn the_redactor_replaces_what_varies_and_keeps_what_does_not() {
    let r = Redactor::new().path(Path::new("/tmp/.tmpAbC"), "[WORK]");
    let text = [
        "12:03:59 + store: created in 12.3s",
        "scoring_uri = https://127.0.0.1:40123/score (/tmp/.tmpAbC/state)",
        "principal 0D3C5BB1-52D6-4A6A-9D1B-3E2C1A0B9F00, again 0d3c5bb1-52d6-4a6a-9d1b-3e2c1a0b9f00",
        "role 2a2b9908-6ea1-4ae2-8e65-a410df84e7d1 at 2026-12-05T08:45:20.123Z by pid 4242",
        "  + store                create    2.0s",
        "name Standard_DS3_v2 kept, etag 0x8DC4F2A1B3C5D7E",
    ]
    .join("\n");
    assert_eq!(
        r.text(&text),
        [
            "[TIME] + store: created in [DURATION]",
            "scoring_uri = https://127.0.0.1:[PORT]/score ([WORK]/state)",
            "principal [GUID-1], again [GUID-1]",
            "role 2a2b9908-6ea1-4ae2-8e65-a410df84e7d1 at [TIMESTAMP] by pid [PID]",
            "  + store                create [DURATION]",
            "name Standard_DS3_v2 kept, etag [ETAG]",
        ]
        .join("\n")
    );
    let json = serde_json::json!({"address": "store", "duration_ms": 1234, "id": "x-0d3c5bb1-52d6-4a6a-9d1b-3e2c1a0b9f00"});
    assert_eq!(
        r.json(&json),
        serde_json::json!({"address": "store", "duration_ms": "[DURATION]", "id": "x-[GUID-1]"})
    );
}
