//! `validate-workflows [FILES|DIRS]`: the checks `cargo test` runs on workflows/, on any file.
//! References resolve against the given files plus the repository's workflows/.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use opsteps_workflows_check::{Checker, Config, load, repo_root};

fn main() -> ExitCode {
    match run() {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("validate-workflows: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<usize> {
    let workflows = repo_root().join("workflows");
    let mut args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if args.is_empty() {
        args.push(workflows.clone());
    }
    let mut targets = Vec::new();
    for a in &args {
        if a.is_dir() {
            targets.extend(load::load_dir(a)?);
        } else {
            targets.extend(load::load_file(a)?);
        }
    }
    let context = load::load_dir(&workflows).context("reading workflows/ for references")?;
    let checker = Checker::new(&Config::from_env())?;
    let findings = checker.check(&targets, &context);
    for f in &findings {
        eprintln!("{f}");
    }
    eprintln!(
        "validate-workflows: {} documents, {} findings",
        targets.len(),
        findings.len()
    );
    Ok(findings.len())
}
