//! Command-line interface: `local`, `node`, `bench`, `cert` (and the hidden `worker`
//! process mode).
//!
//! Flags also read environment variables (`CLOUDBURST_*`, shown in `--help`); both override
//! the optional TOML file given by `--config`. The merged result is validated once.

use crate::config::{parse_roles, Config, ConfigError, Durability, Role};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "cloudburst",
    version,
    about = "Cloudburst: stateful Functions-as-a-Service over a lattice KVS",
    long_about = "Cloudburst: stateful Functions-as-a-Service.\n\n\
        Users register Python functions and DAGs from the Python client (pip install ./python) \
        and call them over a websocket; functions share state in an Anna-style KVS of lattices \
        through caches co-located with the executors."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a whole cluster in one process on this machine (KVS, scheduler, executors with
    /// their cache, gateway, dashboard).
    Local(LocalArgs),
    /// Run one node of a real cluster, playing any subset of roles.
    Node(NodeArgs),
    /// Run a benchmark and print median/p99 figures (`--json`: last line is one JSON object).
    Bench(BenchArgs),
    /// Declare a crashed KVS node's data lost: keys only it held read as missing from then
    /// on, instead of `unavailable` until it returns. For a node that will not come back
    /// with its data (disk gone); run it against any live member.
    DeclareLost(DeclareLostArgs),
    /// Make a test certificate authority and a server certificate for a test cluster
    /// (ca.pem for clients, cert.pem and key.pem for --tls-cert and --tls-key). A cluster
    /// others use wants a certificate from a real CA: see docs/security.md.
    Cert(CertArgs),
    /// Internal: a Python worker process, started by an executor's pool.
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// Arguments of `cert`.
#[derive(Debug, Args, Clone)]
pub struct CertArgs {
    /// Directory to write ca.pem, cert.pem and key.pem in (made if missing; files already
    /// there are not overwritten).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// Names clients connect to (DNS names or IP addresses), comma separated.
    #[arg(
        long,
        value_name = "HOST,...",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1,::1"
    )]
    pub hosts: Vec<String>,
}

/// Arguments of the hidden `worker` mode (set by the pool that spawns it).
#[derive(Debug, Args, Clone)]
pub struct WorkerArgs {
    /// Unix socket of the supervising pool.
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// Largest frame to send or accept.
    #[arg(long, value_name = "BYTES", default_value_t = crate::pyrt::pool::DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,
    /// The Python program to embed (a venv's python); unset: CLOUDBURST_PYTHON, else the
    /// one this binary was built against.
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Limit the worker's address space to this many bytes.
    #[arg(long, value_name = "BYTES")]
    pub memory_bytes: Option<u64>,
    /// Run functions as this user (when the worker starts as root).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// A path functions must not see (repeatable).
    #[arg(long, value_name = "PATH")]
    pub hide: Vec<PathBuf>,
}

impl WorkerArgs {
    /// What the worker process needs to know.
    pub fn options(&self) -> crate::pyrt::worker::WorkerOptions {
        crate::pyrt::worker::WorkerOptions {
            socket: self.socket.clone(),
            max_frame: self.max_frame_bytes,
            python: self
                .python
                .clone()
                .unwrap_or_else(crate::pyrt::interp::python_program),
            memory_bytes: self.memory_bytes,
            confinement: crate::pyrt::confine::Confinement {
                user: self.user.clone(),
                hide: self.hide.clone(),
            },
        }
    }
}

/// Options every server mode shares.
#[derive(Debug, Args, Clone, Default)]
pub struct CommonArgs {
    /// TOML config file (flags and environment variables override it).
    #[arg(long, env = "CLOUDBURST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    pub dump_config: bool,
    /// Peer listener address (node-to-node transport).
    #[arg(long, env = "CLOUDBURST_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Client websocket listener address.
    #[arg(long, env = "CLOUDBURST_CLIENT_LISTEN", value_name = "ADDR")]
    pub client_listen: Option<SocketAddr>,
    /// Dashboard and /metrics listener address.
    #[arg(long, env = "CLOUDBURST_DASHBOARD_LISTEN", value_name = "ADDR")]
    pub dashboard_listen: Option<SocketAddr>,
    /// This node's admin HTTP listener: /healthz, /readyz, /metrics (node.admin_listen).
    #[arg(long, env = "CLOUDBURST_ADMIN_LISTEN", value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Refused: a secret on the command line is visible to every user of this machine
    /// (`ps`, /proc/PID/cmdline). Use CLOUDBURST_CLUSTER_SECRET or --cluster-secret-file.
    #[arg(long, hide = true, value_name = "SECRET")]
    pub cluster_secret: Option<String>,
    /// File holding the secret every peer must present to join; or set it in
    /// CLOUDBURST_CLUSTER_SECRET.
    #[arg(long, env = "CLOUDBURST_CLUSTER_SECRET_FILE", value_name = "FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Refused: a token on the command line is visible to every user of this machine. Use
    /// CLOUDBURST_TOKEN or --token-file.
    #[arg(long, hide = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// File holding the token clients and the dashboard must present; or set it in
    /// CLOUDBURST_TOKEN. Neither: a loopback gateway uses this user's token file
    /// (~/.config/cloudburst/token, made on first start), which the Python client finds.
    #[arg(long, env = "CLOUDBURST_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Let clients connect without a token (loopback listeners only): any program or web
    /// page that reaches the gateway can then run code as this user.
    #[arg(long, env = "CLOUDBURST_NO_AUTH")]
    pub no_auth: bool,
    /// PEM certificate chain the client websocket and the dashboard serve over TLS
    /// (wss://, https://); with --tls-key. `cloudburst cert` makes one for a test cluster.
    #[arg(
        long,
        env = "CLOUDBURST_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        env = "CLOUDBURST_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Replicas per KVS key.
    #[arg(long, env = "CLOUDBURST_REPLICATION", value_name = "K")]
    pub replication: Option<usize>,
    /// KVS shards per KVS node (0 = one per core but one, at least one).
    #[arg(long, env = "CLOUDBURST_KVS_SHARDS", value_name = "N")]
    pub kvs_shards: Option<usize>,
    /// Python worker processes per executor node (0 = one per core).
    #[arg(long, env = "CLOUDBURST_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
    /// The python of the environment functions run in (for the packages they import):
    /// same Python major.minor as cloudburst's, with cloudpickle installed.
    #[arg(long, env = "CLOUDBURST_PYTHON", value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Allow listeners on addresses outside 127.0.0.0/8.
    #[arg(long, env = "CLOUDBURST_ALLOW_NON_LOOPBACK")]
    pub allow_non_loopback: bool,
    /// Keep durable state (KVS logs and snapshots, the node's id) in this directory.
    #[arg(long, env = "CLOUDBURST_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep nothing on disk: a throw-away node (or cluster, for `local`).
    #[arg(long, env = "CLOUDBURST_EPHEMERAL", conflicts_with = "data_dir")]
    pub ephemeral: bool,
    /// When a KVS write is acknowledged: none (memory only), interval (synced every
    /// kvs.flush_interval_ms), always (synced first).
    #[arg(long, env = "CLOUDBURST_DURABILITY", value_name = "MODE")]
    pub durability: Option<Durability>,
    /// Most executor nodes the monitor may run (autoscale.max_executors).
    #[arg(long, env = "CLOUDBURST_MAX_EXECUTORS", value_name = "N")]
    pub max_executors: Option<usize>,
}

#[derive(Debug, Args, Clone)]
pub struct LocalArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args, Clone)]
pub struct DeclareLostArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The id of the crashed node (as in its `view changed` log lines and the dashboard).
    #[arg(value_name = "NODE_ID")]
    pub node: String,
    /// Live members to reach the cluster through, comma separated (any one will do).
    #[arg(
        long,
        required = true,
        value_name = "SEED_ADDR,...",
        value_delimiter = ','
    )]
    pub join: Vec<String>,
}

impl DeclareLostArgs {
    /// The config to reach the cluster with: the secret and transport settings of the
    /// usual sources, a peer listener on a free loopback port unless `--listen` is given.
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        let mut c = self.common.to_config()?;
        if self.common.listen.is_none() {
            c.node.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        }
        c.node.join = self.join.clone();
        c.validate()?;
        Ok(c)
    }
}

#[derive(Debug, Args, Clone)]
pub struct NodeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Roles this node plays, comma separated: kvs,scheduler,executor,gateway,monitor.
    #[arg(long, env = "CLOUDBURST_ROLES", value_parser = parse_roles, value_name = "ROLES")]
    pub roles: Option<BTreeSet<Role>>,
    /// Nodes already in the cluster as host:port, comma separated (any live one will do;
    /// names are resolved again on every attempt); omit to start a new cluster.
    #[arg(
        long,
        env = "CLOUDBURST_JOIN",
        value_name = "HOST:PORT,...",
        value_delimiter = ','
    )]
    pub join: Vec<String>,
    /// Form a new cluster if this node's data directory records none (the first node of
    /// a cluster). Without it a node needs --join or a data directory of a cluster.
    #[arg(long, env = "CLOUDBURST_BOOTSTRAP")]
    pub bootstrap: bool,
    /// The address other nodes reach this node's peer listener at (node.advertise);
    /// needed when --listen is a wildcard such as 0.0.0.0.
    #[arg(long, env = "CLOUDBURST_ADVERTISE", value_name = "ADDR")]
    pub advertise: Option<SocketAddr>,
    /// Stable node name (defaults to the peer listen address).
    #[arg(long, env = "CLOUDBURST_NODE_ID", value_name = "NAME")]
    pub node_id: Option<String>,
    /// Start the executor's Python workers, then wait for a launch line on stdin before
    /// joining (how the monitor's local provider keeps standby executor nodes).
    #[arg(long, hide = true)]
    pub standby: bool,
}

/// The benchmarks `cloudburst bench` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Lattice merges per second per type, small and 1 KB values.
    Lattice,
    /// Peer transport round trip and pipelined throughput between two node processes.
    Transport,
    /// KVS get/put latency (8 B and 1 MB) and pipelined ops/s against a KVS node.
    Kvs,
    /// The DAG incr -> square through the in-process API.
    Compose,
    /// The Python client against `cloudburst local` (python/benchmarks/bench_client.py).
    Client,
    /// The same DAG workload under each consistency mode.
    Consistency,
    /// Calls from 8 threads while executor nodes are SIGKILLed
    /// (python/benchmarks/bench_faults.py): hung, lost and duplicate calls, time to re-run.
    Faults,
    /// A step load against `cloudburst local` with its monitor
    /// (python/benchmarks/bench_autoscale.py): time to decision and to capacity, calls
    /// lost and failed, executor nodes over time (written to docs/).
    Autoscale,
    /// A skewed read load on 3 KVS nodes with and without selective replication of hot
    /// keys, and a fill past the storage mark (python/benchmarks/bench_kvs_elastic.py):
    /// request imbalance, hot-key get latency, time to a new KVS node, keys lost.
    KvsElastic,
    /// Per-call overhead of the Python worker pool vs an in-process call; parallel speedup.
    #[value(hide = true)]
    Python,
}

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// Which benchmark to run.
    #[arg(value_enum)]
    pub workload: Workload,
    /// Make the last line of output one JSON object with the results.
    #[arg(long)]
    pub json: bool,
    /// Measured iterations (after warm-up) where the workload counts iterations.
    #[arg(long, value_name = "N")]
    pub iterations: Option<usize>,
    /// `kvs`: the durability of the KVS node, or several comma separated (e.g.
    /// none,interval,always) to compare them alternately in one run, with the disk's
    /// fdatasync time and recovery speed.
    #[arg(long, value_name = "MODES", value_delimiter = ',')]
    pub durability: Option<Vec<Durability>>,
}

/// A command-line error in one line with a hint: clap's message, its details (a tip, the
/// possible values) if it has any, and where the full usage is (`--help` of the subcommand
/// named in `args`, the command line that failed to parse).
pub fn error_line(e: &clap::Error, args: &[String]) -> String {
    let text = e.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    let mut line = format!("error: {}", first.trim_start_matches("error: "));
    // clap's usage and "try --help" lines are replaced by the hint below.
    for detail in lines.take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more")) {
        line.push_str(&format!("; {}", detail.trim_start_matches("tip: ")));
    }
    let cli = <Cli as clap::CommandFactory>::command();
    let sub = args
        .iter()
        .skip(1)
        .find(|a| cli.get_subcommands().any(|s| s.get_name() == a.as_str()));
    match sub {
        Some(sub) => line.push_str(&format!(" (see 'cloudburst {sub} --help')")),
        None => line.push_str(" (see 'cloudburst --help')"),
    }
    line
}

impl CommonArgs {
    /// Defaults, then the file, then flags/environment; validated.
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(a) = self.listen {
            c.node.listen = a;
        }
        if let Some(a) = self.client_listen {
            c.gateway.client_listen = a;
        }
        if let Some(a) = self.dashboard_listen {
            c.gateway.dashboard_listen = a;
        }
        if let Some(a) = self.admin_listen {
            c.node.admin_listen = Some(a);
        }
        self.apply_secrets(&mut c)?;
        if let Some(k) = self.replication {
            c.kvs.replication = k;
        }
        if let Some(n) = self.kvs_shards {
            c.kvs.shards_per_node = n;
        }
        if let Some(n) = self.workers {
            c.executor.workers = n;
        }
        if let Some(p) = &self.python {
            c.executor.python = Some(p.clone());
        }
        if self.allow_non_loopback {
            c.node.allow_non_loopback = true;
        }
        if let Some(d) = &self.data_dir {
            c.node.data_dir = Some(d.clone());
        }
        if let Some(d) = self.durability {
            c.kvs.durability = Some(d);
        }
        if let Some(n) = self.max_executors {
            c.autoscale.max_executors = n;
        }
        if self.ephemeral {
            c.node.data_dir = None;
            c.kvs.durability = Some(Durability::None);
        }
        if let Some(p) = &self.tls_cert {
            c.gateway.tls_cert = Some(p.clone());
        }
        if let Some(p) = &self.tls_key {
            c.gateway.tls_key = Some(p.clone());
        }
        // Secrets functions must not read: the TLS key too, wherever it was named.
        let key = c.gateway.tls_key.clone();
        c.private_paths = [
            &self.config,
            &self.token_file,
            &self.cluster_secret_file,
            &key,
        ]
        .into_iter()
        .flatten()
        .filter_map(|p| p.canonicalize().ok())
        .collect();
        Ok(c)
    }
}

/// Environment variable holding the cluster secret.
pub const CLUSTER_SECRET_ENV: &str = "CLOUDBURST_CLUSTER_SECRET";
/// Environment variable holding the client token.
pub const TOKEN_ENV: &str = "CLOUDBURST_TOKEN";

/// Longest secret file read (a secret is one line).
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

impl CommonArgs {
    /// Secrets come from their files or environment variables, never from the command line
    /// (every user of the machine can read a command line).
    fn apply_secrets(&self, c: &mut Config) -> Result<(), ConfigError> {
        for (flag, given, env, file) in [
            (
                "--cluster-secret",
                self.cluster_secret.is_some(),
                CLUSTER_SECRET_ENV,
                "--cluster-secret-file",
            ),
            ("--token", self.token.is_some(), TOKEN_ENV, "--token-file"),
        ] {
            if given {
                return Err(ConfigError::Invalid(format!(
                    "{flag} puts a secret on the command line, where every user of this machine can read it: set {env} or pass {file} FILE"
                )));
            }
        }
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(s) = from_env(CLUSTER_SECRET_ENV) {
            c.node.cluster_secret = s;
        }
        if let Some(path) = &self.cluster_secret_file {
            c.node.cluster_secret = read_secret_file(path)?;
        }
        if let Some(t) = from_env(TOKEN_ENV) {
            c.gateway.token = Some(t);
        }
        if let Some(path) = &self.token_file {
            c.gateway.token = Some(read_secret_file(path)?);
        }
        if self.no_auth {
            c.gateway.auth = false;
        }
        Ok(())
    }
}

/// The one-line secret in `path` (surrounding whitespace dropped).
pub fn read_secret_file(path: &std::path::Path) -> Result<String, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > MAX_SECRET_FILE_BYTES {
        return Err(ConfigError::Invalid(format!(
            "{} is over {MAX_SECRET_FILE_BYTES} bytes: not a secret file",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(ConfigError::Invalid(format!("{} is empty", path.display())));
    }
    Ok(secret.to_string())
}

impl NodeArgs {
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        let mut c = self.common.to_config()?;
        if let Some(r) = &self.roles {
            c.node.roles = r.clone();
        }
        if !self.join.is_empty() {
            c.node.join = self.join.clone();
        }
        if self.bootstrap {
            c.node.bootstrap = true;
        }
        if let Some(a) = self.advertise {
            c.node.advertise = Some(a);
        }
        if let Some(id) = &self.node_id {
            c.node.id = id.clone();
        }
        c.validate()?;
        Ok(c)
    }
}

impl LocalArgs {
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        let mut c = self.common.to_config()?;
        // Every role this build can play: asking for one it cannot would only warn.
        c.node.roles = crate::node::playable();
        c.node.join = Vec::new();
        c.node.bootstrap = true;
        // State survives restarts unless asked otherwise.
        if !self.common.ephemeral && c.node.data_dir.is_none() {
            c.node.data_dir = Some(default_local_dir().ok_or_else(|| {
                ConfigError::Invalid(
                    "no data directory for the local cluster: neither XDG_DATA_HOME nor HOME is set; pass --data-dir DIR, or --ephemeral to keep nothing".into(),
                )
            })?);
        }
        c.validate()?;
        Ok(c)
    }
}

/// Where `cloudburst local` keeps its state by default: `$XDG_DATA_HOME/cloudburst/local`,
/// else `$HOME/.local/share/cloudburst/local`.
pub fn default_local_dir() -> Option<PathBuf> {
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base =
        env("XDG_DATA_HOME").or_else(|| env("HOME").map(|h| h.join(".local").join("share")))?;
    Some(base.join("cloudburst").join("local"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn node_flags_override_file_defaults() {
        let cli = Cli::try_parse_from([
            "cloudburst",
            "node",
            "--roles",
            "kvs,executor",
            "--listen",
            "127.0.0.1:7100",
            "--join",
            "127.0.0.1:6100,127.0.0.1:6101",
            "--replication",
            "2",
        ])
        .expect("parses");
        let Command::Node(args) = cli.command else {
            panic!("expected node")
        };
        let c = args.to_config().expect("valid");
        assert_eq!(c.node.roles.len(), 2);
        assert_eq!(c.node.listen.port(), 7100);
        assert_eq!(c.node.join.len(), 2, "several seeds");
        assert_eq!(c.kvs.replication, 2);
    }

    #[test]
    fn local_plays_every_role_the_monitor_included() {
        let cli = Cli::try_parse_from(["cloudburst", "local"]).expect("parses");
        let Command::Local(args) = cli.command else {
            panic!("expected local")
        };
        let roles = args.to_config().expect("valid").node.roles;
        assert_eq!(roles, crate::node::playable());
        assert!(roles.contains(&Role::Gateway) && roles.contains(&Role::Monitor));
    }

    #[test]
    fn a_node_without_roles_plays_every_role_but_the_monitor() {
        let cli = Cli::try_parse_from(["cloudburst", "node"]).expect("parses");
        let Command::Node(args) = cli.command else {
            panic!("expected node")
        };
        let roles = args.to_config().expect("valid").node.roles;
        assert!(!roles.contains(&Role::Monitor), "{roles:?}");
        assert!(roles.contains(&Role::Executor) && roles.contains(&Role::Gateway));
        let cli =
            Cli::try_parse_from(["cloudburst", "node", "--roles", "kvs,monitor"]).expect("parses");
        let Command::Node(args) = cli.command else {
            panic!("expected node")
        };
        assert!(args
            .to_config()
            .expect("valid")
            .node
            .roles
            .contains(&Role::Monitor));
    }

    #[test]
    fn a_bad_flag_is_one_line_with_a_hint() {
        let line = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            error_line(&Cli::try_parse_from(&args).unwrap_err(), &args)
        };
        assert_eq!(
            line(&["cloudburst", "local", "--bogus"]),
            "error: unexpected argument '--bogus' found (see 'cloudburst local --help')"
        );
        let l = line(&["cloudburst", "node", "--lisen", "x"]);
        assert!(!l.contains('\n'), "{l}");
        assert!(l.contains("'--listen'"), "clap's suggestion is kept: {l}");
        assert!(l.ends_with("(see 'cloudburst node --help')"), "{l}");
        let l = line(&["cloudburst", "bench", "nope"]);
        assert!(l.starts_with("error: invalid value 'nope'"), "{l}");
        assert!(l.contains("[possible values: lattice,"), "{l}");
        assert!(l.ends_with("(see 'cloudburst bench --help')"), "{l}");
        let l = line(&["cloudburst", "nope"]);
        assert!(l.ends_with("(see 'cloudburst --help')"), "{l}");
    }

    fn local(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["cloudburst", "local"];
        all.extend_from_slice(args);
        let Command::Local(a) = Cli::try_parse_from(all).expect("parses").command else {
            panic!("expected local")
        };
        a.to_config()
    }

    #[test]
    fn local_keeps_state_by_default_and_ephemeral_keeps_none() {
        let c = local(&[]).expect("valid");
        assert_eq!(c.node.data_dir, default_local_dir());
        assert_eq!(c.durability(), Durability::Interval);
        let c = local(&["--ephemeral"]).expect("valid");
        assert_eq!((c.durability(), c.node.data_dir), (Durability::None, None));
        let c = local(&["--data-dir", "/tmp/x", "--durability", "always"]).expect("valid");
        assert_eq!(c.durability(), Durability::Always);
        assert!(
            Cli::try_parse_from(["cloudburst", "local", "--ephemeral", "--data-dir", "/x"])
                .is_err()
        );
    }

    #[test]
    fn a_node_is_durable_when_given_a_directory() {
        let parse = |args: &[&str]| {
            let mut all = vec!["cloudburst", "node"];
            all.extend_from_slice(args);
            let Command::Node(a) = Cli::try_parse_from(all).expect("parses").command else {
                panic!("expected node")
            };
            a.to_config()
        };
        assert_eq!(parse(&[]).expect("valid").durability(), Durability::None);
        let c = parse(&["--data-dir", "/tmp/n1"]).expect("valid");
        assert_eq!(c.durability(), Durability::Interval);
        let err = parse(&["--durability", "always"]).unwrap_err().to_string();
        assert!(err.contains("needs a data directory"), "{err}");
    }

    #[test]
    fn max_executors_flag_sets_the_autoscale_key_and_is_validated() {
        let c = local(&["--max-executors", "3", "--ephemeral"]).expect("valid");
        assert_eq!(c.autoscale.max_executors, 3);
        let dump = c.dump();
        assert!(
            dump.contains("[autoscale]") && dump.contains("max_executors = 3"),
            "{dump}"
        );
        let err = local(&["--max-executors", "0"]).unwrap_err().to_string();
        assert!(err.contains("autoscale.max_executors"), "{err}");
    }

    #[test]
    fn bad_role_is_a_usage_error() {
        let err = Cli::try_parse_from(["cloudburst", "node", "--roles", "kvs,cook"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
