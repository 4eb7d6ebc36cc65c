//! The private directory a pool's worker sockets live in, and the sweep of directories
//! left behind by pools of this node whose process died without removing them (a
//! SIGKILL skips every destructor).
//!
//! A directory is named `cloudburst-py-<owner>-<random>` in the temporary directory and
//! holds [`PID_FILE`], the supervising process's id. At start, a pool removes the
//! directories of its owner (its node) whose process is gone; a live process's directory
//! (another pool of the same node, or a reused pid) is left alone.

use std::path::{Path, PathBuf};

/// Prefix of every pool's socket directory.
pub const PREFIX: &str = "cloudburst-py-";
/// File in a socket directory naming the process that supervises it.
pub const PID_FILE: &str = "supervisor.pid";
/// Longest owner tag in a directory name (node ids can be long; names must stay short
/// enough for Unix socket paths).
const MAX_OWNER_CHARS: usize = 48;

/// `owner` as it appears in directory names: letters, digits, `.` and `-`, the rest `_`.
pub fn owner_tag(owner: &str) -> String {
    owner
        .chars()
        .take(MAX_OWNER_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Create the socket directory of a pool of `owner` (private, 0700) and record this
/// process in it.
pub fn create(owner: Option<&str>) -> std::io::Result<tempfile::TempDir> {
    let prefix = match owner {
        Some(o) => format!("{PREFIX}{}-", owner_tag(o)),
        None => PREFIX.to_string(),
    };
    let dir = tempfile::Builder::new().prefix(&prefix).tempdir()?;
    std::fs::write(dir.path().join(PID_FILE), std::process::id().to_string())?;
    Ok(dir)
}

/// Remove the socket directories of `owner` under `tmp` whose supervising process is
/// gone; returns those removed.
pub fn sweep(tmp: &Path, owner: &str) -> Vec<PathBuf> {
    let prefix = format!("{PREFIX}{}-", owner_tag(owner));
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // The random tail never contains `-`: a longer owner sharing our prefix is not ours.
        let Some(tail) = name.strip_prefix(&prefix) else {
            continue;
        };
        if tail.contains('-') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        if supervisor_alive(&path) {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed.push(path),
            Err(e) => {
                tracing::debug!(dir = %path.display(), cause = %e, "stale socket directory not removed")
            }
        }
    }
    removed
}

/// Whether the process named in `dir`'s pid file still runs. A directory without a
/// readable pid file is taken as alive (it may be being created right now).
fn supervisor_alive(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(PID_FILE)) else {
        return true;
    };
    let Ok(pid) = text.trim().parse::<libc::pid_t>() else {
        return true;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 sends nothing; it only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_become_safe_name_parts() {
        assert_eq!(owner_tag("127.0.0.1:6100"), "127.0.0.1_6100");
        assert_eq!(owner_tag(&"n/".repeat(40)).len(), MAX_OWNER_CHARS);
    }

    #[test]
    fn only_dead_directories_of_the_owner_are_swept() {
        let tmp = tempfile::tempdir().expect("tmp");
        let make = |name: &str, pid: Option<&str>| {
            let d = tmp.path().join(name);
            std::fs::create_dir(&d).expect("dir");
            if let Some(pid) = pid {
                std::fs::write(d.join(PID_FILE), pid).expect("pid");
            }
            d
        };
        // A pid that cannot exist (above the kernel's pid_max).
        let dead = "2147483000";
        let me = std::process::id().to_string();
        let stale = make("cloudburst-py-n1-abc", Some(dead));
        let live = make("cloudburst-py-n1-def", Some(&me));
        let other_node = make("cloudburst-py-n2-abc", Some(dead));
        let longer_owner = make("cloudburst-py-n1-x-abc", Some(dead));
        let no_pid = make("cloudburst-py-n1-ghi", None);
        let removed = sweep(tmp.path(), "n1");
        assert_eq!(removed, vec![stale.clone()]);
        assert!(!stale.exists());
        for kept in [live, other_node, longer_owner, no_pid] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
    }
}
