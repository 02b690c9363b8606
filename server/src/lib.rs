//! daisy: the whoopsie-compatible crash intake server of the Ubuntu error
//! tracker, extended with server-side hooks.
//!
//! Layout (after crates.io): [`config`] is parsed once into a typed struct,
//! [`app`] holds the shared state, [`router`] every route, [`controllers`]
//! one file per resource, [`middleware`] one layer per file, [`storage`] the
//! one storage trait with its SQLite and PostgreSQL engines, [`server`] the
//! `serve(listener, app, shutdown)` entry point, [`cli`] the commands.

pub mod activation;
pub mod app;
pub mod auth;
pub mod body_budget;
pub mod bootstrap;
pub mod bucketing;
pub mod cli;
pub mod config;
pub mod controllers;
pub mod digest_hex;
pub mod error;
pub mod fd_limit;
pub mod metrics;
pub mod middleware;
pub mod router;
pub mod send_timeout;
pub mod server;
pub mod signing;
pub mod storage;
pub mod tls;
pub mod totals_cache;
