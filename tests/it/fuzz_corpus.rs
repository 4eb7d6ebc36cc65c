//! Replays every committed fuzz input through its target on every test run (no fuzzing:
//! the same function the libFuzzer target calls, over `fuzz/corpus/<target>/`, the seeds
//! recorded from real traffic, and `fuzz/regressions/<target>/`, every crash found so
//! far). A decoder change that panics on a known input fails here.
//!
//! Then a short mutation pass per target, bounded in count: seeds with bytes flipped,
//! replaced, inserted, removed, repeated, truncated or spliced with another seed. It is not
//! coverage-guided (that needs the instrumented build `scripts/fuzz.sh` makes, far too slow
//! for CI), but it tries new inputs on every run: the random seed is printed on failure and
//! `CLOUDBURST_FUZZ_SEED=N` replays it.

use cloudburst::fuzz::Target;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

/// A corpus smaller than this was not recorded from a real session (or was lost).
const MIN_SEEDS: usize = 20;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Mutated inputs tried per target and test run (about a second for the four in a debug
/// build).
const MUTATIONS: usize = 20_000;

/// Bytes decoders treat specially (lengths, markers, signs).
const INTERESTING: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xc0, 0xdc, 0xdd, 0xff];

/// One random edit of `data`, sometimes taking bytes of `other`.
fn mutate(rng: &mut StdRng, data: &mut Vec<u8>, other: &[u8]) {
    let at = |rng: &mut StdRng, len: usize| rng.gen_range(0..len.max(1));
    match rng.gen_range(0..7) {
        0 if !data.is_empty() => {
            let i = at(rng, data.len());
            data[i] ^= 1 << rng.gen_range(0..8);
        }
        1 if !data.is_empty() => {
            let i = at(rng, data.len());
            data[i] = INTERESTING[rng.gen_range(0..INTERESTING.len())];
        }
        2 => {
            let i = rng.gen_range(0..=data.len());
            let n = rng.gen_range(1..=8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            data.splice(i..i, bytes);
        }
        3 if !data.is_empty() => {
            let i = at(rng, data.len());
            let end = (i + rng.gen_range(1..=16)).min(data.len());
            data.drain(i..end);
        }
        4 if !data.is_empty() => {
            let i = at(rng, data.len());
            let end = (i + rng.gen_range(1..=32)).min(data.len());
            let copy = data[i..end].to_vec();
            let j = rng.gen_range(0..=data.len());
            data.splice(j..j, copy);
        }
        5 => data.truncate(rng.gen_range(0..=data.len())),
        _ => {
            let cut = rng.gen_range(0..=data.len());
            let from = rng.gen_range(0..=other.len());
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
    }
}

/// Run `target` on [`MUTATIONS`] inputs made from its seeds by one to four edits each.
fn mutation_pass(target: Target) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let seeds: Vec<Vec<u8>> = inputs(&root.join("corpus").join(target.name()))
        .iter()
        .chain(&inputs(&root.join("regressions").join(target.name())))
        .map(|p| std::fs::read(p).expect("read input"))
        .collect();
    assert!(!seeds.is_empty(), "{}: no seeds", target.name());
    let seed = std::env::var("CLOUDBURST_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let mut rng = StdRng::seed_from_u64(seed);
    for n in 0..MUTATIONS {
        let mut data = seeds[rng.gen_range(0..seeds.len())].clone();
        let other = &seeds[rng.gen_range(0..seeds.len())];
        for _ in 0..rng.gen_range(1..=4) {
            mutate(&mut rng, &mut data, other);
        }
        let outcome = std::panic::catch_unwind(|| target.run(&data));
        assert!(
            outcome.is_ok(),
            "{} panics on mutated input {n} (CLOUDBURST_FUZZ_SEED={seed}): {:02x?}",
            target.name(),
            data
        );
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
    mutation_pass(Target::ClientRequest);
}

#[test]
fn peer_frames_of_the_corpus_decode_without_panic() {
    replay(Target::PeerFrame);
    mutation_pass(Target::PeerFrame);
}

#[test]
fn worker_frames_of_the_corpus_decode_without_panic() {
    replay(Target::WorkerFrame);
    mutation_pass(Target::WorkerFrame);
}

#[test]
fn lattice_merges_of_the_corpus_keep_the_laws() {
    replay(Target::LatticeMerge);
    mutation_pass(Target::LatticeMerge);
}
