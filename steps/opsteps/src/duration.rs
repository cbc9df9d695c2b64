//! Go-format durations (`90s`, `1h30m`, `250ms`), as kubectl, Argo and Kubernetes objects write
//! them.
//!
//! Go's `time.ParseDuration` grammar, parsed here with checked integer arithmetic rather than by
//! `kube::core::Duration`, which accepts `""` as zero and panics on an inner sign such as `1h-5m`
//! (a negative factor) and on a value that overflows (`99999999999999999999h`, in `mul_f64`).
//! Flags never take negative durations, so a sign is refused with a clear message.
//!
//! Every duration is at most [`GoDuration::MAX`] (87600h, 10 years), far beyond any timeout,
//! lifetime or interval a step takes, so that what steps do with one cannot overflow:
//! `Instant + d`, timestamp arithmetic (jiff's range ends in year 9999), and whole seconds in an
//! `i32` Kubernetes field (`leaseDurationSeconds`, at most about 68 years). A longer value is a
//! usage error (exit 2) that says so.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A non-negative duration written in Go's format, at most [`GoDuration::MAX`] when parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(pub Duration);

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {reason}; expected a Go duration such as 90s, 5m, 1h30m or 250ms (units ns, us, ms, s, m, h), at most 87600h (10 years)"
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
        let nanos = total_nanos(s.strip_prefix('+').unwrap_or(s)).map_err(err)?;
        let max = GoDuration::MAX.0.as_nanos();
        if nanos > max {
            return Err(err("longer than the maximum"));
        }
        let secs =
            u64::try_from(nanos / 1_000_000_000).map_err(|_| err("longer than the maximum"))?;
        // The remainder of a division by 10^9 always fits.
        let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
        Ok(Self(Duration::new(secs, sub)))
    }
}

/// Nanoseconds in a unit.
fn unit_nanos(unit: &str) -> u128 {
    match unit {
        "ns" => 1,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => 1_000, // us, µs, μs: check_syntax allows no other unit
    }
}

/// The sum of `<number><unit>` parts in nanoseconds, with checked arithmetic; fraction digits
/// beyond nanosecond precision are dropped, as Go does. `s` passed [`check_syntax`].
fn total_nanos(s: &str) -> Result<u128, &'static str> {
    const TOO_LONG: &str = "longer than the maximum";
    let mut total: u128 = 0;
    let mut rest = s;
    if rest == "0" {
        return Ok(0);
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        rest = after;
        let per = unit_nanos(unit);
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let mut whole: u128 = 0;
        for d in int.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u128::from(d - b'0')))
                .ok_or(TOO_LONG)?;
        }
        let (mut value, mut scale) = (0u128, 1u128);
        for d in frac.bytes().take(20) {
            value = value * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        let part = whole
            .checked_mul(per)
            .and_then(|w| w.checked_add(value * per / scale))
            .ok_or(TOO_LONG)?;
        total = total.checked_add(part).ok_or(TOO_LONG)?;
    }
    Ok(total)
}

impl GoDuration {
    /// The longest duration a flag accepts: 87600h (10 years). See the module documentation.
    pub const MAX: GoDuration = GoDuration(Duration::from_hours(87_600));

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
    fn absurd_values_are_refused_not_panics() {
        for bad in [
            "99999999999999999999h",
            "999999999999999999999999999999999999999999999ns",
            "100000000h",
            "87600h1ns",
            "5256000m1s",
        ] {
            let e = p(bad).expect_err(bad);
            let msg = e.to_string();
            assert!(
                msg.contains("longer than the maximum") && msg.contains("at most 87600h"),
                "{msg}"
            );
        }
        assert_eq!(p("87600h").unwrap(), GoDuration::MAX.0);
        assert_eq!(p("5256000m").unwrap(), GoDuration::MAX.0);
        // Precision beyond nanoseconds is dropped, as in Go.
        assert_eq!(p("1.0000000019s").unwrap(), Duration::new(1, 1));
        assert_eq!(p(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(
            p("1h2m3s4ms5us6ns").unwrap(),
            Duration::new(3723, 4_005_006)
        );
        // Downstream arithmetic on the longest value is safe.
        let max: Duration = GoDuration::MAX.into();
        let _ = tokio::time::Instant::now() + max;
        let _ = std::time::Instant::now() + max;
        assert!(i32::try_from(max.as_secs()).is_ok());
        let signed = jiff::SignedDuration::try_from(max).unwrap();
        assert!(jiff::Timestamp::now().checked_sub(signed).is_ok());
        assert!(jiff::Timestamp::now().checked_add(signed).is_ok());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// No input panics the parser; what it accepts is within the cap.
        #[test]
        fn no_string_panics_the_parser(s in "\\PC{0,24}") {
            if let Ok(d) = s.parse::<GoDuration>() {
                proptest::prop_assert!(d <= GoDuration::MAX);
            }
        }

        /// Digits and units, the shapes most likely to overflow.
        #[test]
        fn no_number_and_unit_panics_the_parser(s in "[+]?([0-9]{0,25}(\\.[0-9]{0,12})?(ns|us|ms|s|m|h|d)?){1,4}") {
            if let Ok(d) = s.parse::<GoDuration>() {
                proptest::prop_assert!(d <= GoDuration::MAX);
                // Display gives a string that parses back to the same value.
                proptest::prop_assert_eq!(d.to_string().parse::<GoDuration>().unwrap(), d);
            }
        }
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
