//! What keeps a worker process and the processes its functions start in bounds, at the
//! level of the operating system (Linux):
//!
//! - Forks: a child a function forks has the worker's socket descriptors replaced by
//!   `/dev/null` at once (a `pthread_atfork` handler), so it can neither read the worker's
//!   calls nor write answers; the worker exits such a child when it returns from the
//!   function ([`exit_if_forked`]).
//! - Descendants: the worker is a child subreaper, so whatever its functions start stays
//!   below it even after a double fork and `setsid`; [`kill_tree`] kills them all with it
//!   (on timeout, replacement and shutdown).
//! - Memory: an address-space limit ([`limit_memory`]) turns a runaway function into a
//!   `MemoryError` in Python instead of a node out of memory.
//! - The worker user, and the paths hidden from functions: [`super::confine`].

use std::collections::{HashMap, HashSet};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// Rounds of "find the descendants, kill them" before giving up on a tree that keeps
/// growing (a fork bomb outruns any scan; the worker user's process limit is the bound).
const KILL_ROUNDS: usize = 20;

/// The worker's pid, once [`cut_off_in_forks`] ran (0 before).
static WORKER_PID: AtomicI32 = AtomicI32::new(0);
/// `/dev/null`, opened before any fork, for the fork handler to put in place of the socket.
static DEVNULL: AtomicI32 = AtomicI32::new(-1);
/// The socket's descriptors (reader and writer), replaced in forked children.
static SOCKET_FDS: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];

/// Cut the descriptors `fds` (at most two: the worker's socket) off in every process this
/// one forks from now on, and remember this process as the worker.
pub fn cut_off_in_forks(fds: &[RawFd]) {
    // SAFETY: getpid has no preconditions; open is given a NUL-terminated path.
    let (pid, null) = unsafe {
        (
            libc::getpid(),
            libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC),
        )
    };
    WORKER_PID.store(pid, Ordering::SeqCst);
    DEVNULL.store(null, Ordering::SeqCst);
    for (slot, fd) in SOCKET_FDS.iter().zip(fds) {
        slot.store(*fd, Ordering::SeqCst);
    }
    // SAFETY: the handler only calls dup3, which is async-signal-safe, on descriptors
    // stored before it was registered.
    let set = unsafe { libc::pthread_atfork(None, None, Some(in_forked_child)) };
    if set != 0 || null < 0 {
        tracing::warn!("forked children of functions keep the worker's socket");
    }
}

/// Runs in the child of every fork: the socket's descriptors become `/dev/null`.
unsafe extern "C" fn in_forked_child() {
    let null = DEVNULL.load(Ordering::SeqCst);
    if null < 0 {
        return;
    }
    for slot in &SOCKET_FDS {
        let fd = slot.load(Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: dup3 is async-signal-safe; both descriptors belong to this process.
            unsafe { libc::dup3(null, fd, libc::O_CLOEXEC) };
        }
    }
}

/// Whether this process is a child a function forked (not the worker itself).
pub fn is_forked() -> bool {
    let worker = WORKER_PID.load(Ordering::SeqCst);
    // SAFETY: getpid has no preconditions.
    worker != 0 && unsafe { libc::getpid() } != worker
}

/// End a forked child that returned from the function, before it could answer for the
/// worker (no Python finalisers, no flush: they belong to the worker).
pub fn exit_if_forked() {
    if is_forked() {
        // SAFETY: _exit ends this process at once; nothing of it is used afterwards.
        unsafe { libc::_exit(0) }
    }
}

/// Make this process the reaper of every orphan below it, so that processes a function
/// starts stay in its tree (and [`kill_tree`] finds them) however they detach.
pub fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only sets a flag of this process.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        tracing::warn!("processes started by functions may outlive their worker: prctl failed");
    }
}

/// Limit this process's address space to `bytes`: an allocation beyond it fails (a
/// `MemoryError` in Python) instead of taking the node's memory.
pub fn limit_memory(bytes: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit reads the struct given.
    match unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// SIGKILL every live descendant of `root` (found through `/proc`), round after round
/// until none is left, then `root` itself. Returns how many descendants were killed.
/// Pids 0 and 1 (no process, init) are refused: their trees are the whole machine.
pub fn kill_tree(root: u32) -> usize {
    if root <= 1 {
        return 0;
    }
    let mut killed = HashSet::new();
    for _ in 0..KILL_ROUNDS {
        let found: Vec<u32> = descendants(root, &processes())
            .into_iter()
            .filter(|p| !killed.contains(p))
            .collect();
        if found.is_empty() {
            break;
        }
        for pid in found {
            signal(pid, libc::SIGKILL);
            killed.insert(pid);
        }
    }
    signal(root, libc::SIGKILL);
    killed.len()
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill only sends a signal.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Live processes (not zombies) and their parents: `(pid, ppid)`.
fn processes() -> Vec<(u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            parse_stat(&stat).map(|ppid| (pid, ppid))
        })
        .collect()
}

/// The parent of a live process from its `/proc/<pid>/stat` line (`None` for a zombie or
/// a line that does not parse). The command name may hold anything but ends at the last
/// `)`.
fn parse_stat(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.next()?.parse().ok()
}

/// Every process below `root` in `procs` (children, their children, ...).
fn descendants(root: u32, procs: &[(u32, u32)]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for &(pid, ppid) in procs {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if c != root && !out.contains(&c) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_whatever_the_command_name() {
        assert_eq!(parse_stat("12 (sleep) S 7 12 12 0"), Some(7));
        assert_eq!(parse_stat("12 (a) b) c) R 9 1 1"), Some(9));
        assert_eq!(parse_stat("12 (gone) Z 9 1 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn descendants_follow_every_level_and_nothing_else() {
        let procs = [(2, 1), (3, 2), (4, 3), (5, 1), (6, 4)];
        let mut d = descendants(2, &procs);
        d.sort_unstable();
        assert_eq!(d, vec![3, 4, 6]);
        assert!(descendants(6, &procs).is_empty());
    }

    #[test]
    fn a_tree_is_killed_to_its_last_process() {
        // A shell standing in for a worker, with two children.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 300 & sleep 300 & wait"])
            .spawn()
            .expect("sh");
        let root = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while descendants(root, &processes()).len() < 2 {
            assert!(std::time::Instant::now() < deadline, "children not started");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let grandchildren = descendants(root, &processes());
        assert_eq!(kill_tree(root), 2);
        let _ = child.wait();
        for pid in grandchildren {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_stat(&s));
            assert_eq!(alive, None, "pid {pid} survived");
        }
    }
}
