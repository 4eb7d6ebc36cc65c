//! TLS for the client endpoints (the websocket and the dashboard): a certificate chain and
//! its key, read from PEM files into a rustls server config once at start; and a test
//! certificate authority with one server certificate for a test cluster (`cloudburst
//! cert`). ring is the crypto provider: no OpenSSL to build, no cmake.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the TLS files cannot be used (one line each, naming the file and the config key).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("gateway.tls_cert {}: {why}", path.display())]
    Cert { path: PathBuf, why: String },
    #[error("gateway.tls_key {}: {why}", path.display())]
    Key { path: PathBuf, why: String },
    #[error("gateway.tls_cert and gateway.tls_key do not go together: {0}")]
    Pair(String),
    #[error("cannot make a test certificate: {0}")]
    Generate(String),
}

/// The rustls config serving `cert` (PEM, the server's certificate first, then the
/// intermediates a client needs) with `key` (PEM, PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let chain = read_chain(cert)?;
    let key_der = read_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Pair(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| TlsError::Pair(e.to_string()))
}

/// Every certificate in the PEM file `path`; at least one.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |why: String| TlsError::Cert {
        path: path.to_path_buf(),
        why,
    };
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not a PEM certificate file: {e}")))?;
    if chain.is_empty() {
        return Err(err("holds no PEM certificate (BEGIN CERTIFICATE)".into()));
    }
    Ok(chain)
}

/// The first private key in the PEM file `path`.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let err = |why: String| TlsError::Key {
        path: path.to_path_buf(),
        why,
    };
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            err("holds no PEM private key (BEGIN PRIVATE KEY)".into())
        }
        e => err(format!("not a PEM private key file: {e}")),
    })
}

/// A test certificate authority and one server certificate it signed, in PEM.
pub struct TestCertificates {
    /// The authority's certificate: what clients trust (`ca_file=`).
    pub ca: String,
    /// The server's certificate (`gateway.tls_cert`).
    pub cert: String,
    /// The server's private key (`gateway.tls_key`).
    pub key: String,
}

/// How long a test certificate is valid: long enough for a test cluster, short enough
/// that a forgotten one expires.
const TEST_CERT_DAYS: i64 = 90;

/// Make a test authority and a server certificate for `hosts` (DNS names or IP
/// addresses, the names clients connect to).
pub fn make_test_certificates(hosts: &[String]) -> Result<TestCertificates, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let gen = |e: rcgen::Error| TlsError::Generate(e.to_string());
    if hosts.is_empty() {
        return Err(TlsError::Generate("name at least one host".into()));
    }
    let now = time::OffsetDateTime::now_utc();
    let until = now + time::Duration::days(TEST_CERT_DAYS);
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cloudburst test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca_params.not_before, ca_params.not_after) = (now, until);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(gen)?).map_err(gen)?;
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(gen)?;
    params
        .distinguished_name
        .push(DnType::CommonName, hosts[0].clone());
    (params.not_before, params.not_after) = (now, until);
    let key = KeyPair::generate().map_err(gen)?;
    let cert = params.signed_by(&key, &ca).map_err(gen)?;
    Ok(TestCertificates {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Where [`write_test_certificates`] put the files.
pub struct TestCertificateFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Make test certificates for `hosts` and write `ca.pem`, `cert.pem` and `key.pem` (the
/// key readable by this user only) in `dir`; files already there are left alone.
pub fn write_test_certificates(
    dir: &Path,
    hosts: &[String],
) -> Result<TestCertificateFiles, TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let made = make_test_certificates(hosts)?;
    let files = TestCertificateFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    let io = |path: &Path, e: std::io::Error| {
        TlsError::Generate(format!("cannot write {}: {e}", path.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    if let Some(p) = [&files.ca, &files.cert, &files.key]
        .into_iter()
        .find(|p| p.exists())
    {
        return Err(TlsError::Generate(format!(
            "{} exists; remove it or pick another --out",
            p.display()
        )));
    }
    for (path, text, mode) in [
        (&files.ca, &made.ca, 0o644),
        (&files.cert, &made.cert, 0o644),
        (&files.key, &made.key, 0o600),
    ] {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| io(path, e))?;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written() -> (tempfile::TempDir, TestCertificateFiles) {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = write_test_certificates(dir.path(), &["localhost".into(), "127.0.0.1".into()])
            .expect("certificates");
        (dir, files)
    }

    #[test]
    fn a_test_certificate_loads_and_its_key_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, f) = written();
        server_config(&f.cert, &f.key).expect("the pair loads");
        let mode = std::fs::metadata(&f.key).expect("key").permissions().mode();
        assert_eq!(mode & 0o077, 0, "key.pem is readable by others: {mode:o}");
        let again = write_test_certificates(f.ca.parent().expect("dir"), &["x".into()]);
        assert!(matches!(again, Err(TlsError::Generate(m)) if m.contains("exists")));
    }

    #[test]
    fn bad_files_are_one_line_errors_naming_the_file() {
        let (dir, f) = written();
        let missing = dir.path().join("nope.pem");
        let cases = [
            (
                server_config(&missing, &f.key),
                "gateway.tls_cert",
                "cannot read",
            ),
            (
                server_config(&f.cert, &missing),
                "gateway.tls_key",
                "cannot read",
            ),
            (
                server_config(&f.key, &f.key),
                "gateway.tls_cert",
                "no PEM certificate",
            ),
            (
                server_config(&f.cert, &f.cert),
                "gateway.tls_key",
                "no PEM private key",
            ),
            // The authority's certificate with the server's key.
            (server_config(&f.ca, &f.key), "do not go together", ""),
        ];
        for (got, key, why) in cases {
            let e = got.expect_err("refused").to_string();
            assert!(
                e.contains(key) && e.contains(why) && !e.contains('\n'),
                "{e}"
            );
        }
    }
}
