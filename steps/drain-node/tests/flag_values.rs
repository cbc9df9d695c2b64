//! Property: no value of a duration or number flag makes drain-node panic (exit 101 in test
//! builds, 134 under the release profile's `panic = "abort"`). Each case runs the binary in
//! `--dry-run client` against a small sandbox; a refused value exits 2 with a JSON result and
//! the sandbox sees no mutating request in any case.

use std::process::Output;
use std::time::Instant;

use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use opsteps_testkit::flags;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const BIN: &str = env!("CARGO_BIN_EXE_drain-node");

const DURATION_FLAGS: &[&str] = &[
    "--timeout",
    "--replacement-timeout",
    "--lease-duration",
    "--progress-interval",
];
const NUMBER_FLAGS: &[&str] = &[
    "--grace-period",
    "--skip-wait-for-delete-timeout",
    "--max-nodes",
    "--parallel-nodes",
    "--max-in-flight",
];

fn flag_value() -> impl Strategy<Value = (String, String)> {
    flags::flag_value(DURATION_FLAGS, NUMBER_FLAGS)
}

fn run(args: &[String]) -> Output {
    flags::run_bounded(BIN, args)
}

struct Fixture {
    _rt: tokio::runtime::Runtime,
    sb: Sandbox,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let yaml = r#"
nodes:
  - {name: a, capacity: {cpu: "8", memory: 32Gi, pods: 50}}
  - {name: b, capacity: {cpu: "8", memory: 32Gi, pods: 50}}
workloads:
  - {name: web, replicas: 3, placement: {nodes: [a]}, pdb: {maxUnavailable: 1}}
"#;
        let sb = rt
            .block_on(Sandbox::start(
                Options::default().scenario(Scenario::from_yaml(yaml).unwrap()),
            ))
            .unwrap();
        Self {
            _rt: rt,
            sb,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs a dry-run drain of node a with `flags` (as `--flag=value`) and checks the contract.
    fn check(&self, flags: &[(String, String)]) -> Output {
        let tl = self.dir.path().join("termination-log");
        let _ = std::fs::remove_file(&tl);
        let mut args: Vec<String> = vec![
            "--node".into(),
            "a".into(),
            "--dry-run".into(),
            "client".into(),
            "--kubeconfig".into(),
            self.sb.kubeconfig_path().display().to_string(),
            "--output-dir".into(),
            self.dir.path().join("out").display().to_string(),
            "--termination-log".into(),
            tl.display().to_string(),
        ];
        args.extend(flags.iter().map(|(f, v)| format!("{f}={v}")));
        let started = Instant::now();
        let out = run(&args);
        let what = format!("drain-node {flags:?} ({:?})", started.elapsed());
        opsteps_testkit::assert_no_panic(&out, &what);
        assert!(
            self.sb.mutations().is_empty(),
            "{what}: a dry run mutated: {:?}",
            self.sb.mutations()
        );
        if out.status.code() == Some(2) {
            let result: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{what}: stdout is not one JSON result: {e}"));
            assert_eq!(result["exitCode"], 2, "{what}: {result}");
            let line = std::fs::read_to_string(&tl).unwrap_or_default();
            assert!(line.starts_with("bad-input: "), "{what}: {line}");
        }
        out
    }
}

#[test]
fn absurd_values_are_refused_or_handled_never_a_panic() {
    let fx = Fixture::new();
    let f = |flag: &str, value: &str| vec![(flag.to_owned(), value.to_owned())];
    for (flag, value) in [
        ("--timeout", "100000000h"),
        ("--timeout", "99999999999999999999h"),
        ("--lease-duration", "87600h1s"),
        ("--replacement-timeout", "18446744073709551615s"),
    ] {
        let out = fx.check(&f(flag, value));
        assert_eq!(out.status.code(), Some(2), "{flag}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("at most 87600h"), "{flag}={value}: {err}");
    }
    // At the cap, and the largest numbers: accepted or refused, but handled.
    for (flag, value) in [
        ("--timeout", "87600h"),
        ("--lease-duration", "87600h"),
        ("--replacement-timeout", "87600h"),
        ("--progress-interval", "87600h"),
        ("--skip-wait-for-delete-timeout", "18446744073709551615"),
        ("--grace-period", "9223372036854775807"),
        ("--max-in-flight", "4294967295"),
        ("--parallel-nodes", "4294967295"),
        ("--max-nodes", "4294967295"),
    ] {
        fx.check(&f(flag, value));
    }
}

#[test]
fn no_flag_value_panics_the_step() {
    let fx = Fixture::new();
    // Modest: every case starts the binary (the machine's CPU is shared).
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(flag_value(), 1..=3), |flags| {
            fx.check(&flags);
            Ok(())
        })
        .unwrap();
}
