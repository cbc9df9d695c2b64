//! The binary's command-line contract: documented flags with env fallbacks, exit 2 on bad usage,
//! and `--help` itself as a reviewed snapshot.

#[test]
fn cli_contract() {
    opsteps_testkit::assert_cli_contract(env!("CARGO_BIN_EXE_evict-old-pods"), &["--dry-run"]);
}

#[test]
fn help_snapshot() {
    let out = opsteps_testkit::run(env!("CARGO_BIN_EXE_evict-old-pods"), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!("help", String::from_utf8_lossy(&out.stdout));
}
