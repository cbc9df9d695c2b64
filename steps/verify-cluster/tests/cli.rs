//! The binary's command-line contract: documented flags with env fallbacks, exit 2 on bad usage.

#[test]
fn cli_contract() {
    opsteps_testkit::assert_cli_contract(
        env!("CARGO_BIN_EXE_verify-cluster"),
        &[
            "--profile",
            "--check",
            "--skip",
            "--target-kubernetes",
            "--expect-kubernetes",
            "--fail-on",
        ],
    );
}

/// `--help` as a reviewed snapshot: a flag, default or env name change is a visible diff.
#[test]
fn help_snapshot() {
    let out = opsteps_testkit::run_env(
        env!("CARGO_BIN_EXE_verify-cluster"),
        &["--help"],
        &[("COLUMNS", "100")],
    );
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!(String::from_utf8(out.stdout).unwrap());
}
