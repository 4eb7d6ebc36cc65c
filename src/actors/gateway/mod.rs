//! The gateway: client websocket sessions, results pushed back to them.

pub mod messages;
