//! The actors of a node. Each has its own folder: `mod.rs` (actix glue that does the I/O),
//! `core.rs` (its logic, no I/O) and `messages.rs` (its typed messages).
