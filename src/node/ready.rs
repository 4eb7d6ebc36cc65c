//! The readiness lines the two commands print on stdout once they serve (tests, benchmarks
//! and scripts wait on them; the formats are stable):
//!
//! - `cloudburst node <id> listening on <addr> generation <n>` ([`node_line`]), parsed
//!   back by [`parse_node_line`];
//! - `cloudburst local ready: client <ws url>` ([`local_line`]), or `cloudburst local
//!   ready` when no gateway runs.

use crate::ids::{Generation, NodeId, NodeRef};
use std::net::SocketAddr;

/// `cloudburst node <id> listening on <addr> generation <n>`.
pub fn node_line(me: &NodeRef, addr: SocketAddr) -> String {
    format!(
        "cloudburst node {} listening on {addr} generation {}",
        me.id, me.generation.0
    )
}

/// The node and peer address a [`node_line`] names; `None` for any other line.
pub fn parse_node_line(line: &str) -> Option<(NodeRef, SocketAddr)> {
    let w: Vec<&str> = line.split_whitespace().collect();
    if w.len() != 8 || w[..2] != ["cloudburst", "node"] || w[3..5] != ["listening", "on"] {
        return None;
    }
    let node = NodeRef {
        id: NodeId::new(w[2]),
        generation: Generation(w[7].parse().ok()?),
    };
    Some((node, w[5].parse().ok()?))
}

/// `cloudburst local ready: client <url>`, or `cloudburst local ready` without a gateway.
pub fn local_line(client_url: Option<&str>) -> String {
    match client_url {
        Some(url) => format!("cloudburst local ready: client {url}"),
        None => "cloudburst local ready".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_line_parses_back() {
        let me = NodeRef {
            id: NodeId::new("127.0.0.1:7100"),
            generation: Generation(42),
        };
        let addr: SocketAddr = "127.0.0.1:7100".parse().expect("addr");
        assert_eq!(parse_node_line(&node_line(&me, addr)), Some((me, addr)));
        assert_eq!(
            parse_node_line("cloudburst dashboard listening on http://x/"),
            None
        );
        assert_eq!(parse_node_line(&local_line(Some("ws://127.0.0.1:1"))), None);
    }
}
