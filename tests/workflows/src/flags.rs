//! What each step binary accepts, learned by asking it: `<step> --help` (clap's long help) is
//! parsed into flags, whether each takes a value, its possible values and its default. Nothing
//! here lists a step's flags.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// How a flag takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    /// A switch: `--force`.
    None,
    /// `--flag VALUE` or `--flag=VALUE`.
    Required,
    /// `--flag[=VALUE]` (clap `[<BOOL>]`).
    Optional,
}

/// One flag from `--help`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flag {
    /// How it takes a value.
    pub arity: Arity,
    /// Closed set of accepted values (empty: any).
    pub possible: Vec<String>,
    /// `[default: …]`, if shown.
    pub default: Option<String>,
}

/// A step's command line, from its binary.
#[derive(Clone, Debug)]
pub struct Cli {
    /// The binary that was asked.
    pub binary: PathBuf,
    /// Long flag name (without `--`) → flag.
    pub flags: BTreeMap<String, Flag>,
}

/// Parses clap's `--help` output.
#[must_use]
pub fn parse_help(help: &str) -> BTreeMap<String, Flag> {
    let mut flags = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_possible = false;
    for line in help.lines() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        // Flag lines: "  -l, --selector <SELECTOR>" or "      --force".
        let head = t
            .strip_prefix("-")
            .filter(|_| indent <= 6)
            .and_then(|rest| {
                let rest = if rest.starts_with('-') {
                    t
                } else {
                    // "-l, --selector ..."
                    rest.split_once(", ").map(|(_, r)| r)?
                };
                rest.strip_prefix("--")
            });
        if let Some(rest) = head {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let (name, tail) = match name.split_once('=') {
                Some((n, _)) => (n, "<"),
                None => (name, tail.trim()),
            };
            let arity = if tail.starts_with("[<") {
                Arity::Optional
            } else if tail.starts_with('<') {
                Arity::Required
            } else {
                Arity::None
            };
            flags.insert(
                name.to_owned(),
                Flag {
                    arity,
                    possible: Vec::new(),
                    default: None,
                },
            );
            current = Some(name.to_owned());
            in_possible = false;
            continue;
        }
        let Some(flag) = current.as_ref().and_then(|c| flags.get_mut(c)) else {
            continue;
        };
        if let Some(d) = t
            .strip_prefix("[default: ")
            .and_then(|d| d.strip_suffix(']'))
        {
            flag.default = Some(d.to_owned());
        } else if let Some(p) = t
            .strip_prefix("[possible values: ")
            .and_then(|d| d.strip_suffix(']'))
        {
            flag.possible = p.split(", ").map(str::to_owned).collect();
        } else if t == "Possible values:" {
            in_possible = true;
        } else if in_possible && let Some(v) = t.strip_prefix("- ") {
            let v = v.split_once(':').map_or(v, |(v, _)| v);
            flag.possible.push(v.trim().to_owned());
        } else if in_possible && !t.is_empty() {
            in_possible = false;
        }
    }
    flags
}

/// The step binaries, asked once each.
pub struct Steps {
    dirs: Vec<PathBuf>,
    cache: Mutex<BTreeMap<String, Result<Cli, String>>>,
}

impl Steps {
    /// Looks for binaries in `dirs`, in order.
    #[must_use]
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self {
            dirs,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    /// The command line of `step`, or why it could not be learned.
    pub fn cli(&self, step: &str) -> Result<Cli, String> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .entry(step.to_owned())
            .or_insert_with(|| self.ask(step))
            .clone()
    }

    fn ask(&self, step: &str) -> Result<Cli, String> {
        let Some(binary) = self.dirs.iter().map(|d| d.join(step)).find(|p| p.is_file()) else {
            return Err(format!(
                "no binary {step:?} in {} (build it: cargo build --locked -p {step}; or set OPSTEPS_STEP_BIN_DIRS)",
                self.dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ));
        };
        let out = Command::new(&binary)
            .arg("--help")
            .env_remove("RUST_BACKTRACE")
            .output()
            .map_err(|e| format!("cannot run {} --help: {e}", binary.display()))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let first = stderr
                .lines()
                .find(|l| !l.trim().is_empty() && !l.starts_with("thread "))
                .unwrap_or("");
            return Err(format!(
                "{} --help exited with {}: {first}",
                binary.display(),
                out.status
            ));
        }
        let flags = parse_help(&String::from_utf8_lossy(&out.stdout));
        if flags.is_empty() {
            return Err(format!("{} --help lists no flags", binary.display()));
        }
        Ok(Cli { binary, flags })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = "\
Usage: x [OPTIONS]

Options:
      --node <NAME>
          Node to drain

  -l, --selector <SELECTOR>
          Drain these

      --timeout <DURATION>
          How long
          [default: 1h]

      --force
          Also delete

      --ignore-daemonsets [<BOOL>]
          Leave them
          [default: true]
          [possible values: true, false]

      --dry-run <DRY_RUN>
          none: drain

          Possible values:
          - none:   Act for real
          - client: Only plan
          - server: Send with `dryRun=All`, so real
          
          [env: OPSTEPS_DRY_RUN=]
          [default: none]

  -h, --help
          Print help
";

    #[test]
    fn parses_clap_long_help() {
        let f = parse_help(HELP);
        assert_eq!(f["node"].arity, Arity::Required);
        assert_eq!(f["selector"].arity, Arity::Required);
        assert_eq!(f["timeout"].default.as_deref(), Some("1h"));
        assert_eq!(f["force"].arity, Arity::None);
        assert_eq!(f["ignore-daemonsets"].arity, Arity::Optional);
        assert_eq!(f["ignore-daemonsets"].possible, ["true", "false"]);
        assert_eq!(f["dry-run"].possible, ["none", "client", "server"]);
        assert_eq!(f["dry-run"].default.as_deref(), Some("none"));
        assert!(f.contains_key("help"));
        assert_eq!(f.len(), 7);
    }
}
