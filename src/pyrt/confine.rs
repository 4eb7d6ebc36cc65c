//! Confining a worker before it runs user code (Linux): the user functions run as, and the
//! paths they must not see.
//!
//! The worker starts as the node's user, so the dynamic loader can map the libpython it
//! embeds wherever Python is installed, and initialises the interpreter. Then, in a
//! private mount namespace (root makes one; another user makes it inside a user
//! namespace of its own, where unprivileged namespaces are allowed):
//!
//! - every path functions must not see (the user's Cloudburst config directory with the
//!   token, the data directory, the files secrets were read from) is covered by an empty,
//!   read-only mount;
//! - when the node runs as root, the worker switches to the worker user (`nobody` unless
//!   configured). If that user cannot reach the Python runtime (e.g. Python under
//!   `/root`, mode 0700), the directory in the way is replaced, in this namespace only, by
//!   a read-only skeleton holding just the runtime's directories, bound from the real
//!   ones; the rest of it (the token, anything else of root's) is not there.
//!
//! Without a namespace, a runtime the worker user cannot reach fails the pool's start with
//! a clear error, and hidden paths stay visible (logged). After the switch the worker can
//! no longer gain privileges (`PR_SET_NO_NEW_PRIVS`: set-uid programs do not elevate).

use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Size of the tmpfs mounted over a hidden directory or a skeleton (it holds at most a
/// few empty directories).
const TMPFS_OPTIONS: &str = "size=64k,nr_inodes=256";

/// What to confine a worker to.
#[derive(Clone, Debug, Default)]
pub struct Confinement {
    /// The user functions run as when the worker starts as root (`None`: stay).
    pub user: Option<String>,
    /// Paths functions must not see.
    pub hide: Vec<PathBuf>,
}

/// Why a worker could not be confined (it then does not run functions at all).
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("no user named `{0}` (executor.worker_user)")]
    NoSuchUser(String),
    #[error("the worker user `{user}` cannot reach the Python runtime at {path} ({why}): install Python where that user can read it, or set executor.worker_user (\"root\" runs functions as root)")]
    Unreachable {
        user: String,
        path: PathBuf,
        why: String,
    },
    #[error("switching to the worker user `{user}` failed: {source}")]
    Switch { user: String, source: io::Error },
    #[error("executor.worker_user = `{0}`: only a node running as root can run its workers as another user")]
    NotRoot(String),
}

/// What confinement did, for the worker's log.
#[derive(Debug, Default)]
pub struct Confined {
    /// The user functions run as, with its home, when the worker switched.
    pub user: Option<(String, PathBuf)>,
    /// Paths covered.
    pub hidden: Vec<PathBuf>,
    /// Why paths could not be hidden, if they could not.
    pub unhidden: Option<String>,
}

/// A user's credentials.
#[derive(Clone, Debug)]
struct Cred {
    name: String,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
    home: PathBuf,
}

/// Confine this process (single-threaded: user namespaces need it) as `c` says. `runtime`:
/// the directories the interpreter reads modules from.
pub fn confine(c: &Confinement, runtime: &[PathBuf]) -> Result<Confined, ConfineError> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let target = match &c.user {
        Some(name) => Some(lookup(name)?).filter(|t| t.uid != me),
        None => None,
    };
    if let (Some(t), true) = (&target, me != 0) {
        return Err(ConfineError::NotRoot(t.name.clone()));
    }
    let mut done = Confined::default();
    if target.is_none() && c.hide.is_empty() {
        return Ok(done);
    }
    let namespace = private_mounts(me == 0);
    if let Some(cred) = &target {
        reach_runtime(cred, runtime, namespace.as_ref().err())?;
    }
    match &namespace {
        Ok(()) => {
            for path in c.hide.iter().filter(|p| p.exists()) {
                match cover(path) {
                    Ok(()) => done.hidden.push(path.clone()),
                    Err(e) => done.unhidden = Some(format!("{}: {e}", path.display())),
                }
            }
            if me != 0 {
                lock_mounts_and_drop_caps();
            }
        }
        Err(e) if !c.hide.is_empty() => done.unhidden = Some(format!("no mount namespace: {e}")),
        Err(_) => {}
    }
    if let Some(cred) = target {
        switch_to(&cred).map_err(|source| ConfineError::Switch {
            user: cred.name.clone(),
            source,
        })?;
        // The node's working directory may be closed to the worker user now.
        if fs::read_dir(".").is_err() {
            let _ = std::env::set_current_dir("/");
        }
        done.user = Some((cred.name, cred.home));
    }
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) only sets a flag of this process.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Ok(done)
}

/// A private mount namespace for this process (inside a new user namespace unless root);
/// nothing mounted in it reaches the rest of the machine.
fn private_mounts(root: bool) -> io::Result<()> {
    if root {
        // SAFETY: unshare affects this process only.
        check(unsafe { libc::unshare(libc::CLONE_NEWNS) })?;
    } else {
        own_user_namespace()?;
    }
    let none = CString::default();
    // SAFETY: mount with valid NUL-terminated strings.
    check(unsafe {
        libc::mount(
            none.as_ptr(),
            c"/".as_ptr(),
            none.as_ptr(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })
}

/// A new user namespace (with a new mount namespace) mapping this process's user and group
/// to themselves.
fn own_user_namespace() -> io::Result<()> {
    // SAFETY: getuid/getgid have no preconditions; unshare affects this process only.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: unshare affects this process only (it must be single-threaded).
    check(unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) })?;
    match fs::write("/proc/self/setgroups", "deny") {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))
}

/// In a user namespace of its own the process could unmount what hides paths: a second,
/// nested namespace locks the mounts it inherits, and the capabilities it brings are
/// dropped.
fn lock_mounts_and_drop_caps() {
    if own_user_namespace().is_err() {
        tracing::warn!("hidden paths are not locked: a function could unmount them");
    }
    drop_capabilities();
}

fn drop_capabilities() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads the header and two data structs of the v3 layout.
    let r = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if r != 0 {
        tracing::warn!(cause = %io::Error::last_os_error(), "cannot drop capabilities");
    }
}

/// Make every runtime directory reachable by `cred`: fine as it is, or through a skeleton
/// over the directory in the way (needs the namespace: `no_namespace` says why there is
/// none).
fn reach_runtime(
    cred: &Cred,
    runtime: &[PathBuf],
    no_namespace: Option<&io::Error>,
) -> Result<(), ConfineError> {
    let unreachable = |path: &Path, why: String| ConfineError::Unreachable {
        user: cred.name.clone(),
        path: path.to_path_buf(),
        why,
    };
    let roots = minimal_roots(runtime);
    let mut blocked: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    for path in &roots {
        match blocked_at(path, cred) {
            Block::None => {}
            Block::Itself => return Err(unreachable(path, "it is not readable".into())),
            Block::Above(dir) => match blocked.iter_mut().find(|(d, _)| *d == dir) {
                Some((_, paths)) => paths.push(path.clone()),
                None => blocked.push((dir, vec![path.clone()])),
            },
        }
    }
    for (dir, paths) in &blocked {
        if let Some(e) = no_namespace {
            let why = format!(
                "{} is closed to it, and no mount namespace: {e}",
                dir.display()
            );
            return Err(unreachable(&paths[0], why));
        }
        skeleton(dir, paths).map_err(|e| {
            unreachable(
                &paths[0],
                format!("making {} reachable: {e}", dir.display()),
            )
        })?;
    }
    match roots
        .iter()
        .find(|p| !matches!(blocked_at(p, cred), Block::None))
    {
        Some(p) => Err(unreachable(p, "a directory below it is closed too".into())),
        None => Ok(()),
    }
}

/// The existing paths of `paths`, resolved, without those inside another.
fn minimal_roots(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = paths.iter().filter_map(|p| p.canonicalize().ok()).collect();
    all.sort();
    all.dedup();
    let mut out: Vec<PathBuf> = Vec::new();
    for p in all {
        if !out.iter().any(|r| p.starts_with(r)) {
            out.push(p);
        }
    }
    out
}

/// Where a path is closed to a user.
#[derive(Debug, PartialEq)]
enum Block {
    None,
    /// The path itself cannot be read and searched.
    Itself,
    /// This ancestor cannot be searched.
    Above(PathBuf),
}

fn blocked_at(path: &Path, cred: &Cred) -> Block {
    let ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
    for dir in ancestors.into_iter().rev() {
        if !fs::metadata(dir).is_ok_and(|m| allows(&m, cred, 0o1)) {
            return Block::Above(dir.to_path_buf());
        }
    }
    match fs::metadata(path) {
        Ok(m) if allows(&m, cred, 0o5) => Block::None,
        _ => Block::Itself,
    }
}

/// Whether `cred` has the permission bits `want` (r=4, w=2, x=1) on a file.
fn allows(m: &fs::Metadata, cred: &Cred, want: u32) -> bool {
    let mode = m.mode();
    let bits = if m.uid() == cred.uid {
        mode >> 6
    } else if m.gid() == cred.gid || cred.groups.contains(&m.gid()) {
        mode >> 3
    } else {
        mode
    };
    bits & want == want
}

/// Replace `dir` by a read-only tmpfs holding only `paths` (directories below it), each
/// bound from the real one.
fn skeleton(dir: &Path, paths: &[PathBuf]) -> io::Result<()> {
    // Opened before the cover hides them; bound through /proc/self/fd afterwards.
    let keep: Vec<fs::File> = paths
        .iter()
        .map(|p| {
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                .open(p)
        })
        .collect::<io::Result<_>>()?;
    mount_tmpfs(dir, "mode=0755", 0)?;
    for (path, file) in paths.iter().zip(&keep) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)?;
        let from = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        bind(&from, path, libc::MS_REC)?;
    }
    remount_read_only(dir, 0)
}

/// Cover `path` with something empty and read-only: a tmpfs no one may enter over a
/// directory, `/dev/null` over a file.
fn cover(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        mount_tmpfs(path, "mode=0000", libc::MS_NOEXEC)?;
        remount_read_only(path, libc::MS_NOEXEC)
    } else {
        bind(Path::new("/dev/null"), path, 0)?;
        remount_read_only(path, libc::MS_BIND)
    }
}

fn mount_tmpfs(at: &Path, mode: &str, flags: libc::c_ulong) -> io::Result<()> {
    let at = cstring(at)?;
    let data = CString::new(format!("{mode},{TMPFS_OPTIONS}")).map_err(io::Error::other)?;
    // SAFETY: mount with valid NUL-terminated strings.
    check(unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            at.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | flags,
            data.as_ptr().cast(),
        )
    })
}

fn bind(from: &Path, to: &Path, flags: libc::c_ulong) -> io::Result<()> {
    let (from, to) = (cstring(from)?, cstring(to)?);
    // SAFETY: mount with valid NUL-terminated strings.
    check(unsafe {
        libc::mount(
            from.as_ptr(),
            to.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | flags,
            std::ptr::null(),
        )
    })
}

fn remount_read_only(at: &Path, flags: libc::c_ulong) -> io::Result<()> {
    let at = cstring(at)?;
    // SAFETY: mount with valid NUL-terminated strings.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            at.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | flags,
            std::ptr::null(),
        )
    })
}

/// Become `cred` for good: groups, group, user (glibc applies each to every thread).
fn switch_to(cred: &Cred) -> io::Result<()> {
    // SAFETY: these calls only change this process's credentials.
    unsafe {
        check(libc::setgroups(cred.groups.len(), cred.groups.as_ptr()))?;
        check(libc::setresgid(cred.gid, cred.gid, cred.gid))?;
        check(libc::setresuid(cred.uid, cred.uid, cred.uid))?;
        if libc::geteuid() != cred.uid || libc::setuid(0) == 0 {
            return Err(io::Error::other("root could be regained"));
        }
        // A change of credentials clears the parent-death signal: set it again.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    Ok(())
}

fn lookup(name: &str) -> Result<Cred, ConfineError> {
    let missing = || ConfineError::NoSuchUser(name.to_string());
    let c_name = CString::new(name).map_err(|_| missing())?;
    // SAFETY: passwd is plain data; all-zero is a valid value to be overwritten.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r writes into `pwd` and `buf`, both large enough and owned here.
    let r = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if r != 0 || found.is_null() {
        return Err(missing());
    }
    // SAFETY: on success pw_dir points into `buf`, NUL-terminated.
    let home = unsafe { CStr::from_ptr(pwd.pw_dir) }
        .to_string_lossy()
        .into_owned();
    let mut groups = vec![0 as libc::gid_t; 64];
    let mut n = groups.len() as libc::c_int;
    // SAFETY: getgrouplist writes at most `n` groups and sets `n`.
    let r = unsafe { libc::getgrouplist(c_name.as_ptr(), pwd.pw_gid, groups.as_mut_ptr(), &mut n) };
    groups.truncate(if r < 0 { 0 } else { n as usize });
    if !groups.contains(&pwd.pw_gid) {
        groups.push(pwd.pw_gid);
    }
    Ok(Cred {
        name: name.to_string(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        groups,
        home: PathBuf::from(home),
    })
}

fn cstring(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(io::Error::other)
}

fn check(r: libc::c_int) -> io::Result<()> {
    match r {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn cred(uid: u32, gid: u32) -> Cred {
        Cred {
            name: "someone".into(),
            uid,
            gid,
            groups: vec![gid],
            home: "/".into(),
        }
    }

    #[test]
    fn a_closed_directory_above_a_path_is_found() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let closed = tmp.path().join("closed");
        let inside = closed.join("python/lib");
        fs::create_dir_all(&inside).expect("dirs");
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).expect("chmod");
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        let other = cred(me.wrapping_add(12345), 65534);
        let canon = inside.canonicalize().expect("canon");
        let closed = closed.canonicalize().expect("canon");
        match blocked_at(&canon, &other) {
            Block::Above(dir) => assert_eq!(dir, closed),
            b => panic!("expected blocked above, got {b:?}"),
        }
        assert_eq!(blocked_at(&canon, &cred(me, 0)), Block::None);
    }

    #[test]
    fn nested_runtime_paths_reduce_to_their_roots() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let a = tmp.path().join("a");
        fs::create_dir_all(a.join("b/c")).expect("dirs");
        let roots = minimal_roots(&[a.join("b/c"), a.clone(), tmp.path().join("missing")]);
        assert_eq!(roots, vec![a.canonicalize().expect("canon")]);
    }

    #[test]
    fn nobody_is_found_and_a_stranger_is_not() {
        let nobody = lookup("nobody").expect("nobody exists");
        assert!(nobody.uid != 0 && nobody.groups.contains(&nobody.gid));
        assert!(matches!(
            lookup("no-such-user-cb"),
            Err(ConfineError::NoSuchUser(_))
        ));
    }
}
