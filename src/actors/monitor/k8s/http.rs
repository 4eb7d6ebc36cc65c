//! A small blocking HTTP/1.1 client for the Kubernetes API: one request per connection
//! (`Connection: close`), plain `http://` (a test's mock, `kubectl proxy`) or `https://`
//! with rustls and the cluster's CA. Responses are bounded in size and every wait in time;
//! bodies with a `Content-Length`, chunked, or delimited by the close are read.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Longest the provider waits to connect to the API server, and then for each read or
/// write: the monitor's actor waits meanwhile, so an unreachable API must fail fast.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest response body read: a pod list of a few hundred pods is well under it.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// Largest status line or header line read.
const MAX_LINE_BYTES: usize = 16 << 10;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("bad API server URL {0:?}: expected http://host:port or https://host:port")]
    Url(String),
    #[error("cannot reach the API server at {addr}: {cause}")]
    Connect { addr: String, cause: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("talking to the API server: {0}")]
    Io(#[from] std::io::Error),
    #[error("the API server's answer is not HTTP/1.1: {0}")]
    Malformed(String),
    #[error("the API server's answer is over {MAX_BODY_BYTES} bytes")]
    TooLarge,
}

/// A response: its status and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Where the API server is and how to authenticate to it.
pub struct Client {
    tls: Option<Arc<rustls::ClientConfig>>,
    host: String,
    port: u16,
}

impl Client {
    /// A client of `url` (`http://host:port` or `https://host:port`); `ca_pem` is the CA
    /// bundle that signs an `https` server's certificate.
    pub fn new(url: &str, ca_pem: Option<&[u8]>) -> Result<Self, HttpError> {
        let bad = || HttpError::Url(url.to_string());
        let (tls, rest, default_port) = match url.split_once("://") {
            Some(("http", rest)) => (false, rest, 80),
            Some(("https", rest)) => (true, rest, 443),
            _ => return Err(bad()),
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(bad());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => {
                (h.to_string(), p.parse().map_err(|_| bad())?)
            }
            _ => (rest.to_string(), default_port),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = if tls {
            Some(Arc::new(tls_config(ca_pem)?))
        } else {
            None
        };
        Ok(Client { tls, host, port })
    }

    /// Send `method path` with `headers` and `body`; the whole answer.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, HttpError> {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\n"
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        let tcp = self.connect()?;
        match &self.tls {
            None => exchange(tcp, head.as_bytes(), body),
            Some(cfg) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|e| HttpError::Tls(format!("server name {}: {e}", self.host)))?;
                let conn = rustls::ClientConnection::new(cfg.clone(), name)
                    .map_err(|e| HttpError::Tls(e.to_string()))?;
                exchange(rustls::StreamOwned::new(conn, tcp), head.as_bytes(), body)
            }
        }
    }

    fn connect(&self) -> Result<TcpStream, HttpError> {
        let addr = format!("{}:{}", self.host, self.port);
        let fail = |cause: String| HttpError::Connect {
            addr: addr.clone(),
            cause,
        };
        let addrs = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| fail(e.to_string()))?;
        let mut last = "the name resolves to no address".to_string();
        for a in addrs {
            match TcpStream::connect_timeout(&a, IO_TIMEOUT) {
                Ok(s) => {
                    s.set_read_timeout(Some(IO_TIMEOUT))?;
                    s.set_write_timeout(Some(IO_TIMEOUT))?;
                    return Ok(s);
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(fail(last))
    }
}

fn tls_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, HttpError> {
    let pem = ca_pem.ok_or_else(|| HttpError::Tls("an https API server needs a CA file".into()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| HttpError::Tls(format!("the CA file: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| HttpError::Tls(format!("the CA file: {e}")))?;
    }
    if roots.is_empty() {
        return Err(HttpError::Tls("the CA file holds no certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn exchange<S: Read + Write>(
    mut stream: S,
    head: &[u8],
    body: Option<&[u8]>,
) -> Result<Response, HttpError> {
    stream.write_all(head)?;
    if let Some(b) = body {
        stream.write_all(b)?;
    }
    stream.flush()?;
    read_response(BufReader::new(stream))
}

/// Parse one HTTP/1.1 response from `r` (the server closes after it).
pub fn read_response<R: BufRead>(mut r: R) -> Result<Response, HttpError> {
    let status_line = read_line(&mut r)?;
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| HttpError::Malformed(format!("status line {status_line:?}")))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        let line = read_line(&mut r)?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(HttpError::Malformed(format!("header {line:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| HttpError::Malformed(format!("Content-Length {value:?}")))?;
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let body = if chunked {
        read_chunked(&mut r)?
    } else if let Some(n) = length {
        if n > MAX_BODY_BYTES {
            return Err(HttpError::TooLarge);
        }
        let mut b = vec![0; n];
        r.read_exact(&mut b)?;
        b
    } else {
        read_to_close(&mut r)?
    };
    Ok(Response { status, body })
}

fn read_chunked<R: BufRead>(r: &mut R) -> Result<Vec<u8>, HttpError> {
    let mut body = vec![];
    loop {
        let line = read_line(r)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let n = usize::from_str_radix(size, 16)
            .map_err(|_| HttpError::Malformed(format!("chunk size {line:?}")))?;
        if n == 0 {
            return Ok(body);
        }
        if body.len() + n > MAX_BODY_BYTES {
            return Err(HttpError::TooLarge);
        }
        let start = body.len();
        body.resize(start + n, 0);
        r.read_exact(&mut body[start..])?;
        if !read_line(r)?.is_empty() {
            return Err(HttpError::Malformed("a chunk longer than its size".into()));
        }
    }
}

fn read_to_close<R: Read>(r: &mut R) -> Result<Vec<u8>, HttpError> {
    let mut body = vec![];
    r.take(MAX_BODY_BYTES as u64 + 1).read_to_end(&mut body)?;
    if body.len() > MAX_BODY_BYTES {
        return Err(HttpError::TooLarge);
    }
    Ok(body)
}

/// One CRLF-terminated line, without its end; bounded.
fn read_line<R: BufRead>(r: &mut R) -> Result<String, HttpError> {
    let mut buf = vec![];
    r.take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', &mut buf)?;
    if buf.len() > MAX_LINE_BYTES {
        return Err(HttpError::Malformed("a line too long".into()));
    }
    if buf.last() != Some(&b'\n') {
        return Err(HttpError::Malformed("the answer ends early".into()));
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf).map_err(|_| HttpError::Malformed("a line not in UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_sized_a_chunked_and_a_close_delimited_body() {
        let sized = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let r = read_response(&sized[..]).expect("sized");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let chunked =
            b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let r = read_response(&chunked[..]).expect("chunked");
        assert_eq!((r.status, r.body.as_slice()), (409, &b"abcde"[..]));
        let closed = b"HTTP/1.0 404 Not Found\r\n\r\nnope";
        let r = read_response(&closed[..]).expect("closed");
        assert_eq!((r.status, r.body.as_slice()), (404, &b"nope"[..]));
    }

    #[test]
    fn bad_answers_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"SMTP ready\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        ] {
            assert!(
                read_response(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn urls_name_a_scheme_a_host_and_a_port() {
        let c = Client::new("http://127.0.0.1:8001", None).expect("http");
        assert_eq!(
            (c.host.as_str(), c.port, c.tls.is_none()),
            ("127.0.0.1", 8001, true)
        );
        let c = Client::new("http://[::1]:8001/", None).expect("v6");
        assert_eq!((c.host.as_str(), c.port), ("::1", 8001));
        for bad in [
            "127.0.0.1:80",
            "ftp://x",
            "http://",
            "http://h:p",
            "http://h/api",
        ] {
            assert!(Client::new(bad, None).is_err(), "{bad}");
        }
        assert!(
            Client::new("https://10.96.0.1:443", None).is_err(),
            "https needs a CA"
        );
    }
}
