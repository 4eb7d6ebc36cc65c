//! Node configuration: defaults, then an optional TOML file, then environment variables and
//! flags (clap merges those two), validated once at start by [`Config::validate`].
//!
//! Every limit lives here with its reason, so `--dump-config` shows all that is in effect.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use crate::storage::Durability;
pub use autoscale::AutoscaleConfig;
pub use kubernetes::KubernetesConfig;
pub use kvs_autoscale::KvsAutoscaleConfig;

mod autoscale;
mod kubernetes;
mod kvs_autoscale;

/// What went wrong while loading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("bad config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// A role a node can play. A node plays any non-empty subset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Kvs,
    Scheduler,
    Executor,
    Gateway,
    Monitor,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Kvs,
        Role::Scheduler,
        Role::Executor,
        Role::Gateway,
        Role::Monitor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Kvs => "kvs",
            Role::Scheduler => "scheduler",
            Role::Executor => "executor",
            Role::Gateway => "gateway",
            Role::Monitor => "monitor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s.trim())
            .ok_or_else(|| {
                format!("unknown role `{s}` (expected one of kvs, scheduler, executor, gateway, monitor)")
            })
    }
}

/// Parse a comma-separated role list such as `kvs,scheduler`.
pub fn parse_roles(s: &str) -> Result<BTreeSet<Role>, String> {
    let roles = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(Role::from_str)
        .collect::<Result<BTreeSet<_>, _>>()?;
    if roles.is_empty() {
        return Err("at least one role is needed".into());
    }
    Ok(roles)
}

/// The whole effective configuration of one node (or of the `local` cluster).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub node: NodeConfig,
    pub transport: TransportConfig,
    pub membership: MembershipConfig,
    pub kvs: KvsConfig,
    pub executor: ExecutorConfig,
    pub gateway: GatewayConfig,
    pub consistency: ConsistencyConfig,
    pub autoscale: AutoscaleConfig,
    pub kubernetes: KubernetesConfig,
    pub kvs_autoscale: KvsAutoscaleConfig,
    /// Files the node read secrets from (the config file, `--token-file`,
    /// `--cluster-secret-file`): hidden from functions. Not part of the file format.
    #[serde(skip)]
    pub private_paths: Vec<PathBuf>,
}

/// The consistency modes' timing rules (see `src/actors/executor/session.rs`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConsistencyConfig {
    /// Repeatable read: a session's pinned versions are dropped after this long without a
    /// read of them (the caller vanished, or the release was lost). A session that reads
    /// again after it fails with `session_expired` rather than see another version.
    pub session_ttl_ms: u64,
    /// Causal: dependencies and vector-clock entries older than this are dropped from the
    /// metadata (garbage collection).
    pub causal_horizon_ms: u64,
    /// Causal: a cached value last confirmed by the KVS longer ago than this is re-read
    /// before a causal read uses it. Must be shorter than the horizon by more than a write
    /// can take, which is what makes dropping old dependencies safe.
    pub causal_lease_ms: u64,
}

impl Default for ConsistencyConfig {
    fn default() -> Self {
        ConsistencyConfig {
            session_ttl_ms: 600_000,
            causal_horizon_ms: 30_000,
            causal_lease_ms: 10_000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Stable node name; empty means "use the advertised peer address".
    pub id: String,
    /// Roles this node plays (ignored by `local`, which plays every role this build can).
    /// Without it a node plays every role but `monitor`: autoscaling launches processes,
    /// so a node does it only when asked (`--roles ...,monitor`).
    pub roles: BTreeSet<Role>,
    /// Peer listener (node-to-node transport).
    pub listen: SocketAddr,
    /// The address other nodes use to reach this one (its peer listener as they see it).
    /// Defaults to `listen`, which then must not be a wildcard (0.0.0.0, [::]): a wildcard
    /// names no host another node could connect to. Port 0 means `listen`'s bound port.
    pub advertise: Option<SocketAddr>,
    /// Members to join through, as `host:port` (any live one will do; tried in turn until
    /// one answers); names are resolved again on every attempt, so a seed may be a DNS name
    /// whose address changes (a Kubernetes headless service).
    pub join: Vec<String>,
    /// Allow this node to form a new cluster when its data directory records none. Off, a
    /// node needs `join` seeds or a recorded cluster: restarting a seed must not make a
    /// second, empty cluster. A cluster formed in this run still joins an established one
    /// that reaches it (`cloudburst local` forms one implicitly).
    pub bootstrap: bool,
    /// The admin HTTP listener (`/healthz`, `/readyz`, `/metrics` of this node), on any
    /// node whatever its roles. None: no admin port.
    pub admin_listen: Option<SocketAddr>,
    /// Shared secret every peer must present in the handshake. Never printed.
    pub cluster_secret: String,
    /// Allow listeners on non-loopback addresses (off by default: a node binds to
    /// 127.0.0.0/8 unless told otherwise).
    pub allow_non_loopback: bool,
    /// Where the node keeps durable state (its KVS shards' logs and snapshots, its id and
    /// last known members), locked against a second process. None: nothing is kept.
    pub data_dir: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TransportConfig {
    /// Largest peer frame accepted or sent. Bounds the memory one peer can make us
    /// allocate; must exceed the largest KVS value plus envelope overhead.
    pub max_frame_bytes: usize,
    /// Frames queued per peer connection before senders wait (back-pressure).
    pub peer_queue_depth: usize,
    /// A request with no response after this long fails with a timeout error.
    pub request_timeout_ms: u64,
    /// First reconnect delay; doubles up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// A connection attempt (TCP connect + handshake) that takes longer fails.
    pub connect_timeout_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MembershipConfig {
    /// How often a node tells its peers it is alive.
    pub heartbeat_ms: u64,
    /// Silence after which a peer is suspected.
    pub suspect_after_ms: u64,
    /// Silence after which a peer is declared dead and leaves the hash ring.
    pub dead_after_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KvsConfig {
    /// KvsShard actors per KVS node; 0 means one per core but one, at least one (the
    /// node's network thread keeps a core busy too: on 2 cores, 1 shard served 221k ops/s
    /// where 2 shards served 183k, docs/benchmarks.md).
    pub shards_per_node: usize,
    /// Replicas per key (k): an acknowledged write survives the loss of k-1 of them.
    pub replication: usize,
    /// Virtual nodes per KVS node on the hash ring (smooths the key distribution).
    pub virtual_nodes: usize,
    /// Replicas gossip changed keys at least this often.
    pub gossip_interval_ms: u64,
    /// Largest value accepted by a put, in bytes.
    pub max_value_bytes: usize,
    /// When a write is acknowledged relative to the disk: `none` (memory only),
    /// `interval` (synced every `flush_interval_ms`; a power loss loses at most that
    /// window) or `always` (synced before the acknowledgement). Unset: `interval` with a
    /// data directory, `none` without.
    pub durability: Option<Durability>,
    /// `interval` mode syncs the log at least this often (and `always` mode syncs what no
    /// writer waits for, such as dropped keys, this often).
    pub flush_interval_ms: u64,
    /// A log segment is closed and a new one started beyond this size (old segments are
    /// deleted whole once a snapshot covers them).
    pub segment_bytes: u64,
    /// A snapshot is taken once the log since the last one reaches this size and the
    /// shard's data size (so snapshots cost at most as much as the log they replace, and
    /// recovery reads at most about twice the data).
    pub snapshot_min_bytes: u64,
    /// Changes waiting for the disk, per shard, beyond which client writes are refused
    /// (a disk slower than the writes must not grow memory without bound, nor the window
    /// `interval` mode can lose).
    pub max_pending_log_bytes: usize,
    /// Future results (`__cloudburst/results/*`) are deleted this long after they were
    /// written (0: kept until deleted), so the store does not grow with every call.
    pub result_ttl_ms: u64,
    /// A replica drops a tombstone (what a delete leaves) no sooner than this after it came
    /// to hold it, and only once every other replica confirmed it: longer than a write,
    /// gossip or hand-off can be under way, so at least `transport.request_timeout_ms` +
    /// `kvs.gossip_interval_ms`.
    pub tombstone_grace_ms: u64,
    /// Bytes this node's shards may hold before the monitor counts it full (storage
    /// elasticity adds a node past `kvs_autoscale.storage_high` of the cluster's budget);
    /// 0: a quarter of the machine's memory, leaving the rest to the executors, caches
    /// and the Python workers that share it.
    pub memory_budget_bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutorConfig {
    /// Python worker processes per executor node; 0 means one per core.
    pub workers: usize,
    /// Default function timeout (a function may ask for a shorter or longer one).
    pub function_timeout_ms: u64,
    /// Cache capacity per executor node, in bytes (LRU beyond it).
    pub cache_capacity_bytes: usize,
    /// How often each cache tells the schedulers which keys it holds (locality freshness
    /// versus report traffic).
    pub cache_report_interval_ms: u64,
    /// Executors above this utilisation (0..=1) are skipped by the scheduler.
    pub utilisation_threshold: f64,
    /// The `cloudburst` binary the Python workers run (`cloudburst worker`); unset means
    /// this executable (tests and embedders that are not `cloudburst` set it).
    pub worker_exe: Option<std::path::PathBuf>,
    /// The environment variables workers (and so functions) see, passed through from the
    /// node's environment; nothing else of it reaches them. `CLOUDBURST_*` variables are
    /// never passed (they hold the platform's secrets).
    pub worker_env: Vec<String>,
    /// Address space one Python worker (and each process its functions start) may use, in
    /// bytes; a call that needs more fails with `memory_limit` and its worker is replaced.
    /// 0: no limit.
    pub worker_memory_bytes: u64,
    /// The user functions run as when the node runs as root (empty: `nobody`). Workers of
    /// a node running as another user run as that user. `"root"` runs functions as root.
    pub worker_user: String,
    /// The `python` of the environment functions run in (its packages are what they can
    /// import); unset means the environment `cloudburst` was built against. Checked at
    /// start: same Python major.minor as the one embedded, with `cloudpickle`.
    pub python: Option<std::path::PathBuf>,
    /// Workers an executor may start beyond `workers` while its workers wait on the
    /// platform (a `recv` that found nothing, a `get` of a missing key) and calls queue,
    /// so functions that wait for each other finish on any worker count. Each costs a
    /// Python process (tens of MB).
    pub max_extra_workers: usize,
}

/// The user functions of a node running as root run as by default: it owns nothing.
pub const DEFAULT_WORKER_USER: &str = "nobody";

impl ExecutorConfig {
    /// The user to run functions as: the configured one, else [`DEFAULT_WORKER_USER`] when
    /// this process is root; `None`: this process's user.
    pub fn worker_user(&self) -> Option<String> {
        if !self.worker_user.is_empty() {
            return Some(self.worker_user.clone());
        }
        // SAFETY: geteuid has no preconditions.
        (unsafe { libc::geteuid() } == 0).then(|| DEFAULT_WORKER_USER.to_string())
    }
}

/// Smallest `executor.worker_memory_bytes`: the embedded interpreter, the glue and the
/// worker's threads take about 150 MiB of address space before any function runs.
pub const MIN_WORKER_MEMORY_BYTES: u64 = 256 * MIB as u64;

/// What [`ExecutorConfig::worker_env`] passes by default: where programs and the Python
/// path are, the locale and time zone, the temporary directory, the user's home, and the
/// workers' own log level.
pub const DEFAULT_WORKER_ENV: &[&str] = &[
    "PATH",
    "PYTHONPATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "RUST_LOG",
];

/// Prefix of the platform's own environment variables, which never reach functions.
pub const PLATFORM_ENV_PREFIX: &str = "CLOUDBURST_";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Client websocket listener.
    pub client_listen: SocketAddr,
    /// Dashboard and `/metrics` listener.
    pub dashboard_listen: SocketAddr,
    /// The token clients, the dashboard and `/metrics` must present. Never printed. Unset,
    /// a gateway on loopback takes the per-user token file's (made on first start); a
    /// gateway reachable from other machines must be given one.
    pub token: Option<String>,
    /// Whether clients must present the token (`--no-auth` turns it off, on loopback
    /// listeners only: a gateway runs code for whoever reaches it).
    pub auth: bool,
    /// Whether `/metrics` needs the token too (when one is set). Turn off for a Prometheus
    /// scraper inside a trusted network that cannot send a bearer token.
    pub metrics_require_token: bool,
    /// Web pages (origins, `https://app.example:8443`) allowed to use the websocket and the
    /// dashboard besides the gateway's own; any other page a browser opens is refused.
    pub allowed_origins: Vec<String>,
    /// Largest client websocket message (a reassembled frame), in bytes.
    pub max_message_bytes: usize,
    /// The gateway pings each client this often (keeps idle connections through proxies
    /// and finds dead ones).
    pub heartbeat_ms: u64,
    /// A client that sends nothing (not even a pong) for this long is disconnected.
    pub client_timeout_ms: u64,
    /// Bytes of request messages one client connection may have running at once; beyond
    /// it the gateway stops reading that connection until requests finish (a message
    /// larger than this runs alone).
    pub max_in_flight_bytes: usize,
    /// Bytes of responses one connection may leave unread; beyond it the client is taken
    /// for one that does not read and is disconnected (a response larger than this is
    /// sent when nothing else waits).
    pub max_queued_response_bytes: usize,
    /// Bytes of messages still arriving (partly received), summed over every client
    /// connection of the gateway; the connection that would exceed it is closed ("send it
    /// again"). At least `max_message_bytes`, so one message of the largest size fits.
    pub max_receiving_bytes: usize,
    /// Threads serving client websockets. Sessions mostly wait on the cluster, so one
    /// thread serves thousands of clients; more help only when many clients send large
    /// values at once (each thread decodes its sessions' messages), and cost thread
    /// wake-ups on every call.
    pub http_workers: usize,
    /// PEM certificate chain (the server's first) the websocket and the dashboard serve
    /// over TLS (`wss://`, `https://`); with `tls_key`. Unset: plain `ws://` and `http://`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`. Hidden from functions.
    pub tls_key: Option<PathBuf>,
}

const MIB: usize = 1024 * 1024;

/// With `kvs.memory_budget_bytes = 0` the KVS takes this share (1/n) of the machine's
/// memory: the executors' caches and Python workers share the machine.
pub const MEMORY_BUDGET_SHARE: u64 = 4;
/// The budget when the machine's memory cannot be read (not Linux): 1 GiB.
pub const FALLBACK_MEMORY_BUDGET: u64 = 1024 * 1024 * 1024;

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn machine_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// What `--dump-config` prints in place of a secret. Fed back as a config file it would be
/// taken for the secret itself, so [`Config::validate`] refuses it.
pub const REDACTED: &str = "<redacted>";

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: String::new(),
            roles: Role::ALL
                .into_iter()
                .filter(|r| *r != Role::Monitor)
                .collect(),
            listen: SocketAddr::from(([127, 0, 0, 1], 6100)),
            advertise: None,
            join: Vec::new(),
            bootstrap: false,
            admin_listen: None,
            cluster_secret: String::new(),
            allow_non_loopback: false,
            data_dir: None,
        }
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_frame_bytes: 80 * MIB,
            peer_queue_depth: 1024,
            request_timeout_ms: 5_000,
            reconnect_min_ms: 50,
            reconnect_max_ms: 2_000,
            connect_timeout_ms: 2_000,
        }
    }
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            heartbeat_ms: 250,
            suspect_after_ms: 1_000,
            dead_after_ms: 3_000,
        }
    }
}

impl Default for KvsConfig {
    fn default() -> Self {
        KvsConfig {
            shards_per_node: 0,
            replication: 1,
            virtual_nodes: 64,
            gossip_interval_ms: 50,
            max_value_bytes: 64 * MIB,
            durability: None,
            flush_interval_ms: 1_000,
            segment_bytes: 64 * MIB as u64,
            snapshot_min_bytes: 64 * MIB as u64,
            max_pending_log_bytes: 16 * MIB,
            result_ttl_ms: 600_000,
            tombstone_grace_ms: 60_000,
            memory_budget_bytes: 0,
        }
    }
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            workers: 0,
            function_timeout_ms: 30_000,
            cache_capacity_bytes: 512 * MIB,
            cache_report_interval_ms: 1000,
            utilisation_threshold: 0.9,
            worker_exe: None,
            worker_env: DEFAULT_WORKER_ENV.iter().map(|s| s.to_string()).collect(),
            worker_memory_bytes: 0,
            worker_user: String::new(),
            python: None,
            max_extra_workers: 32,
        }
    }
}

impl GatewayConfig {
    /// The client listeners other machines can reach that serve without TLS: the token
    /// (and every value) crosses the network in the clear.
    pub fn exposed_in_clear(&self) -> Vec<(&'static str, SocketAddr)> {
        if self.tls_cert.is_some() {
            return Vec::new();
        }
        [
            ("gateway.client_listen", self.client_listen),
            ("gateway.dashboard_listen", self.dashboard_listen),
        ]
        .into_iter()
        .filter(|(_, a)| !a.ip().is_loopback())
        .collect()
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            client_listen: SocketAddr::from(([127, 0, 0, 1], 6200)),
            dashboard_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            auth: true,
            metrics_require_token: true,
            allowed_origins: Vec::new(),
            max_message_bytes: 80 * MIB,
            heartbeat_ms: 5_000,
            client_timeout_ms: 30_000,
            max_in_flight_bytes: 256 * MIB,
            max_queued_response_bytes: 256 * MIB,
            max_receiving_bytes: 256 * MIB,
            http_workers: 1,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Config {
    /// Read a TOML file; unknown keys and wrong types are errors naming the file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })
    }

    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.message().replace('\n', " "))
    }

    /// The node's stable name: the configured id or, failing that, its advertised peer
    /// address.
    pub fn node_id(&self) -> crate::ids::NodeId {
        if self.node.id.is_empty() {
            crate::ids::NodeId::new(self.node.advertise.unwrap_or(self.node.listen).to_string())
        } else {
            crate::ids::NodeId::new(&self.node.id)
        }
    }

    /// Worker processes per executor node, resolving 0 to the number of cores.
    pub fn executor_workers(&self) -> usize {
        resolve_cores(self.executor.workers)
    }

    /// KVS shards per node, resolving 0 to the number of cores minus one (at least one).
    pub fn kvs_shards(&self) -> usize {
        if self.kvs.shards_per_node > 0 {
            self.kvs.shards_per_node
        } else {
            resolve_cores(0).saturating_sub(1).max(1)
        }
    }

    /// This node's KVS memory budget in bytes: as set, or 0 resolved to
    /// [`MEMORY_BUDGET_SHARE`] of the machine's memory ([`FALLBACK_MEMORY_BUDGET`] when it
    /// cannot be read).
    pub fn kvs_memory_budget(&self) -> u64 {
        if self.kvs.memory_budget_bytes > 0 {
            return self.kvs.memory_budget_bytes;
        }
        machine_memory_bytes().map_or(FALLBACK_MEMORY_BUDGET, |m| m / MEMORY_BUDGET_SHARE)
    }

    /// The durability in effect: as set, or `interval` with a data directory and `none`
    /// without.
    pub fn durability(&self) -> Durability {
        match (self.kvs.durability, &self.node.data_dir) {
            (Some(d), _) => d,
            (None, Some(_)) => Durability::Interval,
            (None, None) => Durability::None,
        }
    }

    /// Where and how the KVS logs, when it does (a data directory and a mode but `none`).
    pub fn storage(&self) -> Option<crate::storage::StorageConfig> {
        let data_dir = self.node.data_dir.clone()?;
        let durability = self.durability();
        (durability != Durability::None).then(|| crate::storage::StorageConfig {
            data_dir,
            log: crate::storage::LogOptions {
                durability,
                flush_interval: std::time::Duration::from_millis(self.kvs.flush_interval_ms),
                segment_bytes: self.kvs.segment_bytes,
                snapshot_min_bytes: self.kvs.snapshot_min_bytes,
                max_pending_bytes: self.kvs.max_pending_log_bytes,
            },
        })
    }

    /// The durable-state rules: a mode that writes needs a directory, and every logged
    /// record must fit the log's record limit.
    fn validate_storage(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let k = &self.kvs;
        if self.node.data_dir.is_none() && self.durability() != Durability::None {
            return bad(format!(
                "kvs.durability = {} needs a data directory (node.data_dir or --data-dir), or --ephemeral to keep nothing",
                self.durability()
            ));
        }
        if let Some(dir) = &self.node.data_dir {
            if dir.as_os_str().is_empty() {
                return bad("node.data_dir must not be empty when set".into());
            }
        }
        if k.flush_interval_ms == 0 {
            return bad("kvs.flush_interval_ms must be greater than 0".into());
        }
        if k.segment_bytes < 4096 || k.snapshot_min_bytes < 4096 {
            return bad(
                "kvs.segment_bytes and kvs.snapshot_min_bytes must be at least 4096".into(),
            );
        }
        if k.max_pending_log_bytes < MIB {
            return bad("kvs.max_pending_log_bytes must be at least 1 MiB".into());
        }
        let record = k.max_value_bytes + crate::storage::record::KEY_AND_FRAMING_BYTES;
        if record > crate::storage::record::MAX_RECORD_BYTES {
            return bad(format!(
                "kvs.max_value_bytes ({}) is above what the log records ({} bytes with the key)",
                k.max_value_bytes,
                crate::storage::record::MAX_RECORD_BYTES
            ));
        }
        Ok(())
    }

    /// How other nodes reach this one: a wildcard listener needs an advertised address,
    /// which must name a host; every seed must be `host:port`.
    fn validate_addressing(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let n = &self.node;
        match n.advertise {
            None if n.listen.ip().is_unspecified() => {
                return bad(format!(
                    "node.listen = {} is a wildcard address other nodes cannot connect to; set node.advertise (--advertise ADDR) to the address they reach this node at",
                    n.listen
                ))
            }
            Some(a) if a.ip().is_unspecified() => {
                return bad(format!(
                    "node.advertise = {a} is a wildcard address; advertise the address other nodes reach this node at"
                ))
            }
            _ => {}
        }
        for seed in &n.join {
            if let Err(why) = crate::net::seed::parse_seed(seed) {
                return bad(format!("node.join: {why}"));
            }
        }
        Ok(())
    }

    /// Check every cross-field rule once, at start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.node.roles.is_empty() {
            return bad("node.roles must name at least one role".into());
        }
        self.validate_addressing()?;
        if !self.node.allow_non_loopback {
            let admin = self.node.admin_listen.map(|a| ("node.admin_listen", a));
            for (name, addr) in [
                ("node.listen", self.node.listen),
                ("gateway.client_listen", self.gateway.client_listen),
                ("gateway.dashboard_listen", self.gateway.dashboard_listen),
            ]
            .into_iter()
            .chain(admin)
            {
                if !addr.ip().is_loopback() {
                    return bad(format!(
                        "{name} = {addr} is not a loopback address; pass --allow-non-loopback to listen on it"
                    ));
                }
            }
        }
        let t = &self.transport;
        if t.max_frame_bytes < 1024 {
            return bad("transport.max_frame_bytes must be at least 1024".into());
        }
        if t.max_frame_bytes < self.kvs.max_value_bytes + 64 * 1024 {
            return bad(format!(
                "transport.max_frame_bytes ({}) must exceed kvs.max_value_bytes ({}) by at least 64 KiB of envelope",
                t.max_frame_bytes, self.kvs.max_value_bytes
            ));
        }
        if t.peer_queue_depth == 0 {
            return bad("transport.peer_queue_depth must be at least 1".into());
        }
        for (name, v) in [
            ("transport.request_timeout_ms", t.request_timeout_ms),
            ("transport.reconnect_min_ms", t.reconnect_min_ms),
            ("transport.connect_timeout_ms", t.connect_timeout_ms),
            ("membership.heartbeat_ms", self.membership.heartbeat_ms),
            ("kvs.gossip_interval_ms", self.kvs.gossip_interval_ms),
            (
                "executor.function_timeout_ms",
                self.executor.function_timeout_ms,
            ),
            (
                "executor.cache_report_interval_ms",
                self.executor.cache_report_interval_ms,
            ),
        ] {
            if v == 0 {
                return bad(format!("{name} must be greater than 0"));
            }
        }
        if t.reconnect_max_ms < t.reconnect_min_ms {
            return bad("transport.reconnect_max_ms must be >= transport.reconnect_min_ms".into());
        }
        if !(1024..=1 << 40).contains(&self.gateway.max_in_flight_bytes) {
            return bad("gateway.max_in_flight_bytes must be between 1 KiB and 1 TiB".into());
        }
        if self.gateway.max_queued_response_bytes < MIB {
            return bad("gateway.max_queued_response_bytes must be at least 1 MiB".into());
        }
        if self.gateway.max_receiving_bytes < self.gateway.max_message_bytes {
            return bad(format!(
                "gateway.max_receiving_bytes ({}) must be at least gateway.max_message_bytes ({})",
                self.gateway.max_receiving_bytes, self.gateway.max_message_bytes
            ));
        }
        if self.gateway.http_workers == 0 || self.gateway.http_workers > 64 {
            return bad("gateway.http_workers must be between 1 and 64".into());
        }
        let c = &self.consistency;
        if c.session_ttl_ms == 0 || c.causal_lease_ms == 0 {
            return bad(
                "consistency.session_ttl_ms and causal_lease_ms must be greater than 0".into(),
            );
        }
        // A write (all replicas) may take up to the request timeout: dropping a dependency
        // is safe only if every cache serving it has re-read the key since it was written.
        if c.causal_horizon_ms < c.causal_lease_ms + t.request_timeout_ms {
            return bad(format!(
                "consistency.causal_horizon_ms ({}) must be at least causal_lease_ms ({}) + transport.request_timeout_ms ({})",
                c.causal_horizon_ms, c.causal_lease_ms, t.request_timeout_ms
            ));
        }
        let m = &self.membership;
        if !(m.heartbeat_ms < m.suspect_after_ms && m.suspect_after_ms < m.dead_after_ms) {
            return bad(format!(
                "membership timeouts must satisfy heartbeat_ms ({}) < suspect_after_ms ({}) < dead_after_ms ({})",
                m.heartbeat_ms, m.suspect_after_ms, m.dead_after_ms
            ));
        }
        if self.kvs.replication == 0 {
            return bad("kvs.replication must be at least 1".into());
        }
        let in_flight = t.request_timeout_ms + self.kvs.gossip_interval_ms;
        if self.kvs.tombstone_grace_ms < in_flight {
            return bad(format!(
                "kvs.tombstone_grace_ms ({}) must be at least transport.request_timeout_ms + kvs.gossip_interval_ms ({in_flight}): a tombstone must outlive the writes and gossip under way when it came",
                self.kvs.tombstone_grace_ms
            ));
        }
        if self.kvs.virtual_nodes == 0 {
            return bad("kvs.virtual_nodes must be at least 1".into());
        }
        if self.kvs.max_value_bytes == 0 {
            return bad("kvs.max_value_bytes must be greater than 0".into());
        }
        let u = self.executor.utilisation_threshold;
        if !(u > 0.0 && u <= 1.0) {
            return bad(format!(
                "executor.utilisation_threshold must be in (0, 1], got {u}"
            ));
        }
        if self.gateway.max_message_bytes < 1024 {
            return bad("gateway.max_message_bytes must be at least 1024".into());
        }
        let g = &self.gateway;
        if !(g.heartbeat_ms > 0 && g.heartbeat_ms < g.client_timeout_ms) {
            return bad(format!(
                "gateway timeouts must satisfy 0 < heartbeat_ms ({}) < client_timeout_ms ({})",
                g.heartbeat_ms, g.client_timeout_ms
            ));
        }
        // Port 0 (any free port) on both is fine: they get different ports.
        if g.client_listen == g.dashboard_listen && g.client_listen.port() != 0 {
            return bad("gateway.client_listen and gateway.dashboard_listen must differ".into());
        }
        if g.tls_cert.is_some() != g.tls_key.is_some() {
            return bad(
                "gateway.tls_cert and gateway.tls_key go together: set both or neither".into(),
            );
        }
        if let Some(token) = &self.gateway.token {
            if token.is_empty() {
                return bad("gateway.token must not be empty when set".into());
            }
        }
        if let Some(name) = self
            .executor
            .worker_env
            .iter()
            .find(|n| n.starts_with(PLATFORM_ENV_PREFIX) || n.is_empty() || n.contains('='))
        {
            return bad(format!(
                "executor.worker_env: `{name}` cannot be passed to functions (empty, has `=`, or a {PLATFORM_ENV_PREFIX}* variable, which holds the platform's secrets)"
            ));
        }
        let m = self.executor.worker_memory_bytes;
        if m != 0 && m < MIN_WORKER_MEMORY_BYTES {
            return bad(format!(
                "executor.worker_memory_bytes must be 0 (no limit) or at least {MIN_WORKER_MEMORY_BYTES}"
            ));
        }
        for o in &self.gateway.allowed_origins {
            crate::actors::gateway::origin::parse_origin(o)
                .map_err(|e| ConfigError::Invalid(format!("gateway.allowed_origins: {e}")))?;
        }
        self.validate_exposure()?;
        self.validate_storage()?;
        self.autoscale.validate().map_err(ConfigError::Invalid)?;
        self.kubernetes.validate().map_err(ConfigError::Invalid)?;
        self.kvs_autoscale
            .validate()
            .map_err(ConfigError::Invalid)?;
        let settle = 2 * self.autoscale.tick_ms + self.kvs.gossip_interval_ms;
        if self.kvs_autoscale.hot_key_settle_ms < settle {
            return Err(ConfigError::Invalid(format!(
                "kvs_autoscale.hot_key_settle_ms ({}) must be at least 2 × autoscale.tick_ms + kvs.gossip_interval_ms ({settle}): a node that missed the monitor's table gets it again a tick later, and writes under way reach a key's new replicas by gossip",
                self.kvs_autoscale.hot_key_settle_ms
            )));
        }
        self.refuse_redacted()
    }

    /// A gateway listener other machines can reach runs code for whoever reaches it: it
    /// needs a token it was given (its clients cannot read this machine's token file). So
    /// does an admin port they reach, whose `/metrics` needs the token.
    fn validate_exposure(&self) -> Result<(), ConfigError> {
        let g = &self.gateway;
        if g.auth && g.token.is_some() {
            return Ok(());
        }
        let mut exposed = Vec::new();
        if self.node.roles.contains(&Role::Gateway) {
            exposed.push(("gateway.client_listen", g.client_listen));
            exposed.push(("gateway.dashboard_listen", g.dashboard_listen));
        }
        if let Some(a) = self.node.admin_listen.filter(|_| g.metrics_require_token) {
            exposed.push(("node.admin_listen", a));
        }
        match exposed.iter().find(|(_, a)| !a.ip().is_loopback()) {
            Some((name, addr)) => Err(ConfigError::Invalid(format!(
                "{name} = {addr} is reachable from other machines, so it needs a client token: set CLOUDBURST_TOKEN or --token-file FILE (--no-auth is for loopback listeners only)"
            ))),
            None => Ok(()),
        }
    }

    /// A secret still set to the `--dump-config` placeholder was fed back from a dump.
    fn refuse_redacted(&self) -> Result<(), ConfigError> {
        let secrets = [
            (
                "node.cluster_secret",
                Some(&self.node.cluster_secret),
                "CLOUDBURST_CLUSTER_SECRET",
            ),
            (
                "gateway.token",
                self.gateway.token.as_ref(),
                "CLOUDBURST_TOKEN",
            ),
        ];
        match secrets.into_iter().find(|(_, v, _)| v.is_some_and(|v| v == REDACTED)) {
            Some((name, _, env)) => Err(ConfigError::Invalid(format!(
                "{name} is \"{REDACTED}\", the placeholder --dump-config prints: set the real value (or {env}) or remove the line"
            ))),
            None => Ok(()),
        }
    }

    /// The effective configuration as TOML, with secrets redacted.
    pub fn dump(&self) -> String {
        let mut shown = self.clone();
        if !shown.node.cluster_secret.is_empty() {
            shown.node.cluster_secret = REDACTED.into();
        }
        if shown.gateway.token.is_some() {
            shown.gateway.token = Some(REDACTED.into());
        }
        shown.kvs.durability = Some(self.durability());
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// The user's config directory for Cloudburst: `$XDG_CONFIG_HOME/cloudburst`, else
/// `$HOME/.config/cloudburst` (where loopback gateways keep this user's client token).
pub fn user_config_dir() -> Option<PathBuf> {
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base = env("XDG_CONFIG_HOME").or_else(|| env("HOME").map(|h| h.join(".config")))?;
    Some(base.join("cloudburst"))
}

fn resolve_cores(n: usize) -> usize {
    if n > 0 {
        n
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().expect("defaults validate");
    }

    #[test]
    fn listeners_other_machines_reach_without_tls_are_named() {
        let mut g = GatewayConfig::default();
        assert!(g.exposed_in_clear().is_empty(), "loopback listeners");
        g.client_listen = "0.0.0.0:6200".parse().expect("addr");
        let exposed = g.exposed_in_clear();
        assert_eq!(exposed, vec![("gateway.client_listen", g.client_listen)]);
        g.tls_cert = Some("cert.pem".into());
        g.tls_key = Some("key.pem".into());
        assert!(g.exposed_in_clear().is_empty(), "served over TLS");
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let mut c = Config::default();
        c.gateway.tls_cert = Some("cert.pem".into());
        let e = c.validate().expect_err("no key").to_string();
        assert!(
            e.contains("tls_cert and gateway.tls_key go together"),
            "{e}"
        );
    }

    #[test]
    fn dump_round_trips_and_hides_secrets() {
        let mut c = Config::default();
        c.node.cluster_secret = "hunter2".into();
        c.gateway.token = Some("tok".into());
        let text = c.dump();
        assert!(!text.contains("hunter2") && !text.contains("\"tok\""));
        let back = Config::from_toml(&text).expect("dump parses");
        // The dump names the durability in effect where the config left it to the default.
        let shown = KvsConfig {
            durability: Some(c.durability()),
            ..c.kvs.clone()
        };
        assert_eq!(back.kvs, shown);
    }

    #[test]
    fn a_dumped_config_fed_back_is_refused_until_its_secrets_are_set() {
        let mut c = Config::default();
        c.node.cluster_secret = "hunter2".into();
        c.gateway.token = Some("tok".into());
        let mut back = Config::from_toml(&c.dump()).expect("dump parses");
        let err = back.validate().unwrap_err().to_string();
        assert!(
            err.contains("node.cluster_secret") && err.contains("--dump-config"),
            "{err}"
        );
        back.node.cluster_secret = "hunter2".into(); // as a flag or variable would set it
        let err = back.validate().unwrap_err().to_string();
        assert!(err.contains("gateway.token"), "{err}");
        back.gateway.token = Some("tok".into());
        back.validate()
            .expect("valid once the real secrets are set");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let err = Config::from_toml("[kvs]\nreplicaton = 2\n").unwrap_err();
        assert!(err.contains("replicaton"), "{err}");
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let c = Config::from_toml("[kvs]\nreplication = 3\n").expect("parses");
        assert_eq!(c.kvs.replication, 3);
        assert_eq!(c.gateway, GatewayConfig::default());
    }

    #[test]
    fn bad_membership_order_is_rejected() {
        let mut c = Config::default();
        c.membership.suspect_after_ms = c.membership.dead_after_ms;
        assert!(matches!(c.validate(), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn non_loopback_needs_opt_in() {
        let mut c = Config::default();
        c.node.listen = "10.1.2.3:6100".parse().expect("addr");
        assert!(c.validate().is_err());
        c.node.allow_non_loopback = true;
        c.validate().expect("allowed when opted in");
        c.node.admin_listen = Some("10.1.2.3:9100".parse().expect("addr"));
        c.node.allow_non_loopback = false;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("node.listen"), "{err}");
        c.node.listen = "127.0.0.1:6100".parse().expect("addr");
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("node.admin_listen"), "{err}");
    }

    #[test]
    fn a_wildcard_listener_needs_an_advertised_address() {
        let mut c = Config::default();
        c.node.allow_non_loopback = true;
        c.node.listen = "0.0.0.0:6100".parse().expect("addr");
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("wildcard") && err.contains("node.advertise"),
            "{err}"
        );
        c.node.advertise = Some("0.0.0.0:6100".parse().expect("addr"));
        assert!(
            c.validate().is_err(),
            "a wildcard is no address to advertise"
        );
        c.node.advertise = Some("10.0.0.7:6100".parse().expect("addr"));
        c.validate().expect("valid with an advertised address");
        assert_eq!(c.node_id().as_str(), "10.0.0.7:6100");
    }

    #[test]
    fn seeds_are_host_and_port() {
        let mut c = Config::default();
        c.node.join = vec!["localhost:6100".into(), "10.0.0.1:6100".into()];
        c.validate().expect("names and addresses");
        c.node.join.push("no-port".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("node.join") && err.contains("no-port"),
            "{err}"
        );
    }

    #[test]
    fn an_admin_port_other_machines_reach_needs_a_given_token() {
        let mut c = Config::default();
        c.node.roles = [Role::Executor].into_iter().collect();
        c.node.allow_non_loopback = true;
        c.node.admin_listen = Some("0.0.0.0:9100".parse().expect("addr"));
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("node.admin_listen"), "{err}");
        c.gateway.metrics_require_token = false;
        c.validate().expect("an open /metrics needs no token");
        c.gateway.metrics_require_token = true;
        c.gateway.token = Some("t".into());
        c.validate().expect("valid with a token");
    }

    #[test]
    fn a_gateway_other_machines_reach_needs_a_given_token() {
        let mut c = Config::default();
        c.node.allow_non_loopback = true;
        c.gateway.client_listen = "0.0.0.0:6200".parse().expect("addr");
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("needs a client token"), "{err}");
        c.gateway.token = Some("t".into());
        c.validate().expect("valid with a token");
        c.gateway.auth = false;
        assert!(
            c.validate().is_err(),
            "--no-auth does not open a public listener"
        );
        c.gateway.auth = true;
        c.gateway.token = None;
        c.node.roles = [Role::Kvs].into_iter().collect();
        c.validate().expect("no gateway, no client listener");
    }

    #[test]
    fn durability_follows_the_data_directory_unless_set() {
        let mut c = Config::default();
        assert_eq!(c.durability(), Durability::None);
        assert!(c.storage().is_none());
        c.node.data_dir = Some("/var/lib/cloudburst".into());
        assert_eq!(c.durability(), Durability::Interval);
        assert_eq!(
            c.storage().map(|s| s.log.durability),
            Some(Durability::Interval)
        );
        c.kvs.durability = Some(Durability::None);
        assert!(c.storage().is_none(), "a directory but no log");
        c.validate().expect("valid");
    }

    #[test]
    fn a_durable_mode_without_a_directory_is_refused() {
        let mut c = Config::default();
        c.kvs.durability = Some(Durability::Always);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("needs a data directory"), "{err}");
        c.node.data_dir = Some("/d".into());
        c.validate().expect("valid with one");
        c.kvs.flush_interval_ms = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn the_dump_shows_the_durability_in_effect() {
        let mut c = Config::default();
        c.node.data_dir = Some("/d".into());
        let text = c.dump();
        assert!(text.contains("durability = \"interval\""), "{text}");
        assert!(text.contains("data_dir = \"/d\""), "{text}");
        let back = Config::from_toml(&text).expect("parses");
        assert_eq!(back.durability(), Durability::Interval);
    }

    #[test]
    fn roles_parse() {
        let r = parse_roles("kvs, executor").expect("parses");
        assert_eq!(r.len(), 2);
        assert!(parse_roles("kvs,bogus").is_err());
        assert!(parse_roles("").is_err());
    }
}
