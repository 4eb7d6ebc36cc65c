//! Replays every committed fuzz input through its target on every test run (no fuzzing:
//! the same function the libFuzzer target calls, over `fuzz/corpus/<target>/`, the seeds
//! recorded from real traffic, and `fuzz/regressions/<target>/`, every crash found so
//! far). A decoder change that panics on a known input fails here.

use cloudburst::fuzz::Target;
use std::path::{Path, PathBuf};

/// A corpus smaller than this was not recorded from a real session (or was lost).
const MIN_SEEDS: usize = 20;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn replay(target: Target) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let seeds = inputs(&root.join("corpus").join(target.name()));
    assert!(
        seeds.len() >= MIN_SEEDS,
        "{}: only {} seeds in fuzz/corpus",
        target.name(),
        seeds.len()
    );
    let crashes = inputs(&root.join("regressions").join(target.name()));
    for path in seeds.iter().chain(&crashes) {
        let data = std::fs::read(path).expect("read input");
        let outcome = std::panic::catch_unwind(|| target.run(&data));
        assert!(
            outcome.is_ok(),
            "{} panics on {}",
            target.name(),
            path.display()
        );
    }
    seeds.len() + crashes.len()
}

#[test]
fn client_requests_of_the_corpus_decode_without_panic() {
    replay(Target::ClientRequest);
}

#[test]
fn peer_frames_of_the_corpus_decode_without_panic() {
    replay(Target::PeerFrame);
}

#[test]
fn worker_frames_of_the_corpus_decode_without_panic() {
    replay(Target::WorkerFrame);
}

#[test]
fn lattice_merges_of_the_corpus_keep_the_laws() {
    replay(Target::LatticeMerge);
}
