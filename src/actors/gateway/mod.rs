//! The gateway: client websocket sessions, results pushed back to them, and the operator
//! dashboard with `/metrics` ([`dashboard`]).

pub mod dashboard;
pub mod messages;
