//! Helpers every support module shares.

pub mod logs;
pub mod pickling;
pub mod wait;
