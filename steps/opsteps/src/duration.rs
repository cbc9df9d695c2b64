//! Go-format durations (`90s`, `1h30m`, `250ms`), as kubectl, Argo and Kubernetes objects write
//! them.
//!
//! Parsing is delegated to `kube::core::Duration` (Go's `time.ParseDuration` grammar) after a
//! strict syntax check of our own, because kube-core accepts `""` as zero and panics on an inner
//! sign such as `1h-5m` (it multiplies a `std::time::Duration` by a negative factor). Flags
//! never take negative durations, so a sign is refused with a clear message.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A non-negative duration written in Go's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(pub Duration);

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {reason}; expected a Go duration such as 90s, 5m, 1h30m or 250ms (units ns, us, ms, s, m, h)"
)]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

const UNITS: [&str; 8] = ["ns", "us", "\u{b5}s", "\u{3bc}s", "ms", "s", "m", "h"];

fn check_syntax(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("empty");
    }
    if s.starts_with('-') {
        return Err("negative durations are not accepted");
    }
    let body = s.strip_prefix('+').unwrap_or(s);
    if body == "0" {
        return Ok(());
    }
    let mut rest = body;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err("each part must be a number followed by a unit");
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err("missing unit");
        }
        if !UNITS.contains(&unit) {
            return Err("unknown unit");
        }
        rest = &rest[unit_len..];
    }
    Ok(())
}

impl FromStr for GoDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError {
            input: s.to_owned(),
            reason,
        };
        check_syntax(s).map_err(err)?;
        let d: kube::core::Duration = s.parse().map_err(|_| err("not a number"))?;
        Ok(Self(d.into()))
    }
}

impl GoDuration {
    /// Seconds, rounded down.
    #[must_use]
    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }

    /// Whether the duration is zero (kubectl's "no limit" for `--timeout`).
    #[must_use]
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<GoDuration> for Duration {
    fn from(d: GoDuration) -> Self {
        d.0
    }
}

/// Formats like Go's `Duration.String()`: `1h30m0s`, `1m30s`, `250ms`, `0s`.
impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dur = self.0;
        if dur.is_zero() {
            return f.write_str("0s");
        }
        if dur < Duration::from_secs(1) {
            let nanos = dur.as_nanos();
            return if nanos.is_multiple_of(1_000_000) {
                write!(f, "{}ms", nanos / 1_000_000)
            } else if nanos.is_multiple_of(1_000) {
                write!(f, "{}\u{b5}s", nanos / 1_000)
            } else {
                write!(f, "{nanos}ns")
            };
        }
        let total = dur.as_secs();
        let (hours, minutes, secs) = (total / 3600, (total / 60) % 60, total % 60);
        let frac = dur.subsec_nanos();
        let sec = if frac == 0 {
            format!("{secs}s")
        } else {
            let digits = format!("{frac:09}");
            format!("{secs}.{}s", digits.trim_end_matches('0'))
        };
        match (hours, minutes) {
            (0, 0) => f.write_str(&sec),
            (0, m) => write!(f, "{m}m{sec}"),
            (h, m) => write!(f, "{h}h{m}m{sec}"),
        }
    }
}

impl serde::Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Duration, DurationError> {
        s.parse::<GoDuration>().map(Into::into)
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(p("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(p("1h30m").unwrap(), Duration::from_mins(90));
        assert_eq!(p("8h").unwrap(), Duration::from_hours(8));
        assert_eq!(p("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(p("1.5h").unwrap(), Duration::from_mins(90));
        assert_eq!(p("2m3.5s").unwrap(), Duration::from_millis(123_500));
        assert_eq!(p("0").unwrap(), Duration::ZERO);
        assert_eq!(p("0s").unwrap(), Duration::ZERO);
        assert_eq!(p("+5s").unwrap(), Duration::from_secs(5));
        assert_eq!(p("10us").unwrap(), Duration::from_micros(10));
        assert_eq!(p("10\u{b5}s").unwrap(), Duration::from_micros(10));
    }

    #[test]
    fn rejects_bad_durations_with_a_clear_message() {
        for bad in [
            "", "5", "5x", "h", "1h-5m", "-5s", "1..5s", ".s", "5 s", "1d", "abc", "5m5",
        ] {
            let e = p(bad).expect_err(bad);
            let msg = e.to_string();
            assert!(msg.contains("expected a Go duration"), "{bad}: {msg}");
            assert!(msg.contains(&format!("{bad:?}")), "{bad}: {msg}");
        }
        assert!(p("-5s").unwrap_err().to_string().contains("negative"));
    }

    #[test]
    fn displays_like_go() {
        let f = |s: &str| s.parse::<GoDuration>().unwrap().to_string();
        assert_eq!(f("1h30m"), "1h30m0s");
        assert_eq!(f("90s"), "1m30s");
        assert_eq!(f("45s"), "45s");
        assert_eq!(f("250ms"), "250ms");
        assert_eq!(f("0"), "0s");
        assert_eq!(f("1.5s"), "1.5s");
        // Round trip.
        for s in ["1h30m0s", "1m30s", "250ms", "2h0m5s"] {
            assert_eq!(f(s), s);
        }
    }

    #[test]
    fn serde_round_trip() {
        let d: GoDuration = serde_json::from_str("\"5m\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"5m0s\"");
        assert!(serde_json::from_str::<GoDuration>("\"5\"").is_err());
    }
}
