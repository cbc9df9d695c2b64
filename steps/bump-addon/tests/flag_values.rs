//! Property: no value of a duration or number flag makes bump-addon panic or hang. Each case runs
//! the binary against a small sandbox, for real (so the waits see the values), moving coredns
//! to the version it already runs: nothing to send, so no case may mutate. A refused value exits
//! 2 with a JSON result and a termination line.

use std::process::Output;

use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use opsteps_testkit::flags;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const BIN: &str = env!("CARGO_BIN_EXE_bump-addon");
const DURATION_FLAGS: &[&str] = &[
    "--timeout",
    "--poll-interval",
    "--degraded-grace",
    "--eks-token-lifetime",
];
const NUMBER_FLAGS: &[&str] = &["--healthy-reads"];

struct Fixture {
    _rt: tokio::runtime::Runtime,
    sb: Sandbox,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let yaml = r#"
cluster: {name: prod-a, region: us-east-1, version: "1.32"}
eks:
  addons: [{name: coredns, version: v1.11.4-eksbuild.14}]
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

    fn check(&self, flags: &[(String, String)]) -> Output {
        let tl = self.dir.path().join("termination-log");
        let _ = std::fs::remove_file(&tl);
        let mut cmd = opsteps_testkit::clean_command(BIN);
        cmd.args(["--eks-cluster", "prod-a", "--region", "us-east-1"])
            .args(["--addon", "coredns", "--addon-version", "latest"])
            .arg("--output-dir")
            .arg(self.dir.path().join("out"))
            .arg("--termination-log")
            .arg(&tl)
            .args(flags.iter().map(|(f, v)| format!("{f}={v}")))
            .envs(opsteps_sandbox::eks::client_env(
                &self.sb.eks_url(),
                "us-east-1",
            ));
        let out = run_bounded(cmd);
        let what = format!("bump-addon {flags:?}");
        opsteps_testkit::assert_no_panic(&out, &what);
        let updates = self.sb.with(|c| c.eks.requests_of("UpdateAddon").len());
        assert_eq!(updates, 0, "{what}: sent UpdateAddon");
        assert!(self.sb.mutations().is_empty(), "{what}: mutated");
        if out.status.code() == Some(2) {
            let result: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{what}: stdout is not one JSON result: {e}"));
            assert_eq!(result["exitCode"], 2, "{what}: {result}");
            let line = std::fs::read_to_string(&tl).unwrap_or_default();
            assert!(line.starts_with("bad-input: "), "{what}: {line}");
        } else {
            assert_eq!(out.status.code(), Some(0), "{what}");
        }
        out
    }
}

/// Runs `cmd` (which needs the sandbox's AWS environment, so not `flags::run_bounded`), killing
/// it and failing after two minutes: a value must not hang the step either.
fn run_bounded(mut cmd: std::process::Command) -> Output {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    if let Ok(out) = rx.recv_timeout(std::time::Duration::from_mins(2)) {
        return out.unwrap();
    }
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    panic!("bump-addon still running after 2 minutes");
}

#[test]
fn no_flag_value_panics_the_step() {
    let fx = Fixture::new();
    for (flag, value) in [
        ("--timeout", "87600h"),
        ("--poll-interval", "87600h"),
        ("--degraded-grace", "87600h"),
        ("--timeout", "0s"),
        ("--healthy-reads", "0"),
        ("--healthy-reads", "4294967296"),
    ] {
        fx.check(&[(flag.to_owned(), value.to_owned())]);
    }
    // Modest: every case starts the binary (the machine's CPU is shared).
    let mut runner = TestRunner::new(Config {
        cases: 16,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &prop::collection::vec(flags::flag_value(DURATION_FLAGS, NUMBER_FLAGS), 1..=3),
            |flags| {
                fx.check(&flags);
                Ok(())
            },
        )
        .unwrap();
}
