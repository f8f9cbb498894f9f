//! ferrocache: a memcached-compatible, multi-threaded cache daemon.
//!
//! The map of the code is `docs/ARCHITECTURE.md`. In short: `protocol` parses and encodes bytes,
//! `store` keeps items, `exec` applies requests to the store, `server` owns sockets and threads,
//! `config` turns memcached's command line into a validated `Config`.
#![deny(unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations)]

pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod exec;
pub mod fsutil;
pub mod num;
pub mod protocol;
pub mod server;
pub mod state;
pub mod stats;
pub mod store;
pub mod tls;
