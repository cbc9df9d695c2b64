//! `prom-text` parser throughput beside Python's `prometheus_client` parser on the same bodies:
//! the six dcgm-exporter fixtures, and a synthetic 200-node x 8-GPU scrape built from the L4
//! fixture's families (HELP/TYPE kept, one sample per GPU, family-contiguous). Target: 10x.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The `prometheus_client` version the comparison was written against (as `.ci/run` installs).
const PYTHON_CLIENT: &str = "0.26.0";
/// Each side parses an input repeatedly for at least this long.
const MIN_TIME: Duration = Duration::from_secs(2);

/// Times `prometheus_client` over each input (a list of files); prints seconds per pass and
/// samples per pass for each, as JSON.
const PYTHON_TIMER: &str = r"
import json, sys, time
from prometheus_client.parser import text_string_to_metric_families
out = []
for group in json.loads(sys.argv[1]):
    texts = [open(p, encoding='utf-8').read() for p in group]
    runs, samples, t0 = 0, 0, time.perf_counter()
    while True:
        samples = sum(len(f.samples) for t in texts for f in text_string_to_metric_families(t))
        runs += 1
        if time.perf_counter() - t0 >= float(sys.argv[2]) and runs >= 3:
            break
    out.append([(time.perf_counter() - t0) / runs, samples])
print(json.dumps(out))
";

struct Input {
    name: String,
    bodies: Vec<String>,
}

impl Input {
    fn bytes(&self) -> usize {
        self.bodies.iter().map(String::len).sum()
    }
}

struct Speed {
    secs_per_pass: f64,
    samples: usize,
}

fn fixtures_dir() -> PathBuf {
    std::env::var_os("OPSTEPS_SHARED_DIR")
        .map_or_else(|| crate::workspace_root().join("../shared"), PathBuf::from)
        .join("fixtures/dcgm")
}

/// `nodes` x `gpus` copies of every sample in `template` (an exporter body), each family's
/// samples kept together after its HELP/TYPE lines, with `gpu`, `UUID` and `Hostname` varied.
fn synthetic(template: &str, nodes: usize, gpus: usize) -> String {
    let mut out = String::new();
    for line in template.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        for n in 0..nodes {
            for g in 0..gpus {
                let l = line
                    .replacen("gpu=\"0\"", &format!("gpu=\"{g}\""), 1)
                    .replacen("UUID=\"GPU-", &format!("UUID=\"GPU-{n:04}{g}-"), 1)
                    .replacen("Hostname=\"", &format!("Hostname=\"ip-10-0-{n}-{g}."), 1);
                let _ = writeln!(out, "{l}");
            }
        }
    }
    out
}

fn inputs() -> Result<Vec<Input>> {
    let dir = fixtures_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("{} (set OPSTEPS_SHARED_DIR)", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "prom"))
        .collect();
    files.sort();
    let bodies = files
        .iter()
        .map(std::fs::read_to_string)
        .collect::<Result<Vec<_>, _>>()?;
    let l4 = std::fs::read_to_string(dir.join("cncf-k8s-ai-conformance-kops-aws-l4-full.prom"))?;
    Ok(vec![
        Input {
            name: format!("the {} dcgm fixtures", bodies.len()),
            bodies,
        },
        Input {
            name: "1 node, 8 GPUs (from the L4 fixture)".into(),
            bodies: vec![synthetic(&l4, 1, 8)],
        },
        Input {
            name: "200 nodes x 8 GPUs in one body".into(),
            bodies: vec![synthetic(&l4, 200, 8)],
        },
    ])
}

fn ours(input: &Input) -> Speed {
    let mut runs = 0u32;
    let mut samples = 0;
    let t = Instant::now();
    while runs < 3 || t.elapsed() < MIN_TIME {
        samples = input
            .bodies
            .iter()
            .map(|b| black_box(prom_text::parse(black_box(b))).samples.len())
            .sum();
        runs += 1;
    }
    Speed {
        secs_per_pass: t.elapsed().as_secs_f64() / f64::from(runs),
        samples,
    }
}

/// `None` when python3 or prometheus_client is missing (the reason is printed).
fn python(inputs: &[Input]) -> Result<Option<Vec<Speed>>> {
    let dir = std::env::temp_dir().join(format!("opsteps-bench-promtext-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut groups = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let mut group = Vec::new();
        for (j, body) in input.bodies.iter().enumerate() {
            let p = dir.join(format!("{i}-{j}.prom"));
            std::fs::write(&p, body)?;
            group.push(p.display().to_string());
        }
        groups.push(group);
    }
    let out = Command::new("python3")
        .args(["-c", PYTHON_TIMER])
        .arg(serde_json::to_string(&groups)?)
        .arg(MIN_TIME.as_secs_f64().to_string())
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!(
                "(Python side skipped: {}; install it with `python3 -m pip install prometheus_client=={PYTHON_CLIENT}`)\n",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            return Ok(None);
        }
        Err(e) => {
            println!("(Python side skipped: python3: {e})\n");
            return Ok(None);
        }
    };
    let v: Vec<(f64, usize)> = serde_json::from_slice(&out.stdout)?;
    Ok(Some(
        v.into_iter()
            .map(|(secs_per_pass, samples)| Speed {
                secs_per_pass,
                samples,
            })
            .collect(),
    ))
}

pub fn run() -> Result<()> {
    let inputs = inputs()?;
    let version = Command::new("python3")
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('prometheus_client'))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "not installed".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        );
    println!("## prom-text parser vs Python prometheus_client {version} (same bodies)\n");
    let theirs = python(&inputs)?;
    println!(
        "| input | size | samples | parser | MB/s | samples/s | ratio |\n|---|---|---|---|---|---|---|"
    );
    for (i, input) in inputs.iter().enumerate() {
        let mine = ours(input);
        let mb = input.bytes() as f64 / 1e6;
        let line = |who: &str, s: &Speed, ratio: &str| {
            println!(
                "| {} | {:.2} MB | {} | {who} | {:.1} | {:.0} | {ratio} |",
                input.name,
                mb,
                s.samples,
                mb / s.secs_per_pass,
                s.samples as f64 / s.secs_per_pass,
            );
        };
        line("prom-text", &mine, "");
        if let Some(p) = theirs.as_ref().and_then(|t| t.get(i)) {
            let ratio = p.secs_per_pass / mine.secs_per_pass;
            let agree = if p.samples == mine.samples {
                ""
            } else {
                " (sample counts differ!)"
            };
            line(
                "prometheus_client",
                p,
                &format!("prom-text {ratio:.1}x faster (target ≥ 10x){agree}"),
            );
        }
    }
    println!();
    Ok(())
}
