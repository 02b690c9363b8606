//! The machine-side agent behind `apport-hook upload`, `status`, `collect` and
//! `watch`.
//!
//! - [`config`]: the agent's settings (server URL, opt-out, system id, TLS,
//!   spool), read the way whoopsie reads its own, every path injectable.
//! - [`spool`]: results that could not be delivered wait on disk, bounded,
//!   retried with backoff, never lost or duplicated across restarts.
//! - [`http`]: the HTTPS client (rustls with ring, system trust store or a
//!   pinned CA, timeouts on every request).
//! - [`upload`]: the whoopsie protocol (crash upload, reply parsing, core
//!   upload, the `.uploaded` marker).
//! - [`result_file`], [`result_upload`]: a hook's result from apportd's
//!   sealed descriptor through zstd to the socket or the spool, never whole
//!   in memory.
//! - [`progress`]: progress bars for transfers over 1 MB on a terminal.
//! - [`token`]: the hook list token's expiry; an expired token is never sent.
//! - [`crash_watch`], [`handled`]: `apport-hook watch` (inotify on the crash
//!   directory, which uploads were handled).
//! - [`state_dir`], [`runlog`]: the agent's state directory and the last runs.
//! - [`ids`]: validated identifiers; only these ever reach a file name or a
//!   URL path.
//! - [`text`]: server text escaped before it is printed or logged.

pub mod atomic_file;
pub mod collect;
pub mod config;
pub mod crash_watch;
pub mod handled;
pub mod http;
pub mod ids;
pub mod job;
pub mod progress;
pub mod result_file;
pub mod result_upload;
pub mod runlog;
pub mod spool;
pub mod state_dir;
pub mod text;
pub mod token;
pub mod upload;
