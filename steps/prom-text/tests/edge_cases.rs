//! Synthetic edge cases no genuine fixture covers (escapes, NaN/Inf, timestamps, the exporter's
//! error lines, sentinels, lower-case `hostname`), each written here by hand.
// Parsed values must equal what the text says, exactly.
#![allow(clippy::float_cmp)]

use std::fmt::Write as _;

use prom_text::{MetricType, SkipReason, dcgm, parse};

fn one(line: &str) -> prom_text::Sample<'_> {
    let e = parse(line);
    assert!(e.skipped.is_empty(), "{line:?}: {:?}", e.skipped);
    assert_eq!(e.samples.len(), 1, "{line:?}");
    e.samples.into_iter().next().unwrap()
}

fn skip_reason(line: &str) -> SkipReason {
    let e = parse(line);
    assert!(e.samples.is_empty(), "{line:?} parsed: {:?}", e.samples);
    assert_eq!(e.skipped.len(), 1, "{line:?}");
    e.skipped[0].reason
}

#[test]
fn escapes_in_label_values_are_undone() {
    let s = one(r#"m{a="back\\slash",b="say \"hi\"",c="two\nlines",d="C:\path"} 1"#);
    assert_eq!(s.labels.get("a"), Some(r"back\slash"));
    assert_eq!(s.labels.get("b"), Some(r#"say "hi""#));
    assert_eq!(s.labels.get("c"), Some("two\nlines"));
    // Unknown escapes stay as written (dcgm-exporter does not escape label values at all).
    assert_eq!(s.labels.get("d"), Some(r"C:\path"));
    let s = one(r#"m{a="\\n"} 1"#);
    assert_eq!(s.labels.get("a"), Some(r"\n"), "escaped backslash, then n");
}

#[test]
fn commas_spaces_braces_and_equals_inside_quoted_values() {
    let line = r#"DCGM_FI_DEV_XID_ERRORS{gpu="0",err_code="13",err_msg="Graphics Engine Exception, Preemptive cleanup = yes {x}",Hostname="n1"} 13"#;
    let s = one(line);
    assert_eq!(
        s.labels.get("err_msg"),
        Some("Graphics Engine Exception, Preemptive cleanup = yes {x}")
    );
    assert_eq!(s.labels.get("err_code"), Some("13"));
    assert_eq!(dcgm::hostname(&s.labels), Some("n1"));
    assert_eq!(s.value, 13.0);
}

#[test]
fn nan_and_infinities() {
    assert!(one("m NaN").value.is_nan());
    assert_eq!(one("m +Inf").value, f64::INFINITY);
    assert_eq!(one("m -Inf").value, f64::NEG_INFINITY);
    assert_eq!(one("m Inf").value, f64::INFINITY);
    assert_eq!(one("m 1e3").value, 1000.0);
    assert_eq!(one("m -0.5").value, -0.5);
}

#[test]
fn optional_timestamps() {
    let s = one(r#"m{a="1"} 2 1700000000123"#);
    assert_eq!(s.timestamp_ms, Some(1_700_000_000_123));
    assert_eq!(one("m 2 -5").timestamp_ms, Some(-5));
    assert_eq!(one("m 2").timestamp_ms, None);
    assert_eq!(skip_reason("m 2 1.5"), SkipReason::BadTimestamp);
    assert_eq!(skip_reason("m 2 3 4"), SkipReason::TrailingText);
}

#[test]
fn exporter_error_values_are_skipped_and_counted_not_fatal() {
    let body = "\
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"} 5
DCGM_FI_DEV_CLOCK_THROTTLE_REASONS{gpu=\"0\"} ERROR - FAILED TO CONVERT TO STRING
DCGM_FI_DEV_GPU_UTIL{gpu=\"1\"} 7
";
    let e = parse(body);
    assert_eq!(e.samples.len(), 2);
    assert_eq!(e.samples[1].value, 7.0);
    assert_eq!(e.skipped.len(), 1);
    assert_eq!(e.skipped[0].line, 3);
    assert_eq!(e.skipped[0].reason, SkipReason::NonNumericValue);
    assert_eq!(
        e.skipped[0].to_string(),
        "line 3: non-numeric value (accepted: a float, NaN, +Inf, -Inf)"
    );
}

#[test]
fn untyped_crlf_blank_lines_and_comments() {
    let body = "# a comment\r\n\r\n  \r\nfoo 1\r\n#HELP not_help x\r\n# HELP bar Bar\\\\s\\nhelp.\r\nbar{x=\"y\"} 2\r\n";
    let e = parse(body);
    assert!(e.skipped.is_empty(), "{:?}", e.skipped);
    assert_eq!(e.samples.len(), 2);
    assert_eq!(e.samples[0].name, "foo");
    assert_eq!(e.samples[0].line, 4);
    assert_eq!(e.samples[1].labels.get("x"), Some("y"));
    assert_eq!(e.families.len(), 1);
    assert_eq!(e.families[0].name, "bar");
    assert_eq!(e.families[0].kind, MetricType::Untyped);
    assert_eq!(e.families[0].help.as_deref(), Some("Bar\\s\nhelp."));
}

#[test]
fn trailing_comma_whitespace_and_empty_label_sets() {
    let s = one(r#"m{a="1",} 1"#);
    assert_eq!(s.labels.iter().collect::<Vec<_>>(), [("a", "1")]);
    let s = one("m { a = \"1\" , b=\"2\" , } 1");
    assert_eq!(s.labels.len(), 2);
    assert!(one("m{} 1").labels.is_empty());
    assert_eq!(one("m\t{a=\"\"}\t3\t").labels.get("a"), Some(""));
}

#[test]
fn duplicate_label_names_skip_the_line() {
    assert_eq!(
        skip_reason(r#"m{a="1",a="2"} 1"#),
        SkipReason::DuplicateLabel
    );
}

#[test]
fn malformed_lines_say_why() {
    for (line, reason) in [
        ("1m 1", SkipReason::BadMetricName),
        ("m-x 1", SkipReason::BadMetricName),
        ("m", SkipReason::MissingValue),
        ("m{a=\"1\"}", SkipReason::MissingValue),
        ("m{a=\"1\"}2", SkipReason::BadLabelSyntax),
        ("m{a=\"1\" 2", SkipReason::BadLabelSyntax),
        ("m{a=\"1 2", SkipReason::UnterminatedLabelValue),
        ("m{a=\"1\\\"} 2", SkipReason::UnterminatedLabelValue),
        ("m{a=1} 2", SkipReason::BadLabelSyntax),
        ("m{a} 2", SkipReason::BadLabelSyntax),
        ("m{,a=\"1\"} 2", SkipReason::BadLabelName),
        ("m{a=\"1\",,} 2", SkipReason::BadLabelName),
        ("m{1a=\"1\"} 2", SkipReason::BadLabelName),
        ("m{a=\"1\"b=\"2\"} 2", SkipReason::BadLabelSyntax),
        ("m{__name__=\"x\"} 2", SkipReason::ReservedLabelName),
        ("m 1_000", SkipReason::NonNumericValue),
        ("m 0x10", SkipReason::NonNumericValue),
        ("{a=\"1\"} 2", SkipReason::BadMetricName),
        ("# TYPE m gaugee", SkipReason::BadType),
        ("# TYPE m", SkipReason::BadType),
        ("# TYPE 1m gauge", SkipReason::BadType),
        ("# HELP", SkipReason::BadHelp),
        ("# HELP 1m x", SkipReason::BadHelp),
    ] {
        assert_eq!(skip_reason(line), reason, "{line:?}");
    }
}

#[test]
fn second_help_or_type_for_a_name_is_skipped_first_wins() {
    let e = parse("# TYPE m gauge\n# TYPE m counter\n# HELP m one\n# HELP m two\nm 1\n");
    assert_eq!(e.families.len(), 1);
    assert_eq!(e.families[0].kind, MetricType::Gauge);
    assert_eq!(e.families[0].help.as_deref(), Some("one"));
    let reasons: Vec<_> = e.skipped.iter().map(|s| (s.line, s.reason)).collect();
    assert_eq!(
        reasons,
        [
            (2, SkipReason::DuplicateType),
            (4, SkipReason::DuplicateHelp)
        ]
    );
}

#[test]
fn empty_and_whitespace_only_input() {
    assert_eq!(parse(""), prom_text::Exposition::default());
    assert_eq!(parse("\n\r\n \t\n"), prom_text::Exposition::default());
}

#[test]
fn very_long_lines() {
    let long_value = "x".repeat(2_000_000);
    let line = format!("m{{a=\"{long_value}\",b=\"2\"}} 1\n");
    let s = one(&line);
    assert_eq!(s.labels.get("a").map(str::len), Some(2_000_000));
    let mut many = String::new();
    for i in 0..50_000 {
        let _ = write!(many, "l{i}=\"{i}\",");
    }
    let line = format!("m{{{many}}} 1");
    assert_eq!(one(&line).labels.len(), 50_000);
}

#[test]
fn dcgm_blank_sentinels() {
    let e = parse(
        "DCGM_FI_DEV_POWER_USAGE{gpu=\"0\"} 9223372036854775794\nDCGM_FI_DEV_POWER_USAGE{gpu=\"0\"} 140737488355328.000000\n",
    );
    assert!(e.samples.iter().all(|s| dcgm::is_blank(s.value)));
    for v in [
        9.2e18,
        f64::MAX,
        140_737_488_355_328.0,
        140_737_488_355_331.0,
        2_147_483_632.0,
        2_147_483_635.0,
    ] {
        assert!(dcgm::is_blank(v), "{v}");
    }
    for v in [
        0.0,
        409.692,
        5_551_899_580.0,
        140_737_488_355_327.0,
        140_737_488_355_332.0,
        2_147_483_631.0,
        9.1e18,
        f64::NAN,
        f64::INFINITY,
    ] {
        assert!(!dcgm::is_blank(v), "{v}");
    }
}

#[test]
fn hostname_in_either_spelling() {
    let s = one(r#"m{hostname="new"} 1"#);
    assert_eq!(dcgm::hostname(&s.labels), Some("new"));
    let s = one(r#"m{Hostname="old"} 1"#);
    assert_eq!(dcgm::hostname(&s.labels), Some("old"));
    assert_eq!(dcgm::hostname(&one("m 1").labels), None);
}
