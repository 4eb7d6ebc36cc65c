//! The client token of a gateway that was given none: one per user, kept in a file only
//! that user can read, in the user's config directory (`$XDG_CONFIG_HOME/cloudburst/token`,
//! else `~/.config/cloudburst/token`), made on first start and shared by every loopback
//! gateway of that user (every `cloudburst local`). The Python client reads the same file
//! for a local URL, as Jupyter and Ray do with theirs.
//!
//! A gateway reachable from other machines needs a token it was given (`CLOUDBURST_TOKEN`,
//! `--token-file`): its clients cannot read this file. `--no-auth` turns the token off
//! (loopback only) and says so loudly.

use crate::config::{Config, Role};
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Bytes of randomness in a generated token (written as hex): unguessable by a page or a
/// process that may try it against a loopback port.
const TOKEN_BYTES: usize = 32;

/// Longest token file read: a token is a line; anything longer is not one.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// File name of the per-user token inside [`crate::config::user_config_dir`].
pub const TOKEN_FILE: &str = "token";

/// Why the token could not be found or made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no place for the client token: neither XDG_CONFIG_HOME nor HOME is set (set CLOUDBURST_TOKEN, or --no-auth)")]
    NoConfigDir,
    #[error("client token file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("client token file {path} {why}")]
    Unsafe { path: PathBuf, why: String },
}

/// What [`resolve`] did, for the start-up line.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// The node plays no gateway, or was given a token.
    NotNeeded,
    /// `--no-auth`: clients connect without a token.
    Disabled,
    /// The per-user token file, read (or made now, `created`).
    File { path: PathBuf, created: bool },
}

/// Give `cfg` the token its gateway needs: the one it was given, none with `--no-auth`,
/// else the per-user file's.
pub fn resolve(cfg: &mut Config) -> Result<TokenSource, TokenError> {
    // A gateway serves clients; an admin port serves `/metrics` under the same token.
    if !cfg.node.roles.contains(&Role::Gateway) && cfg.node.admin_listen.is_none() {
        return Ok(TokenSource::NotNeeded);
    }
    if !cfg.gateway.auth {
        cfg.gateway.token = None;
        return Ok(TokenSource::Disabled);
    }
    if cfg.gateway.token.is_some() {
        return Ok(TokenSource::NotNeeded);
    }
    let dir = crate::config::user_config_dir().ok_or(TokenError::NoConfigDir)?;
    let (token, created) = load_or_create(&dir)?;
    cfg.gateway.token = Some(token);
    Ok(TokenSource::File {
        path: dir.join(TOKEN_FILE),
        created,
    })
}

/// The token in `dir/token`, made (random, mode 0600, `dir` mode 0700) if there is none.
/// Two processes starting at once agree: the file appears whole or not at all.
pub fn load_or_create(dir: &Path) -> Result<(String, bool), TokenError> {
    let path = dir.join(TOKEN_FILE);
    let io = |source| TokenError::Io {
        path: path.clone(),
        source,
    };
    match read_private(&path) {
        Ok(token) => return Ok((token, false)),
        Err(TokenError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let token = random_token();
    // Written under a unique name, then linked into place: linking fails if another
    // process made the file first, and never exposes a half-written token.
    let staged = dir.join(format!(
        ".token-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staged)
        .and_then(|mut f| {
            f.write_all(format!("{token}\n").as_bytes())?;
            f.sync_all()
        });
    let linked = written.and_then(|()| fs::hard_link(&staged, &path));
    let _ = fs::remove_file(&staged);
    match linked {
        Ok(()) => Ok((token, true)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok((read_private(&path)?, false)),
        Err(e) => Err(io(e)),
    }
}

/// Read a token file that only its owner, this user, can read or write.
pub fn read_private(path: &Path) -> Result<String, TokenError> {
    let unsafe_file = |why: String| TokenError::Unsafe {
        path: path.to_path_buf(),
        why,
    };
    let file = fs::File::open(path).map_err(|source| TokenError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let meta = file.metadata().map_err(|source| TokenError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(unsafe_file(format!(
            "belongs to uid {}, not to this user (uid {me})",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(unsafe_file(format!(
            "is readable or writable by others (mode {mode:o}): chmod 600 it"
        )));
    }
    if meta.len() > MAX_TOKEN_FILE_BYTES {
        return Err(unsafe_file(format!("is over {MAX_TOKEN_FILE_BYTES} bytes")));
    }
    let text = fs::read_to_string(path).map_err(|source| TokenError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() || token.chars().any(char::is_whitespace) {
        return Err(unsafe_file("does not hold one token on one line".into()));
    }
    Ok(token.to_string())
}

fn random_token() -> String {
    (0..TOKEN_BYTES)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_private_and_shared() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cloudburst");
        let (first, created) = load_or_create(&dir).expect("made");
        assert!(created && first.len() == 2 * TOKEN_BYTES);
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join(TOKEN_FILE)), 0o600);
        assert_eq!(mode(&dir), 0o700);
        let (again, created) = load_or_create(&dir).expect("read");
        assert_eq!((again, created), (first, false));
        let leftovers = fs::read_dir(&dir).expect("dir").count();
        assert_eq!(leftovers, 1, "only the token file remains");
    }

    #[test]
    fn concurrent_starts_agree_on_one_token() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let makers: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || load_or_create(&dir).expect("token").0)
            })
            .collect();
        let tokens: std::collections::HashSet<String> = makers
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        assert_eq!(tokens.len(), 1);
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join(TOKEN_FILE);
        fs::write(&path, "abc\n").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = load_or_create(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read_private(&path).expect("read"), "abc");
        fs::write(&path, "two words\n").expect("write");
        assert!(read_private(&path).is_err());
    }

    #[test]
    fn only_a_gateway_without_a_token_takes_the_file() {
        let mut c = Config::default();
        c.gateway.token = Some("given".into());
        assert_eq!(resolve(&mut c).expect("ok"), TokenSource::NotNeeded);
        c.gateway.auth = false;
        assert_eq!(resolve(&mut c).expect("ok"), TokenSource::Disabled);
        assert_eq!(c.gateway.token, None, "--no-auth drops a given token");
        c.node.roles = [Role::Kvs].into_iter().collect();
        c.gateway.auth = true;
        assert_eq!(resolve(&mut c).expect("ok"), TokenSource::NotNeeded);
        assert_eq!(c.gateway.token, None);
    }
}
