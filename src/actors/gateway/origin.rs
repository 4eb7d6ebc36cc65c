//! Which web pages may use the gateway, no I/O: the checks that stop a page the user opens
//! from driving the websocket or the dashboard (a gateway runs code for whoever reaches
//! it, and a browser reaches loopback ports for any page).
//!
//! - `Origin`: a browser names the page that makes a request. None (a program, not a
//!   page) and the gateway's own origin (same host and port as `Host`) pass; so does any
//!   origin in `gateway.allowed_origins`; any other page is refused.
//! - `Host` on a loopback listener: must name a loopback address or `localhost`. A page of
//!   `evil.example` whose name is made to resolve to 127.0.0.1 (DNS rebinding) is then
//!   same-origin for the browser, but its requests carry `Host: evil.example`.

use crate::protocol::ErrorCode;

/// Why a request from a browser page was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("requests from the web page {0} are not allowed (gateway.allowed_origins)")]
    Origin(String),
    #[error("Host `{0}` does not name this loopback listener (DNS rebinding?)")]
    Host(String),
}

impl OriginError {
    /// The code the refusal carries.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::ForbiddenOrigin
    }
}

/// The origin rules of one listener.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// Origins allowed besides the gateway's own, normalised (`scheme://host:port`).
    allowed: Vec<String>,
    /// Whether the listener is bound to a loopback address (then `Host` is checked).
    loopback: bool,
}

impl OriginPolicy {
    /// Rules for a listener on a loopback address (`loopback`) or not, allowing `allowed`
    /// (validated by [`parse_origin`] when the config was loaded; bad entries match
    /// nothing).
    pub fn new(allowed: &[String], loopback: bool) -> Self {
        OriginPolicy {
            allowed: allowed
                .iter()
                .filter_map(|o| parse_origin(o).ok())
                .collect(),
            loopback,
        }
    }

    /// Check a request's `Origin` and `Host` headers (absent: `None`).
    pub fn check(&self, origin: Option<&str>, host: Option<&str>) -> Result<(), OriginError> {
        if self.loopback {
            if let Some(h) = host {
                if !is_loopback_host(h) {
                    return Err(OriginError::Host(h.to_string()));
                }
            }
        }
        let Some(origin) = origin else {
            return Ok(());
        };
        let refused = || OriginError::Origin(origin.to_string());
        let normal = parse_origin(origin).map_err(|_| refused())?;
        if self.allowed.contains(&normal) {
            return Ok(());
        }
        let same = host.is_some_and(|h| authority(&normal) == with_port(h, scheme(&normal)));
        if same {
            Ok(())
        } else {
            Err(refused())
        }
    }
}

/// `scheme://host:port` in lower case with the default port made explicit, for an origin
/// as browsers send it (`http://127.0.0.1:8080`, `https://example.com`).
pub fn parse_origin(origin: &str) -> Result<String, String> {
    let lower = origin.trim().to_ascii_lowercase();
    let (scheme, rest) = lower
        .split_once("://")
        .ok_or_else(|| format!("origin `{origin}` is not scheme://host[:port]"))?;
    if !matches!(scheme, "http" | "https") {
        return Err(format!("origin `{origin}` is not http or https"));
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!("origin `{origin}` is not scheme://host[:port]"));
    }
    Ok(format!("{scheme}://{}", with_port(rest, scheme)))
}

fn scheme(normal: &str) -> &str {
    normal.split_once("://").map_or("http", |(s, _)| s)
}

fn authority(normal: &str) -> &str {
    normal.split_once("://").map_or(normal, |(_, a)| a)
}

/// `host:port` with the scheme's default port when none is given (`[::1]` keeps its
/// brackets).
fn with_port(host: &str, scheme: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    let has_port = match host.rfind(':') {
        Some(i) => !host[i..].contains(']'),
        None => false,
    };
    if has_port {
        return host;
    }
    let port = if scheme == "https" { 443 } else { 80 };
    format!("{host}:{port}")
}

/// Whether a `Host` header names this machine's loopback: `localhost`, a name under
/// `.localhost`, 127.0.0.0/8 or `[::1]`, with any port.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inner, _)) => inner.to_string(),
            None => return false,
        }
    } else {
        host.rsplit_once(':')
            .map_or(host.clone(), |(h, _)| h.to_string())
    };
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_and_the_gateways_own_page_pass() {
        let p = OriginPolicy::new(&[], true);
        assert_eq!(p.check(None, Some("127.0.0.1:8080")), Ok(()));
        assert_eq!(p.check(None, None), Ok(()));
        assert_eq!(
            p.check(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080")),
            Ok(())
        );
        assert_eq!(
            p.check(Some("HTTP://LocalHost:8080"), Some("localhost:8080")),
            Ok(())
        );
        assert_eq!(p.check(Some("http://[::1]"), Some("[::1]:80")), Ok(()));
    }

    #[test]
    fn other_pages_are_refused_unless_allowed() {
        let p = OriginPolicy::new(&[], true);
        let evil = Some("http://evil.example");
        assert!(matches!(
            p.check(evil, Some("127.0.0.1:6200")),
            Err(OriginError::Origin(_))
        ));
        // Another port of the same host is another origin (a page on a dev server).
        assert!(p
            .check(Some("http://127.0.0.1:3000"), Some("127.0.0.1:6200"))
            .is_err());
        assert!(p.check(Some("null"), Some("127.0.0.1:6200")).is_err());
        let p = OriginPolicy::new(&["https://app.example".into()], true);
        assert_eq!(
            p.check(Some("https://app.example:443"), Some("127.0.0.1:6200")),
            Ok(())
        );
        assert!(p.check(evil, Some("127.0.0.1:6200")).is_err());
    }

    #[test]
    fn a_rebound_name_is_refused_on_loopback_only() {
        let loopback = OriginPolicy::new(&[], true);
        let rebound = Some("evil.example:6200");
        assert!(matches!(
            loopback.check(None, rebound),
            Err(OriginError::Host(_))
        ));
        assert!(loopback
            .check(Some("http://evil.example:6200"), rebound)
            .is_err());
        let public = OriginPolicy::new(&[], false);
        assert_eq!(
            public.check(Some("http://cb.example:6200"), Some("cb.example:6200")),
            Ok(())
        );
        for ok in ["localhost", "a.localhost:1", "127.1.2.3:9", "[::1]:6200"] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "10.0.0.1:80",
            "[::2]:1",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn origins_parse_to_one_form() {
        assert_eq!(
            parse_origin("https://Example.com").as_deref(),
            Ok("https://example.com:443")
        );
        assert_eq!(
            parse_origin("http://127.0.0.1:8080").as_deref(),
            Ok("http://127.0.0.1:8080")
        );
        for bad in ["example.com", "ftp://x", "http://x/path", "http://"] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
