//! A node of the cluster, above the transport: the roles it plays and the two commands
//! that run one. `net` knows nothing of this layer; the exit code of a failure is decided
//! by `app`, never here.
//!
//! - [`roles`]: starting the roles of a node (stopping what started when a later role
//!   fails), waiting until they can serve, stopping them.
//! - [`drain`]: draining a node before it stops (SIGTERM, scale-down, `preStop`): no new
//!   work, finish what it holds, then leave.
//! - [`operator`]: operator commands that talk to a running cluster (`declare-lost`).
//! - `dashboard`: the dashboard of a `gateway` node, wired to the cluster's sources.
//! - [`observe`]: the `Node` service every node runs: its own figures and call logs.
//! - `admin`: every node's admin HTTP port: `/healthz`, `/readyz`, `/metrics`.
//! - [`ready`]: the readiness lines on stdout and their parser.
//! - [`standby`]: a standby executor node: its Python workers start before a launch.
//! - `serve`: the one serve loop: start, readiness line, signal (or a failed sync), stop.
//! - [`storage`]: the data directory: lock, identity, recovery before joining, members.
//! - [`token`]: the per-user client token file of a gateway given no token.
//!
//! `cloudburst node` ([`Mode::Node`]) plays the configured roles and needs a cluster
//! secret. `cloudburst local` ([`Mode::Local`]) is the whole cluster in one process, bound
//! to 127.0.0.1 unless told otherwise; it makes up a secret when none is set, and prints
//! its readiness line only once a client's first request can be served. Both drain then
//! stop on Ctrl-C or SIGTERM (a second signal cuts the drain short); a port already in use
//! fails the start with the address in the message.

pub mod admin;
mod dashboard;
pub mod drain;
pub mod observe;
pub mod operator;
pub mod ready;
pub mod roles;
mod serve;
pub mod standby;
pub mod storage;
pub mod token;

pub use drain::{drain_deadline, Drained};
pub use ready::{local_line, node_line, parse_node_line};
pub use roles::{playable, NodeRoles, NotReady, RoleError, HANDOFF_LIMIT, NOT_YET};
pub use serve::Signals;

use crate::config::Config;
use std::fmt;

/// Bytes of randomness in the cluster secret `local` makes up when none is configured (the
/// peer listener is still reachable on loopback, so it must not be guessable).
const GENERATED_SECRET_BYTES: usize = 32;

/// Which command runs the node: they differ in the secret they need, what "ready" means
/// and the readiness line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `cloudburst node`: one node of a real cluster.
    Node,
    /// `cloudburst local`: the whole cluster in one process.
    Local,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Node => "node",
            Mode::Local => "local cluster",
        })
    }
}

/// Why a node did not run (whatever had started was stopped first).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A usage error: the configuration lacks what this mode needs.
    #[error("a node needs a cluster secret (--cluster-secret or CLOUDBURST_CLUSTER_SECRET)")]
    NoSecret,
    #[error("cannot start the {mode}: {source}")]
    Start { mode: Mode, source: RoleError },
    #[error("the local cluster is not ready: {0}")]
    NotReady(#[from] NotReady),
    #[error("{0}")]
    Token(#[from] token::TokenError),
    /// The KVS log could not be synced: the node stopped rather than acknowledge writes it
    /// may have lost.
    #[error("stopped: {0}")]
    Storage(String),
    #[error(transparent)]
    Standby(#[from] standby::StandbyError),
}

/// Run `cfg` as `mode` until SIGTERM or Ctrl-C.
pub fn run(cfg: Config, mode: Mode) -> Result<(), NodeError> {
    run_with(cfg, mode, false)
}

/// [`run`]; a `standby` node starts its Python workers, then waits for a launch on stdin
/// before it joins (see [`standby`]).
pub fn run_with(mut cfg: Config, mode: Mode, standby: bool) -> Result<(), NodeError> {
    close_to_same_user();
    if cfg.node.cluster_secret.is_empty() {
        match mode {
            Mode::Node => return Err(NodeError::NoSecret),
            Mode::Local => cfg.node.cluster_secret = random_secret(),
        }
    }
    announce_token(mode, token::resolve(&mut cfg)?);
    if mode == Mode::Local {
        // Printed before anything starts, so it is seen even when the directory is locked.
        match &cfg.node.data_dir {
            Some(dir) => eprintln!(
                "cloudburst local: state is kept in {} (kvs.durability = {}); --ephemeral keeps nothing",
                dir.display(),
                cfg.durability()
            ),
            None => eprintln!("cloudburst local: ephemeral, nothing is kept after it stops"),
        }
    }
    actix::System::new().block_on(serve::serve(cfg, mode, standby))
}

/// Say where clients find the token (or that they need none), before anything starts.
fn announce_token(mode: Mode, source: token::TokenSource) {
    let who = match mode {
        Mode::Node => "cloudburst node",
        Mode::Local => "cloudburst local",
    };
    match source {
        token::TokenSource::NotNeeded => {}
        token::TokenSource::Disabled => {
            tracing::warn!("--no-auth: clients connect without a token, so any program or web page that reaches the gateway can run code as this user");
            eprintln!("{who}: WARNING: --no-auth: any program on this machine can run code as this user through the gateway");
        }
        token::TokenSource::File { path, created } => eprintln!(
            "{who}: clients authenticate with the token in {} ({}; the Python client reads it for local URLs)",
            path.display(),
            if created { "made now" } else { "this user's" }
        ),
    }
}

/// Make this process undumpable: other processes of the same user (a function's worker,
/// anything it starts) can no longer ptrace it or read its `/proc/<pid>/environ`, `mem`
/// and `maps`, where the token and the cluster secret are; it leaves no core dump either.
/// Its Python workers are new programs and do not inherit this.
fn close_to_same_user() {
    // SAFETY: prctl(PR_SET_DUMPABLE) only sets a flag of this process.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        tracing::warn!(cause = %std::io::Error::last_os_error(),
            "cannot make the node undumpable: processes of this user can read its memory");
    }
}

fn random_secret() -> String {
    (0..GENERATED_SECRET_BYTES)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}
