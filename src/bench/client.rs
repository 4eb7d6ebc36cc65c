//! The benchmarks written in Python, run by the project's Python against processes of this
//! very binary: `cloudburst bench client` (`python/benchmarks/bench_client.py`, the client
//! against `cloudburst local`) and `cloudburst bench faults`
//! (`python/benchmarks/bench_faults.py`, calls while executor nodes are SIGKILLed) and
//! `cloudburst bench autoscale` (`python/benchmarks/bench_autoscale.py`, a step load
//! against `cloudburst local` and its monitor) and `cloudburst bench kvs-elastic`
//! (`python/benchmarks/bench_kvs_elastic.py`, a skewed read load and a fill against KVS
//! nodes). Their
//! output (and, with `--json`, their last line: one JSON object) is the benchmark's.
//!
//! The scripts are part of the source tree, not of the binary: each is looked for under
//! the current directory, then under the tree this binary was built from.

use crate::cli::BenchArgs;
use anyhow::{bail, Context as _};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The client benchmark script, relative to the repository root.
const CLIENT_SCRIPT: &str = "python/benchmarks/bench_client.py";
/// The fault benchmark script, relative to the repository root.
const FAULTS_SCRIPT: &str = "python/benchmarks/bench_faults.py";

/// The autoscaling benchmark script, relative to the repository root.
const AUTOSCALE_SCRIPT: &str = "python/benchmarks/bench_autoscale.py";

/// The KVS elasticity benchmark script, relative to the repository root.
const KVS_ELASTIC_SCRIPT: &str = "python/benchmarks/bench_kvs_elastic.py";

/// Run the KVS elasticity benchmark to completion (its load is fixed by the script).
pub fn kvs_elastic(args: &BenchArgs) -> anyhow::Result<()> {
    if args.iterations.is_some() {
        bail!(
            "`cloudburst bench kvs-elastic` does not take --iterations (the script fixes the load)"
        );
    }
    run_script(KVS_ELASTIC_SCRIPT, args, &[])
}

/// Run the autoscaling benchmark to completion (its load is fixed by the script).
pub fn autoscale(args: &BenchArgs) -> anyhow::Result<()> {
    if args.iterations.is_some() {
        bail!(
            "`cloudburst bench autoscale` does not take --iterations (the script fixes the load)"
        );
    }
    run_script(AUTOSCALE_SCRIPT, args, &[])
}

/// Run the client benchmark to completion.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.iterations.is_some() {
        bail!("`cloudburst bench client` does not take --iterations (the script fixes them)");
    }
    run_script(CLIENT_SCRIPT, args, &[])
}

/// Run the fault benchmark to completion; `--iterations` is the number of calls.
pub fn faults(args: &BenchArgs) -> anyhow::Result<()> {
    let calls = args.iterations.map(|n| n.to_string());
    let extra: Vec<&str> = match &calls {
        Some(n) => vec!["--calls", n],
        None => Vec::new(),
    };
    run_script(FAULTS_SCRIPT, args, &extra)
}

fn run_script(name: &str, args: &BenchArgs, extra: &[&str]) -> anyhow::Result<()> {
    let script = find_script(name)?;
    let python = crate::pyrt::interp::python_program();
    let exe = std::env::current_exe().context("locating the cloudburst binary")?;
    let mut command = Command::new(&python);
    command.arg(&script).arg("--binary").arg(&exe).args(extra);
    if args.json {
        command.arg("--json");
    }
    let status = command
        .status()
        .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
    if !status.success() {
        bail!("{} exited with {status}", script.display());
    }
    Ok(())
}

fn find_script(name: &str) -> anyhow::Result<PathBuf> {
    let here = std::env::current_dir().unwrap_or_default();
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR"));
    [here.as_path(), built_from]
        .iter()
        .map(|root| root.join(name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{name} is in neither {} nor {}: run this from the repository",
                here.display(),
                built_from.display()
            )
        })
}
