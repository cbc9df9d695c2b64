//! Helpers for the step crates' tests.

use std::process::{Command, Output};

/// Runs `bin` with `args` and no inherited opsteps/kube environment, so a developer's
/// `KUBECONFIG` or `AWS_REGION` cannot change a test's outcome.
#[must_use]
pub fn run(bin: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args);
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
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
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
/// - an unknown flag exits 2 with clap's message on stderr and nothing on stdout;
/// - a malformed duration exits 2 and says what is accepted.
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

    let out = run(bin, &["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2), "unknown flag exit code");
    assert!(out.stdout.is_empty(), "stdout is reserved for the result");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument '--no-such-flag'"));

    let out = run(bin, &["--eks-token-lifetime", "15"]);
    assert_eq!(out.status.code(), Some(2), "bad duration exit code");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--eks-token-lifetime") && err.contains("expected a Go duration"),
        "{err}"
    );
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
