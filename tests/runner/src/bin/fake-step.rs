//! Test-only stand-in for a step binary (never shipped): the runner's tests map container
//! commands to it. Its behaviour comes from `--fake-*` arguments or, for templates whose
//! arguments are the real step's, the same names as `FAKE_*` environment variables
//! (`--fake-exit` ↔ `FAKE_EXIT`). Other arguments are ignored, except `--output-dir=DIR`,
//! where relative `--fake-write` names go. An empty value counts as absent.
//!
//! SIGTERM handling (`ignore-term`, `on-term`) is in place before anything else. In order:
//! `counter=PATH` (add one to the count in PATH), `record-env=PATH`,
//! `record-args=PATH` (relative paths are in the node directory, the working directory),
//! `wait-for=PATH` (until PATH exists; exit 4 after 30 s), `progress=N/M` (to ARGO_PROGRESS_FILE), `ignore-term` (SIGTERM does not stop it),
//! `on-term=PATH` (a SIGTERM during the sleep writes "TERM" to PATH and exits 3, as a step
//! stops safely), `sleep=SECS` (only while the count is at most `sleep-times`, when given), `write=NAME=VALUE` (repeatable; `;`-separated in FAKE_WRITE),
//! `write-hex=NAME=HEX` (bytes, e.g. invalid UTF-8), `mkdir=NAME` (a directory),
//! `stdout=TEXT`, `stdout-bytes=N` (N bytes of `x` lines on stdout), `termination=TEXT` (to OPSTEPS_TERMINATION_LOG), `interval-log=PATH` (appends
//! "START_MS END_MS"), then exit with `fail-code` (default 3) while the count is at most
//! `fail-times`, else with `exit` (default 0).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

struct Opts {
    args: Vec<String>,
}

impl Opts {
    fn all(&self, key: &str) -> Vec<String> {
        let flag = format!("--fake-{key}");
        let mut out: Vec<String> = self
            .args
            .iter()
            .filter_map(|a| {
                if *a == flag {
                    Some("1".to_owned())
                } else {
                    a.strip_prefix(&format!("{flag}=")).map(str::to_owned)
                }
            })
            .filter(|v| !v.is_empty())
            .collect();
        let env = format!("FAKE_{}", key.to_uppercase().replace('-', "_"));
        if let Ok(v) = std::env::var(env) {
            if key == "write" {
                out.extend(v.split(';').filter(|s| !s.is_empty()).map(str::to_owned));
            } else {
                out.push(v);
            }
        }
        out
    }

    fn one(&self, key: &str) -> Option<String> {
        self.all(key).into_iter().next()
    }
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(path, text)
        .unwrap_or_else(|e| panic!("fake-step: writing {}: {e}", path.display()));
}

/// `write-hex`, `mkdir` and `stdout-bytes`: what real steps should not produce.
fn odd_outputs(o: &Opts, output_dir: Option<&Path>) {
    let in_output_dir = |name: &str| match (output_dir, Path::new(name).is_absolute()) {
        (Some(d), false) => d.join(name),
        _ => PathBuf::from(name),
    };
    for w in o.all("write-hex") {
        let Some((name, hex)) = w.split_once('=') else {
            continue;
        };
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect();
        let path = in_output_dir(name);
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
        std::fs::write(&path, bytes).expect("fake-step: write-hex");
    }
    for d in o.all("mkdir") {
        std::fs::create_dir_all(in_output_dir(&d)).expect("fake-step: mkdir");
    }
    if let Some(n) = o.one("stdout-bytes").and_then(|n| n.parse::<usize>().ok()) {
        let line = "x".repeat(99) + "\n";
        let mut out = std::io::stdout().lock();
        for _ in 0..n / line.len() {
            let _ = out.write_all(line.as_bytes());
        }
        let _ = out.flush();
    }
}

/// Sleeps `secs`; false when a SIGTERM came first and `on_term` recorded it.
async fn sleep(
    secs: f64,
    term: Option<&mut tokio::signal::unix::Signal>,
    on_term: Option<&str>,
) -> bool {
    let sleep = tokio::time::sleep(Duration::from_secs_f64(secs));
    if let (Some(t), Some(path)) = (term, on_term) {
        tokio::select! {
            () = sleep => true,
            _ = t.recv() => {
                write(Path::new(path), "TERM");
                false
            }
        }
    } else {
        sleep.await;
        true
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let start = now_ms();
    let o = Opts {
        args: std::env::args().skip(1).collect(),
    };
    let output_dir = o
        .args
        .iter()
        .find_map(|a| a.strip_prefix("--output-dir="))
        .map(PathBuf::from);
    let on_term = o.one("on-term");
    let mut term = if o.one("ignore-term").is_some() || on_term.is_some() {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok()
    } else {
        None
    };
    let mut count = 0u64;
    if let Some(c) = o.one("counter") {
        count = std::fs::read_to_string(&c)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
            + 1;
        write(Path::new(&c), &count.to_string());
    }
    if let Some(p) = o.one("wait-for") {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !Path::new(&p).exists() {
            if std::time::Instant::now() > deadline {
                return ExitCode::from(4);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if let Some(p) = o.one("record-env") {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let mut text = String::new();
        for (k, v) in &env {
            text.push_str(k);
            text.push('=');
            text.push_str(v);
            text.push('\n');
        }
        write(Path::new(&p), &text);
    }
    if let Some(p) = o.one("record-args") {
        write(Path::new(&p), &(o.args.join("\n") + "\n"));
    }
    if let (Some(p), Ok(file)) = (o.one("progress"), std::env::var("ARGO_PROGRESS_FILE")) {
        write(Path::new(&file), &p);
    }
    let sleep_times: u64 = o
        .one("sleep-times")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if let Some(s) = o.one("sleep").and_then(|s| s.parse::<f64>().ok())
        && (sleep_times == 0 || count <= sleep_times)
        && !sleep(s, term.as_mut(), on_term.as_deref()).await
    {
        return ExitCode::from(3);
    }
    for w in o.all("write") {
        let Some((name, value)) = w.split_once('=') else {
            continue;
        };
        let path = match (&output_dir, Path::new(name).is_absolute()) {
            (Some(d), false) => d.join(name),
            _ => PathBuf::from(name),
        };
        write(&path, value);
    }
    odd_outputs(&o, output_dir.as_deref());
    if let Some(s) = o.one("stdout") {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{s}");
    }
    if let (Some(t), Ok(file)) = (
        o.one("termination"),
        std::env::var("OPSTEPS_TERMINATION_LOG"),
    ) {
        write(Path::new(&file), &t);
    }
    if let Some(p) = o.one("interval-log") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .expect("fake-step: interval log");
        let _ = writeln!(f, "{start} {}", now_ms());
    }
    let fail_times: u64 = o
        .one("fail-times")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let code: u8 = if count > 0 && count <= fail_times {
        o.one("fail-code").and_then(|v| v.parse().ok()).unwrap_or(3)
    } else {
        o.one("exit").and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    ExitCode::from(code)
}
