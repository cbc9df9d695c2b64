//! `collect-gpu-stats`: Scrape NVIDIA dcgm-exporter, aggregate per GPU, pod and owner, store the report in S3.

use std::process::ExitCode;

fn main() -> ExitCode {
    opsteps::step::main(collect_gpu_stats::STEP, collect_gpu_stats::run)
}
