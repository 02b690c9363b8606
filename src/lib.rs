//! apport-hooks: the shared core of Ubuntu's server-side crash hooks.
//!
//! This crate holds everything both sides agree on: the apport report format
//! ([`report`]), the whoopsie BSON wire format ([`wire`]), the author-facing
//! hook file with its static analysis ([`hook`]) and signed hook bundles with
//! the key ring that verifies them ([`bundle`]). The machine-side binaries
//! (`apportd`, `apport-hook`) are built with the default `client` feature; the
//! `daisy` server depends on this crate without it, with `cli-docs` for the
//! man pages and completion scripts (`cli_docs`) all three binaries share.

#[cfg(feature = "client")]
pub mod apportd;
pub mod bundle;
#[cfg(feature = "cli-docs")]
pub mod cli_docs;
pub mod hook;
pub mod report;
pub mod sys;
pub mod wire;

#[cfg(feature = "client")]
pub mod agent;
