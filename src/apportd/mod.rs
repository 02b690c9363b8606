//! apportd's engine: everything the privileged `com.ubuntu.apport` service does,
//! as plain Rust that tests can drive without a bus.
//!
//! The layering follows stratisd's engine/adapter split: [`safe_file`], [`glob`],
//! [`command`] and [`principal`] do one kind of I/O each; [`steps`] turns one hook
//! [`Step`](crate::hook::Step) into report fields; [`job`] runs a whole hook under the
//! job limits and produces a [`job::JobOutput`]; [`output`] encodes that into the
//! memfd the `Finished` signal carries. The D-Bus adapter only plumbs arguments
//! into these.

pub mod applicable;
pub mod caller;
pub mod command;
pub mod config;
pub mod dbus;
pub mod glob;
pub mod job;
pub mod limits;
pub mod output;
pub mod polkit;
pub mod principal;
pub mod proxy;
pub mod rollback;
pub mod safe_file;
pub mod service;
pub mod steps;
pub mod subreaper;
pub mod unsigned;
