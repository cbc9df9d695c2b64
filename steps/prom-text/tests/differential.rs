//! Differential test against Python's `prometheus_client` text parser
//! (`text_string_to_metric_families`), pinned at the version below: on every fixture, on
//! generated well-formed bodies, and on the inputs where we deliberately differ (each asserted).
//! Needs `python3 -m pip install prometheus_client==0.26.0` (`.ci/run` does it); `PYTHON`
//! overrides the interpreter.
//!
//! Python's view is mapped to ours before comparing: it appends `_total` to counter samples and
//! strips it from counter family names, calls untyped `unknown`, and gives timestamps in seconds.

use crate::support;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use prom_text::{Exposition, MetricType, SkipReason, parse};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::Value;

/// The version these tests (and the README's list of differences) were checked against.
const PINNED: &str = "0.26.0";

/// (name, labels, value, timestamp in seconds), values printed alike on both sides.
type ViewSample = (String, Vec<(String, String)>, String, Option<String>);

/// One body as Python sees it: samples and declared families, in our vocabulary.
#[derive(Debug, PartialEq)]
struct View {
    samples: Vec<ViewSample>,
    families: Vec<(String, String, String)>,
}

/// Runs the oracle over `bodies`; `Err(message)` where Python raised.
fn python(bodies: &[String]) -> Vec<Result<Value, String>> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/prom_client_oracle.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python}: {e}"));
    let input = serde_json::to_vec(bodies).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Written from a thread so a large batch cannot deadlock against a full stdout pipe.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "the oracle failed (install it: python3 -m pip install prometheus_client=={PINNED}):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["version"], PINNED,
        "prometheus_client version: re-check the differences, then update PINNED and .ci/run"
    );
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            if r["ok"] == true {
                Ok(r.clone())
            } else {
                Err(r["error"].as_str().unwrap().to_owned())
            }
        })
        .collect()
}

/// Python's output as a `View` (floats normalised through f64 so both sides print alike).
fn python_view(r: &Value) -> View {
    let norm = |s: &str| fmt_f64(s.parse::<f64>().unwrap());
    let samples = r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = s[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (str_of(&p[0]), str_of(&p[1])))
                .collect();
            (
                str_of(&s[0]),
                labels,
                norm(s[2].as_str().unwrap()),
                s[3].as_str().map(norm),
            )
        })
        .collect();
    let families = r["families"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (str_of(&f[0]), str_of(&f[1]), str_of(&f[2])))
        // Python makes a family of every undeclared sample; keep the declared ones.
        .filter(|(_, kind, help)| kind != "unknown" || !help.is_empty())
        .collect();
    View { samples, families }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap().to_owned()
}

/// Zero's sign is not compared (Python reads "-0" as the integer 0).
fn fmt_f64(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else {
        format!("{v:?}")
    }
}

/// Our parse in Python's vocabulary.
fn our_view(e: &Exposition<'_>) -> View {
    let is_counter = |name: &str| {
        e.family(name)
            .is_some_and(|f| f.kind == MetricType::Counter)
    };
    let samples = e
        .samples
        .iter()
        .map(|s| {
            let name = if is_counter(s.name) && !s.name.ends_with("_total") {
                format!("{}_total", s.name)
            } else {
                s.name.to_owned()
            };
            let labels = s
                .labels
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let ts = s.timestamp_ms.map(|t| fmt_f64(t as f64 / 1000.0));
            (name, labels, fmt_f64(s.value), ts)
        })
        .collect();
    let families = e
        .families
        .iter()
        .map(|f| {
            let name = match (f.kind, f.name.strip_suffix("_total")) {
                (MetricType::Counter, Some(base)) => base,
                _ => f.name,
            };
            let kind = match f.kind {
                MetricType::Untyped => "unknown",
                k => k.as_str(),
            };
            (
                name.to_owned(),
                kind.to_owned(),
                f.help.as_deref().unwrap_or("").to_owned(),
            )
        })
        .filter(|(_, kind, help)| kind != "unknown" || !help.is_empty())
        .collect();
    View { samples, families }
}

fn fixture_bodies() -> Vec<(String, String)> {
    let shared = std::env::var_os("OPSTEPS_SHARED_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    );
    let dir = shared.join("fixtures/dcgm");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (set OPSTEPS_SHARED_DIR)", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "prom"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    assert_eq!(out.len(), 6, "fixture count changed");
    out
}

#[test]
#[ignore = "needs python"]
fn same_samples_and_families_as_prometheus_client_on_every_fixture() {
    let fixtures = fixture_bodies();
    // The CRLF variants too: both parsers strip the carriage return.
    let bodies: Vec<String> = fixtures
        .iter()
        .flat_map(|(_, t)| [t.clone(), t.replace('\n', "\r\n")])
        .collect();
    let results = python(&bodies);
    for (body, result) in bodies.iter().zip(&results) {
        let name = &fixtures[bodies.iter().position(|b| b == body).unwrap() / 2].0;
        let py = result
            .as_ref()
            .unwrap_or_else(|e| panic!("{name}: Python: {e}"));
        let ours = parse(body);
        assert!(ours.skipped.is_empty(), "{name}");
        let (ours, py) = (our_view(&ours), python_view(py));
        assert!(!ours.samples.is_empty(), "{name}");
        assert_eq!(ours, py, "{name}");
    }
}

#[test]
#[ignore = "needs python"]
fn same_samples_and_families_as_prometheus_client_on_generated_bodies() {
    let mut runner = TestRunner::deterministic();
    let strategy = support::model();
    let models: Vec<support::Model> = (0..400)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    let bodies: Vec<String> = models.iter().map(support::Model::render).collect();
    let results = python(&bodies);
    let mut with_samples = 0;
    for (body, result) in bodies.iter().zip(&results) {
        let py = result
            .as_ref()
            .unwrap_or_else(|e| panic!("Python refused a well-formed body: {e}\n{body}"));
        let ours = parse(body);
        assert!(ours.skipped.is_empty(), "{:?}\n{body}", ours.skipped);
        with_samples += usize::from(!ours.samples.is_empty());
        assert_eq!(our_view(&ours), python_view(py), "\n{body}");
    }
    assert!(with_samples > 300, "the generator made too few samples");
}

/// (body, our samples as (name, value), our skip reasons, what Python does)
type Case = (
    &'static str,
    &'static [(&'static str, f64)],
    &'static [SkipReason],
    Python,
);

/// What Python does with a body where we differ on purpose.
enum Python {
    Raises,
    /// Python's samples: (name, value) pairs.
    Accepts(&'static [(&'static str, f64)]),
}

#[test]
#[ignore = "needs python"]
fn intended_differences_from_prometheus_client() {
    use SkipReason as R;
    let cases: &[Case] = &[
        // The exporter's non-numeric line: Python fails the whole body, we lose one line.
        (
            "a 1\nb ERROR - FAILED TO CONVERT TO STRING\nc 3\n",
            &[("a", 1.0), ("c", 3.0)],
            &[R::NonNumericValue],
            Python::Raises,
        ),
        // Any bad line, likewise.
        (
            "a 1\nb{x=\"1\",x=\"2\"} 2\n",
            &[("a", 1.0)],
            &[R::DuplicateLabel],
            Python::Raises,
        ),
        // A leading comma or an empty term: Python skips it, Go and we refuse the line.
        (
            "a{,x=\"1\"} 1\n",
            &[],
            &[R::BadLabelName],
            Python::Accepts(&[("a", 1.0)]),
        ),
        (
            "a{,} 1\n",
            &[],
            &[R::BadLabelName],
            Python::Accepts(&[("a", 1.0)]),
        ),
        // `__`-prefixed label names: Python refuses them all, Go and we only `__name__`.
        ("a{__x=\"1\"} 1\n", &[("a", 1.0)], &[], Python::Raises),
        // The metric name inside the braces (UTF-8 names, Prometheus 3): Python only.
        (
            "{__name__=\"a\"} 1\n",
            &[],
            &[R::BadMetricName],
            Python::Accepts(&[("a", 1.0)]),
        ),
        (
            "{\"a.b\",x=\"1\"} 1\n",
            &[],
            &[R::BadMetricName],
            Python::Accepts(&[("a.b", 1.0)]),
        ),
        // A fractional timestamp, or extra tokens (Python keeps the first and the last).
        (
            "a 1 1.5\n",
            &[],
            &[R::BadTimestamp],
            Python::Accepts(&[("a", 1.0)]),
        ),
        (
            "a 1 2 3\n",
            &[],
            &[R::TrailingText],
            Python::Accepts(&[("a", 1.0)]),
        ),
        // OpenMetrics-only types in a text-format body.
        (
            "# TYPE a info\na 1\n",
            &[("a", 1.0)],
            &[R::BadType],
            Python::Accepts(&[("a", 1.0)]),
        ),
        // Upper-case type names: Go and we accept them, Python raises.
        ("# TYPE a GAUGE\na 1\n", &[("a", 1.0)], &[], Python::Raises),
        // `# HELP` with no name: Python ignores it, we count it.
        (
            "# HELP\na 1\n",
            &[("a", 1.0)],
            &[R::BadHelp],
            Python::Accepts(&[("a", 1.0)]),
        ),
        // A second `# TYPE` for a name: Python takes the last, we keep the first and count it.
        (
            "# TYPE a gauge\n# TYPE a untyped\na 1\n",
            &[("a", 1.0)],
            &[R::DuplicateType],
            Python::Accepts(&[("a", 1.0)]),
        ),
    ];
    let bodies: Vec<String> = cases.iter().map(|c| c.0.to_owned()).collect();
    let results = python(&bodies);
    for ((body, samples, reasons, expected), result) in cases.iter().zip(&results) {
        let ours = parse(body);
        let got: Vec<(&str, f64)> = ours.samples.iter().map(|s| (s.name, s.value)).collect();
        assert_eq!(&got, samples, "ours on {body:?}");
        let got: Vec<SkipReason> = ours.skipped.iter().map(|s| s.reason).collect();
        assert_eq!(&got, reasons, "ours on {body:?}");
        match (expected, result) {
            (Python::Raises, Err(_)) => {}
            (Python::Accepts(want), Ok(r)) => {
                let view = python_view(r);
                let got: Vec<(String, f64)> = view
                    .samples
                    .iter()
                    .map(|s| (s.0.clone(), s.2.parse().unwrap()))
                    .collect();
                let want: Vec<(String, f64)> =
                    want.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect();
                assert_eq!(got, want, "Python on {body:?}");
            }
            (Python::Raises, Ok(r)) => panic!("Python accepted {body:?}: {r}"),
            (Python::Accepts(_), Err(e)) => panic!("Python refused {body:?}: {e}"),
        }
    }
}
