//! Node-to-node transport, membership and the consistent hash ring.
