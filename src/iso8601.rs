//! ISO 8601 durations as Azure writes them (`PT10S`, `PT0.5S`, `PT1H30M`, `P1DT2H`): the one parser and
//! the one formatter of the crate, used by the provider (operation timeouts, a deployment's probe and
//! request timings) and by the specs' `format: iso8601_duration`.
//!
//! Pure functions on strings and numbers; they never panic, and a text that is not a duration is `None`,
//! never a guess.
use std::time::Duration;

/// The duration a text names, in seconds (fractions allowed). Designators are case-insensitive; a year or
/// month designator (whose length varies) and a number without a designator are refused.
pub(crate) fn parse_seconds(text: &str) -> Option<f64> {
    let rest = text.trim().strip_prefix(['P', 'p'])?;
    let (date, time) = match rest.find(['T', 't']) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let mut total = 0.0f64;
    let mut scan = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
            } else {
                let mult = units.iter().find(|(u, _)| u.eq_ignore_ascii_case(&c))?.1;
                total += num.parse::<f64>().ok()? * mult;
                num.clear();
            }
        }
        num.is_empty().then_some(())
    };
    scan(date, &[('D', 86400.0), ('W', 604_800.0)])?;
    scan(time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    (total.is_finite() && total >= 0.0).then_some(total)
}

/// The duration a text names.
pub(crate) fn parse(text: &str) -> Option<Duration> {
    parse_seconds(text).and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// A number of seconds as `PT{seconds}S`, with the shortest decimal that reads back the same
/// (`5.0` → `PT5S`, `1.5` → `PT1.5S`).
pub(crate) fn format_seconds(seconds: f64) -> String {
    format!("PT{seconds}S")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_azure_sends() {
        for (text, seconds) in [
            ("PT1H", 3600.0),
            ("PT5S", 5.0),
            ("PT0.5S", 0.5),
            ("P1DT2M", 86_520.0),
            ("PT1M30S", 90.0),
            ("pt10s", 10.0),
            (" P1W ", 604_800.0),
        ] {
            assert_eq!(parse_seconds(text), Some(seconds), "{text:?}");
            assert_eq!(
                parse(text),
                Some(Duration::from_secs_f64(seconds)),
                "{text:?}"
            );
        }
        assert_eq!(parse("PT99999999999999999999999S"), None);
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in ["1H", "PT5X", "5s", "PT5", "P1Y", "", "PT1..5S", "T5S"] {
            assert_eq!(parse_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_seconds_and_reads_them_back() {
        for (seconds, text) in [
            (5.0, "PT5S"),
            (1.5, "PT1.5S"),
            (0.5, "PT0.5S"),
            (0.0, "PT0S"),
        ] {
            assert_eq!(format_seconds(seconds), text);
        }
        for s in [0.0, 0.5, 1.0, 2.25, 30.0, 180.0, 86_400.0] {
            assert_eq!(parse_seconds(&format_seconds(s)), Some(s));
        }
    }
}
