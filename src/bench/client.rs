//! `cloudburst bench client`: the Python client benchmark (`python/benchmarks/bench_client.py`)
//! run by the project's Python against `cloudburst local` started from this very binary.
//! Its output (and, with `--json`, its last line: one JSON object) is the benchmark's.
//!
//! The script is part of the source tree, not of the binary: it is looked for under the
//! current directory, then under the tree this binary was built from.

use crate::cli::BenchArgs;
use anyhow::{bail, Context as _};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The benchmark script, relative to the repository root.
const SCRIPT: &str = "python/benchmarks/bench_client.py";

/// Run the client benchmark to completion.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.iterations.is_some() {
        bail!("`cloudburst bench client` does not take --iterations (the script fixes them)");
    }
    let script = find_script()?;
    let python = crate::pyrt::interp::python_program();
    let exe = std::env::current_exe().context("locating the cloudburst binary")?;
    let mut command = Command::new(&python);
    command.arg(&script).arg("--binary").arg(&exe);
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

fn find_script() -> anyhow::Result<PathBuf> {
    let here = std::env::current_dir().unwrap_or_default();
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR"));
    [here.as_path(), built_from]
        .iter()
        .map(|root| root.join(SCRIPT))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{SCRIPT} is in neither {} nor {}: run this from the repository",
                here.display(),
                built_from.display()
            )
        })
}
