//! `cloudburst bench lattice`: merges per second per lattice type.

use crate::cli::BenchArgs;

pub fn run(_args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("the lattice benchmark is not available yet in this build")
}
