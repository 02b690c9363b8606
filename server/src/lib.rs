//! daisy: the whoopsie-compatible crash intake server of the Ubuntu error
//! tracker, extended with server-side hooks.
//!
//! Layout (after crates.io): [`config`] is parsed once into a typed struct,
//! [`storage`] holds the one storage trait with its SQLite and PostgreSQL
//! engines.

pub mod config;
pub mod storage;
