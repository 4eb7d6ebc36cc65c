//! Seeds: the `host:port` names a node joins its cluster through. A name is resolved again
//! on every join attempt (a Kubernetes headless service, or a host that moved, answers with
//! today's addresses), and every address it resolves to is tried in turn.

use std::net::SocketAddr;

/// Longest seed accepted: a DNS name (253) plus `:port`, with room for an IPv6 literal.
pub const MAX_SEED_BYTES: usize = 300;

/// Check that `seed` is `host:port` (a name, an IPv4 address or a bracketed IPv6 address,
/// and a port above 0), without resolving it.
pub fn parse_seed(seed: &str) -> Result<(&str, u16), String> {
    let bad = |why: &str| Err(format!("seed {seed:?} {why}; expected host:port"));
    if seed.len() > MAX_SEED_BYTES {
        return bad("is too long");
    }
    let Some((host, port)) = seed.rsplit_once(':') else {
        return bad("has no port");
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return bad("has no host");
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok((host, p)),
        _ => bad("has no valid port"),
    }
}

/// The addresses `seed` names now (an address resolves to itself without a lookup).
pub async fn resolve(seed: &str) -> Result<Vec<SocketAddr>, String> {
    if let Ok(addr) = seed.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let (host, port) = parse_seed(seed)?;
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(format!("seed {seed} resolved to no address"))
            } else {
                Ok(addrs)
            }
        }
        Err(e) => Err(format!("cannot resolve seed {seed}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_host_and_port() {
        assert_eq!(parse_seed("localhost:6100"), Ok(("localhost", 6100)));
        assert_eq!(parse_seed("10.0.0.1:7"), Ok(("10.0.0.1", 7)));
        assert_eq!(parse_seed("[::1]:6100"), Ok(("::1", 6100)));
        assert_eq!(
            parse_seed("cb-0.cb.default.svc:6100"),
            Ok(("cb-0.cb.default.svc", 6100))
        );
        for bad in [
            "localhost",
            ":6100",
            "host:0",
            "host:x",
            "a b:1",
            "h:70000",
            "",
        ] {
            assert!(parse_seed(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_seed(&format!("{}:1", "a".repeat(MAX_SEED_BYTES))).is_err());
    }

    #[tokio::test]
    async fn names_resolve_and_addresses_stay_as_they_are() {
        let addrs = resolve("localhost:6100").await.expect("localhost resolves");
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 6100));
        assert_eq!(
            resolve("127.0.0.2:9").await,
            Ok(vec!["127.0.0.2:9".parse().expect("addr")])
        );
        assert!(resolve("no-such-host.invalid:1").await.is_err());
    }
}
