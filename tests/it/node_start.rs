//! A node whose later role cannot start stops what already started: the error names the
//! taken address in one line, the exit code is 1, and no listener, Python worker or worker
//! socket directory is left behind (in a `cloudburst node` process and in-process).

use cloudburst::config::{parse_roles, Config};
use cloudburst::node::{NodeRoles, RoleError};
use cloudburst::pyrt::sockdir;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Bound of one failing start (Python workers start first; a loaded machine is slow).
const START_LIMIT: Duration = Duration::from_secs(60);

/// A loopback port that was free a moment ago.
fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// Process ids of live processes whose parent is `parent` and whose command line contains
/// `needle`.
fn children_with(parent: u32, needle: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`: comm may hold spaces, so read after its `)`.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            ppid == Some(parent)
        })
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmd)
                .replace('\0', " ")
                .contains(needle)
        })
        .collect()
}

/// Command lines of every live process mentioning `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

/// The child's exit status and remaining output, once it exits within [`START_LIMIT`].
fn exited(child: Child) -> Output {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx.recv_timeout(START_LIMIT).expect("the node exits");
    out.expect("output")
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_node_whose_client_port_is_taken_exits_in_one_line_and_leaves_nothing_behind() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    // The pool makes its worker socket directory under TMPDIR, and the workers' command
    // lines name it: both show whether anything of the node outlived it.
    let tmp = tempfile::tempdir().expect("tempdir");
    let child = Command::new(env!("CARGO_BIN_EXE_cloudburst"))
        .args([
            "node",
            "--bootstrap",
            "--roles",
            "kvs,scheduler,executor,gateway",
        ])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--dashboard-listen",
            "127.0.0.1:0",
        ])
        .args(["--client-listen", &addr, "--workers", "2"])
        .env("CLOUDBURST_CLUSTER_SECRET", "node-start-secret")
        .env("CLOUDBURST_TOKEN", "node-start-token")
        .env("TMPDIR", tmp.path())
        .env("RUST_LOG", "error")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cloudburst node");
    let out = exited(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line of error, got:\n{stderr}");
    assert!(
        lines[0].starts_with("error: cannot start the node: ")
            && lines[0].contains(&addr)
            && lines[0].contains("in use"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no readiness line on a failed start");
    let tmp_path = tmp.path().to_string_lossy().into_owned();
    assert_eq!(processes_mentioning(&tmp_path), Vec::<String>::new());
    assert_eq!(entries(tmp.path()), Vec::<String>::new(), "socket dir left");
}

/// The id of the in-process node: its workers' socket directory is named after it, so
/// the test finds its own workers among those of other tests in this process.
const IN_PROCESS_ID: &str = "node-start-in-process";

/// A node config playing every function role with `workers` real worker processes.
fn config(peer: SocketAddr, client: SocketAddr, dashboard: SocketAddr) -> Config {
    let mut c = Config::default();
    c.node.roles = parse_roles("kvs,scheduler,executor,gateway").expect("roles");
    c.node.listen = peer;
    c.node.id = IN_PROCESS_ID.into();
    c.node.cluster_secret = "node-start-secret".into();
    c.gateway.client_listen = client;
    c.gateway.dashboard_listen = dashboard;
    c.node.bootstrap = true;
    c.kvs.shards_per_node = 1;
    c.executor.workers = 2;
    c.executor.worker_exe = Some(env!("CARGO_BIN_EXE_cloudburst").into());
    c.validate().expect("valid test config");
    c
}

#[test]
fn a_failed_start_in_process_closes_its_listeners_and_reaps_its_workers() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let dashboard = taken.local_addr().expect("addr");
    // The gateway binds its client port before the dashboard fails: it must close it again.
    let (peer, client) = (free_port(), free_port());
    let cfg = config(peer, client, dashboard);
    let err = actix::System::new().block_on(async {
        let result = tokio::time::timeout(START_LIMIT, NodeRoles::start(&cfg)).await;
        match result.expect("start ends") {
            Ok(_) => panic!("started with the dashboard port taken"),
            Err(e) => e,
        }
    });
    assert!(
        matches!(&err, RoleError::Dashboard { addr, .. } if *addr == dashboard),
        "{err}"
    );
    assert!(err.to_string().contains(&dashboard.to_string()), "{err}");
    for (what, addr) in [("peer", peer), ("client", client)] {
        TcpListener::bind(addr).unwrap_or_else(|e| panic!("{what} port {addr} still held: {e}"));
    }
    let sockets = std::env::temp_dir().join(format!("{}{IN_PROCESS_ID}-", sockdir::PREFIX));
    let needle = format!(" worker --socket {}", sockets.display());
    let workers = children_with(std::process::id(), &needle);
    assert_eq!(workers, Vec::<u32>::new(), "python workers left running");
}

#[test]
fn sigterm_right_after_the_readiness_line_stops_the_node_cleanly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloudburst"))
        .args([
            "node",
            "--bootstrap",
            "--roles",
            "kvs",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("CLOUDBURST_CLUSTER_SECRET", "node-start-secret")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn cloudburst node");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(START_LIMIT).expect("readiness line");
    assert!(cloudburst::node::parse_node_line(&line).is_some(), "{line}");
    // At once: the node must already listen for the signal when it says it is ready.
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) with a valid signal on our own child; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = exited(child).status;
    assert_eq!(status.code(), Some(0), "{status}");
}
