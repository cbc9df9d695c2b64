//! Helpers for the step crates' tests.

use std::process::{Command, Output};

/// Runs `bin` with `args` and no inherited opsteps/kube environment, so a developer's
/// `KUBECONFIG` or `AWS_REGION` cannot change a test's outcome.
#[must_use]
pub fn run(bin: &str, args: &[&str]) -> Output {
    run_env(bin, args, &[])
}

/// [`run`] with `env` set (after the inherited opsteps/kube/AWS variables are removed).
#[must_use]
pub fn run_env(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = clean_command(bin);
    cmd.args(args).envs(env.iter().copied());
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

/// Asserts that a step run ended by its own decision: an exit code of 0–4, not a signal, not a
/// panic (101 in test builds, 134 with the release profile's `panic = "abort"`).
///
/// # Panics
/// When it did not.
pub fn assert_no_panic(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    assert!(
        code.is_some_and(|c| (0..=4).contains(&c)) && !stderr.contains("panicked at"),
        "{what}: exit {:?} ({}); stderr:\n{stderr}",
        code,
        out.status
    );
}

/// A command for `bin` without the inherited opsteps/kube/AWS environment.
#[must_use]
pub fn clean_command(bin: &str) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("OPSTEPS_")
            || k.starts_with("ARGO_")
            || k.starts_with("AWS_")
            || k == "KUBECONFIG"
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// The flags listed in `--help` output, with the text of each flag's block.
#[must_use]
pub fn help_flags(help: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        let flag_line = (2..=6).contains(&indent)
            && (t.starts_with("--") || (t.starts_with('-') && t.get(2..4) == Some(", ")));
        if flag_line {
            let name = t
                .split([' ', ','])
                .find(|w| w.starts_with("--"))
                .unwrap_or(t)
                .to_owned();
            out.push((name, String::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push_str(t);
            last.1.push('\n');
        }
    }
    out
}

/// Checks the CLI contract every step binary keeps:
/// - `--help` exits 0 on stdout, and lists every flag in `must_have`;
/// - each flag except `--help`/`--version` has a description and an `[env: …]` fallback;
/// - `--version` exits 0;
/// - bad usage (an unknown flag, a malformed duration) ends like any bad input: exit 2, clap's
///   message on stderr, one JSON result on stdout with `status: bad-input`, `exitCode: 2` and
///   the error, and one line in the termination log (`--termination-log`, even when given
///   before the bad flag), saying what is accepted.
pub fn assert_cli_contract(bin: &str, must_have: &[&str]) {
    let out = run(bin, &["--help"]);
    assert_eq!(out.status.code(), Some(0), "--help exit code");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(help.contains("Usage:"), "{help}");
    let flags = help_flags(&help);
    for want in must_have.iter().chain(
        [
            "--kubeconfig",
            "--context",
            "--eks-cluster",
            "--region",
            "--expect-cluster",
            "--log-format",
            "--output-dir",
        ]
        .iter(),
    ) {
        assert!(
            flags.iter().any(|(f, _)| f == want),
            "{bin} --help lacks {want}:\n{help}"
        );
    }
    for (flag, block) in &flags {
        if flag == "--help" || flag == "--version" {
            continue;
        }
        let described = block.lines().any(|l| !l.is_empty() && !l.starts_with('['));
        assert!(described, "{flag} has no description in {bin} --help");
        assert!(
            block.contains("[env: "),
            "{flag} has no env fallback in {bin} --help:\n{block}"
        );
    }

    let out = run(bin, &["--version"]);
    assert_eq!(out.status.code(), Some(0), "--version exit code");

    let dir = std::env::temp_dir().join(format!(
        "opsteps-cli-{}-{}",
        std::process::id(),
        bin.rsplit('/').next().unwrap_or("step")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let tl = dir.join("termination-log");
    let tl_arg = tl.display().to_string();

    let out = run(bin, &["--termination-log", &tl_arg, "--no-such-flag"]);
    let err = assert_usage_error(&out, &tl, "--no-such-flag");
    assert!(
        err.contains("unexpected argument '--no-such-flag'"),
        "{err}"
    );

    let _ = std::fs::remove_file(&tl);
    let out = run(
        bin,
        &[
            &format!("--termination-log={tl_arg}"),
            "--eks-token-lifetime",
            "15",
        ],
    );
    let err = assert_usage_error(&out, &tl, "--eks-token-lifetime");
    assert!(err.contains("expected a Go duration"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Checks one bad-usage run (see [`assert_cli_contract`]); returns stderr.
///
/// # Panics
/// When the run broke the contract.
#[must_use]
pub fn assert_usage_error(out: &Output, termination_log: &std::path::Path, flag: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "bad usage exit code; stderr: {err}"
    );
    assert!(err.contains(flag), "stderr names {flag}: {err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one JSON result line: {stdout}");
    let result: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(result["status"], "bad-input", "{result}");
    assert_eq!(result["exitCode"], 2, "{result}");
    let error = result["error"].as_str().unwrap_or_default();
    assert!(error.contains(flag) && error.contains("--help"), "{result}");
    let line = std::fs::read_to_string(termination_log).expect("termination log written");
    assert!(
        line.starts_with("bad-input: ") && line.contains(flag),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1, "{line}");
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_flags_and_their_blocks() {
        let help = "Usage: x\n\nOptions:\n      --dry-run <M>\n          Show what\n\n          [env: D=]\n  -h, --help\n          Print help\n";
        let f = help_flags(help);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].0, "--dry-run");
        assert!(f[0].1.contains("[env: D=]"));
        assert_eq!(f[1].0, "--help");
    }
}

/// Flag values for the "no value panics a step" properties (`tests/flag_values.rs` of each step).
pub mod flags {
    use std::process::{Output, Stdio};
    use std::time::Duration;

    use proptest::prelude::*;

    /// Go durations, well-formed or not: small, huge (past the 87600h cap and u64 nanoseconds),
    /// the edges of the cap, and near-misses (signs, fractions, unknown units).
    pub fn duration_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{1,3}(ns|ms|s|m|h)",
            "[0-9]{5,22}(s|m|h)",
            "(87600h|87599h59m59s|5256000m|87600h1s|100000000h|0|0s|1ns)",
            "[+-]?[0-9]{0,4}(\\.[0-9]{0,3})?[a-z]{0,2}",
        ]
    }

    /// Integers of every width and sign, and numbers past i64.
    pub fn number_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[0-9]{1,3}",
            "-?[0-9]{19,30}",
            Just("-1".to_owned()),
        ]
    }

    /// One `(flag, value)` from the step's duration and number flags.
    pub fn flag_value(
        duration_flags: &'static [&'static str],
        number_flags: &'static [&'static str],
    ) -> impl Strategy<Value = (String, String)> {
        prop_oneof![
            (prop::sample::select(duration_flags), duration_value())
                .prop_map(|(f, v)| (f.to_owned(), v)),
            (prop::sample::select(number_flags), number_value())
                .prop_map(|(f, v)| (f.to_owned(), v)),
        ]
    }

    /// Runs `bin` with `args`, killing it (and failing) after two minutes: a value must not
    /// hang a step either.
    #[must_use]
    pub fn run_bounded(bin: &str, args: &[String]) -> Output {
        let child = super::clean_command(bin)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        if let Ok(out) = rx.recv_timeout(Duration::from_mins(2)) {
            return out.unwrap();
        }
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        panic!("{bin} {args:?} still running after 2 minutes");
    }
}
