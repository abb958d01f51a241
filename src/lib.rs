//! walkv: a small, durable key-value server.
//!
//! Memory holds the data; a write-ahead log on disk makes every acknowledged write survive a
//! crash. Start reading at [`wal`] (the log format and recovery), then [`store`] (the map and the
//! order of operations on a write), then [`http`] (the API) and [`server`] (the serving loop).
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod commands;
pub mod crc32c;
pub mod error;
pub mod http;
pub mod json;
pub mod server;
pub mod store;
pub mod wal;

#[doc(hidden)]
pub mod testrand;
