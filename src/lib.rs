//! walkv: a small, durable key-value server.
//!
//! Memory holds the data; a write-ahead log on disk makes every acknowledged write survive a
//! crash. Start reading at [`wal`] (the log format and recovery), then [`store`] (the map and the
//! order of operations on a write), then [`http`] (the API) and [`server`] (the serving loop).
#![forbid(unsafe_code)]

pub mod crc32c;
pub mod error;
pub mod json;
pub mod wal;

#[doc(hidden)]
pub mod testrand;
