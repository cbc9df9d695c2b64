//! The binary's command-line contract: documented flags with env fallbacks, exit 2 on bad usage.

#[test]
fn cli_contract() {
    opsteps_testkit::assert_cli_contract(env!("CARGO_BIN_EXE_drain-node"), &["--dry-run"]);
}
