//! Renders the engine's [`ApplyEvent`]s while a run goes on: progress bars on a terminal (one line per
//! resource in flight, with its action, a spinner, elapsed time and the cloud's status, plus an overall
//! bar), plain timestamped lines otherwise, or JSON lines with `--json`. The text of each line comes from
//! pure functions ([`event_line`], [`render_summary`]) so it can be tested without a terminal.
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::stdio::{StdoutError, errln, outln};
use crate::apply::{ApplyEvent, EventSink, Outcome, RefreshStatus, StepKind, StepResult, Summary};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgressMode {
    /// Live bars on a terminal (stderr).
    Bars { color: bool },
    /// One timestamped line per event on stderr (CI, pipes).
    Lines,
    /// One JSON object per event on stdout.
    Json,
}

/// An [`EventSink`] that shows progress as the run goes.
pub(crate) struct Reporter {
    mode: ProgressMode,
    bars: Option<Bars>,
    /// The first failure to write a JSON line to stdout, if any.
    stdout_error: Mutex<Option<StdoutError>>,
}

struct Bars {
    multi: MultiProgress,
    overall: Mutex<Option<ProgressBar>>,
    lines: Mutex<HashMap<String, ProgressBar>>,
    color: bool,
}

impl Reporter {
    pub(crate) fn new(mode: ProgressMode) -> Self {
        let bars = match mode {
            ProgressMode::Bars { color } => Some(Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                overall: Mutex::new(None),
                lines: Mutex::new(HashMap::new()),
                color,
            }),
            _ => None,
        };
        Reporter {
            mode,
            bars,
            stdout_error: Mutex::new(None),
        }
    }

    /// The first failure to write an event to stdout (`--json`), taken once the run has ended.
    pub(crate) fn take_stdout_error(&self) -> Option<StdoutError> {
        self.stdout_error.lock().ok().and_then(|mut e| e.take())
    }

    /// Prints a line above the live bars (or as a plain line).
    pub(crate) fn println(&self, text: &str) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(text);
            }
            None if self.mode == ProgressMode::Json => {}
            None => errln!("{text}"),
        }
    }

    /// Removes every live bar (before the summary is printed).
    pub(crate) fn finish(&self) {
        if let Some(bars) = &self.bars {
            if let Ok(mut lines) = bars.lines.lock() {
                for (_, bar) in lines.drain() {
                    bar.finish_and_clear();
                }
            }
            if let Ok(mut overall) = bars.overall.lock()
                && let Some(bar) = overall.take()
            {
                bar.finish_and_clear();
            }
        }
    }
}

impl EventSink for Reporter {
    fn emit(&self, event: ApplyEvent) {
        match self.mode {
            ProgressMode::Json => {
                // A failed write never stops the run (steps in flight finish, state is saved); the
                // first failure is kept for the command to report once the run has ended.
                if let Ok(line) = serde_json::to_string(&event)
                    && let Err(e) = outln!("{line}")
                    && let Ok(mut first) = self.stdout_error.lock()
                {
                    first.get_or_insert(e);
                }
            }
            ProgressMode::Lines => {
                if let Some(text) = event_line(&event) {
                    errln!("{} {text}", timestamp());
                }
            }
            ProgressMode::Bars { .. } => {
                if let Some(bars) = &self.bars {
                    bars.update(&event);
                }
            }
        }
    }
}

impl Bars {
    fn update(&self, event: &ApplyEvent) {
        match event {
            ApplyEvent::ApplyStarted { steps, .. }
            | ApplyEvent::RefreshStarted { resources: steps } => {
                let bar = self.multi.add(ProgressBar::new(*steps as u64));
                let verb = if matches!(event, ApplyEvent::RefreshStarted { .. }) {
                    "refreshing"
                } else {
                    "applying"
                };
                bar.set_style(
                    ProgressStyle::with_template(&format!(
                        "{verb} [{{bar:30}}] {{pos}}/{{len}} {{elapsed}}"
                    ))
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.enable_steady_tick(Duration::from_millis(200));
                if let Ok(mut o) = self.overall.lock()
                    && let Some(old) = o.replace(bar)
                {
                    old.finish_and_clear();
                }
            }
            ApplyEvent::StepStarted {
                address,
                kind,
                replace,
            } => {
                let bar = self.multi.insert_from_back(1, ProgressBar::new_spinner());
                let symbol = paint(self.color, kind_color(*kind), kind.symbol());
                bar.set_style(
                    ProgressStyle::with_template(&format!(
                        "{{spinner}} {symbol} {{prefix}} {{msg}} [{{elapsed}}]"
                    ))
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(address.clone());
                bar.set_message(format!(
                    "{}{}",
                    ing(*kind),
                    if *replace { " (replace)" } else { "" }
                ));
                bar.enable_steady_tick(Duration::from_millis(120));
                if let Ok(mut lines) = self.lines.lock() {
                    lines.insert(address.clone(), bar);
                }
            }
            ApplyEvent::StepProgress { address, status } => {
                if let Ok(lines) = self.lines.lock()
                    && let Some(bar) = lines.get(address)
                {
                    bar.set_message(status.clone());
                }
            }
            ApplyEvent::StepFinished { address, .. }
            | ApplyEvent::ResourceRefreshed { address, .. } => {
                if let Ok(mut lines) = self.lines.lock()
                    && let Some(bar) = lines.remove(address)
                {
                    bar.finish_and_clear();
                }
                if let Some(text) = event_line(event) {
                    let _ = self.multi.println(text);
                }
                if let Ok(o) = self.overall.lock()
                    && let Some(bar) = o.as_ref()
                {
                    bar.inc(1);
                }
            }
            other => {
                if let Some(text) = event_line(other) {
                    let _ = self.multi.println(text);
                }
            }
        }
    }
}

fn ing(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Create => "creating",
        StepKind::Update => "updating",
        StepKind::Delete => "deleting",
    }
}

fn done(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Create => "created",
        StepKind::Update => "updated",
        StepKind::Delete => "deleted",
    }
}

fn kind_color(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Create => "32",
        StepKind::Update => "33",
        StepKind::Delete => "31",
    }
}

fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:02}:{:02}:{:02}", now.hour(), now.minute(), now.second())
}

/// Seconds with one decimal, as progress lines show durations.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The one-line text of an event, or `None` for events that only drive bars.
pub(crate) fn event_line(event: &ApplyEvent) -> Option<String> {
    Some(match event {
        ApplyEvent::ApplyStarted { steps, parallelism } => {
            format!("applying {steps} step(s), up to {parallelism} at once")
        }
        ApplyEvent::StepStarted {
            address,
            kind,
            replace,
        } => {
            let why = if *replace { " (replace)" } else { "" };
            format!("{} {address}: {}{why}…", kind.symbol(), ing(*kind))
        }
        ApplyEvent::StepProgress { address, status } => format!("  {address}: {status}"),
        ApplyEvent::StepFinished {
            address,
            kind,
            duration,
            result,
            ..
        } => match result {
            StepResult::Succeeded => format!(
                "{} {address}: {} in {}",
                kind.symbol(),
                done(*kind),
                secs(*duration)
            ),
            StepResult::Failed { error } => {
                format!(
                    "✗ {address}: {} failed after {}: {}",
                    ing(*kind).trim_end_matches("ing"),
                    secs(*duration),
                    error.message
                )
            }
        },
        ApplyEvent::WaitingForPropagation {
            address,
            waiting_for,
            attempt,
            waited,
            retry_in,
            reason,
        } => format!(
            "… {address}: waiting for access to propagate ({} granted in this run; {reason}); retry {attempt} in {} (waited {} so far)",
            waiting_for.join(", "),
            secs(*retry_in),
            secs(*waited)
        ),
        ApplyEvent::Interrupted {
            level: 1,
            in_flight,
        } => format!(
            "interrupted: no new steps will start; waiting for {in_flight} step(s) in flight to finish (press Ctrl-C again to stop at once)"
        ),
        ApplyEvent::Interrupted { in_flight, .. } => {
            format!(
                "interrupted again: stopping now; {in_flight} step(s) in flight are left to the journal"
            )
        }
        ApplyEvent::RollbackStarted { failed, steps } => {
            format!(
                "rolling back: `{failed}` failed; undoing {} completed step(s) in reverse order",
                steps.len()
            )
        }
        ApplyEvent::RollbackStepStarted {
            address,
            compensation,
        } => format!("↺ {address}: {compensation}…"),
        ApplyEvent::RollbackStepFinished {
            address,
            compensation,
            duration,
            result,
        } => match result {
            StepResult::Succeeded => {
                format!("↺ {address}: {compensation}: done in {}", secs(*duration))
            }
            StepResult::Failed { error } => {
                format!("✗ {address}: {compensation}: failed: {}", error.message)
            }
        },
        ApplyEvent::RefreshStarted { resources } => format!("refreshing {resources} resource(s)"),
        ApplyEvent::ResourceRefreshed {
            address,
            status,
            duration,
        } => match status {
            RefreshStatus::Present => format!("  {address}: read in {}", secs(*duration)),
            RefreshStatus::Gone => format!("  {address}: gone from the cloud"),
            RefreshStatus::Failed => format!("  {address}: read failed"),
        },
        ApplyEvent::Summary(_) => return None,
    })
}

/// The requests a run sent to the cloud, for the end of the summary: `Requests: 12 (ARM 9, other 3).`,
/// with the throttled answers when there were any (each was retried).
pub(crate) fn render_requests(what: &str, t: &crate::provider::pipeline::RequestTally) -> String {
    let mut out = format!(
        "{what}: {} request(s) (ARM {}, blob and other {})",
        t.total(),
        t.arm,
        t.other
    );
    if t.throttled > 0 {
        let _ = write!(out, ", {} throttled (429) and retried", t.throttled);
    }
    out.push_str(".\n");
    out
}

/// The progress line said when ARM requests start waiting for their token bucket.
pub(crate) fn render_paced(notice: &crate::provider::pace::PaceNotice) -> String {
    format!("  {notice} (ARM's request limits; waiting instead of being throttled)")
}

/// The end-of-run summary: the outcome, what failed and why (with the cloud's code and request id),
/// what was rolled back, what could not be restored, and how long each step took.
pub(crate) fn render_summary(summary: &Summary, verb: &str) -> String {
    let mut out = String::new();
    let (adds, changes, deletes) =
        summary
            .steps
            .iter()
            .filter(|s| s.result.is_success())
            .fold((0, 0, 0), |acc, s| match s.kind {
                StepKind::Create => (acc.0 + 1, acc.1, acc.2),
                StepKind::Update => (acc.0, acc.1 + 1, acc.2),
                StepKind::Delete => (acc.0, acc.1, acc.2 + 1),
            });
    let took = secs(summary.duration);
    let _ = match summary.outcome {
        Outcome::Succeeded => writeln!(
            out,
            "{verb} complete in {took}: {adds} added, {changes} changed, {deletes} destroyed."
        ),
        Outcome::RolledBack => writeln!(out, "{verb} failed and was rolled back ({took})."),
        Outcome::Failed => writeln!(
            out,
            "{verb} failed ({took}); partial progress is kept in state."
        ),
        Outcome::Interrupted => writeln!(
            out,
            "{verb} interrupted ({took}); finished steps are recorded in state."
        ),
        Outcome::Aborted => writeln!(
            out,
            "{verb} aborted ({took}); the next run resolves the unfinished steps from the journal."
        ),
    };
    if let Some(f) = &summary.failure {
        let _ = writeln!(
            out,
            "\nFailed: {} {} `{}`",
            f.kind.symbol(),
            f.kind,
            f.address
        );
        let _ = writeln!(out, "  error: {}", f.error.message);
        if let Some(code) = &f.error.code {
            let _ = writeln!(out, "  code: {code}");
        }
        if let Some(id) = &f.error.request_id {
            let _ = writeln!(out, "  request id: {id}");
        }
    }
    if !summary.rollback.is_empty() {
        let _ = writeln!(out, "\nRolled back:");
        for r in &summary.rollback {
            let status = match &r.result {
                StepResult::Succeeded => "done".to_string(),
                StepResult::Failed { error } => format!("FAILED: {}", error.message),
            };
            let _ = writeln!(
                out,
                "  ↺ {}: {} ({}) {status}",
                r.address,
                r.compensation,
                secs(r.duration)
            );
        }
    }
    if !summary.not_restored.is_empty() {
        let _ = writeln!(out, "\nNot restored (state records what is really there):");
        for n in &summary.not_restored {
            let _ = writeln!(out, "  ! `{}`: {}", n.address, n.reason);
        }
    }
    if !summary.not_started.is_empty() {
        let _ = writeln!(out, "\nNot started: {}", summary.not_started.join(", "));
    }
    if !summary.unsettled.is_empty() {
        let _ = writeln!(
            out,
            "\nOutcome unknown (the connection was lost after the request was sent): {}\nThe journal keeps these steps; the next run reads the cloud to settle them before anything else.",
            summary.unsettled.join(", ")
        );
    }
    if let Some(e) = &summary.persistence_error {
        let _ = writeln!(
            out,
            "\nState could not be written: {e}\nThe next run resolves the journaled steps before doing anything else."
        );
    }
    if !summary.steps.is_empty() {
        let _ = writeln!(out, "\nSteps:");
        for s in &summary.steps {
            let mark = if s.result.is_success() {
                s.kind.symbol()
            } else {
                "✗"
            };
            let replace = if s.replace { " (replace)" } else { "" };
            let _ = writeln!(
                out,
                "  {mark} {:<20} {:<7}{replace} {:>7}",
                s.address,
                s.kind.to_string(),
                secs(s.duration)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{FailureRecord, StepFailure, StepRecord};

    #[test]
    fn step_lines_read_well() {
        let started = ApplyEvent::StepStarted {
            address: "store".into(),
            kind: StepKind::Create,
            replace: false,
        };
        assert_eq!(event_line(&started).unwrap(), "+ store: creating…");
        let finished = ApplyEvent::StepFinished {
            address: "store".into(),
            kind: StepKind::Create,
            replace: false,
            duration: Duration::from_millis(2340),
            result: StepResult::Succeeded,
        };
        assert_eq!(event_line(&finished).unwrap(), "+ store: created in 2.3s");
    }

    #[test]
    fn requests_and_pacing_render() {
        let t = crate::provider::pipeline::RequestTally {
            arm: 9,
            other: 3,
            throttled: 0,
        };
        assert_eq!(
            render_requests("Requests", &t),
            "Requests: 12 request(s) (ARM 9, blob and other 3).\n"
        );
        let t = crate::provider::pipeline::RequestTally { throttled: 2, ..t };
        assert!(render_requests("Refresh", &t).contains(", 2 throttled (429) and retried."));
        let n = crate::provider::pace::PaceNotice {
            class: crate::provider::pace::PaceClass::Write,
            per_second: 10.0,
        };
        assert_eq!(
            render_paced(&n),
            "  paced: 10 writes/s (ARM's request limits; waiting instead of being throttled)"
        );
    }

    #[test]
    fn summary_names_the_failure_code_and_request_id() {
        let summary = Summary {
            outcome: Outcome::RolledBack,
            unsettled: Vec::new(),
            steps: vec![StepRecord {
                address: "blue".into(),
                kind: StepKind::Create,
                replace: false,
                duration: Duration::from_secs(3),
                result: StepResult::Failed {
                    error: StepFailure::local("init() raised"),
                },
            }],
            failure: Some(FailureRecord {
                address: "blue".into(),
                kind: StepKind::Create,
                error: StepFailure {
                    message: "deployment failed".into(),
                    code: Some("DeploymentFailed".into()),
                    status: Some(200),
                    request_id: Some("abc-123".into()),
                },
            }),
            rollback: vec![],
            not_restored: vec![],
            not_started: vec!["x".into()],
            persistence_error: None,
            duration: Duration::from_secs(4),
        };
        let text = render_summary(&summary, "Apply");
        assert!(
            text.starts_with("Apply failed and was rolled back (4.0s)."),
            "{text}"
        );
        assert!(text.contains("code: DeploymentFailed"));
        assert!(text.contains("request id: abc-123"));
        assert!(text.contains("Not started: x"));
    }
}
