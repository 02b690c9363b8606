//! The open-file limit, and how many client connections fit under it.
//!
//! Every connection holds a descriptor, and so do the database, core
//! uploads and the listener. Without a cap a flood of connections ends in
//! `EMFILE`, and then it is a crash's core file or the database's WAL that
//! cannot be opened, not just one more client.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors kept for everything but client connections: the database
/// (SQLite's file, WAL and shared memory per connection, or PostgreSQL's
/// sockets), core uploads in progress, the listener, signals, logging.
pub const RESERVED_FDS: u64 = 256;

/// What [`raise_and_fit`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// Connections to serve at once: the wanted number, or fewer.
    pub connections: usize,
    /// The soft open-file limit after raising it.
    pub soft_limit: u64,
}

/// Raises the soft open-file limit to the hard one, as systemd expects of
/// programs that need many descriptors (it starts services with a soft
/// limit of 1024 and a far larger hard one, so that `select()` users are
/// not surprised), then returns how many of `wanted` connections fit.
/// When the limit cannot be read, `wanted` is kept: the accept loop still
/// backs off on `EMFILE`.
pub fn raise_and_fit(wanted: usize) -> Fit {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return Fit {
            connections: wanted,
            soft_limit: u64::MAX,
        };
    };
    let soft = if hard > soft && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    Fit {
        connections: fit(wanted, soft),
        soft_limit: soft,
    }
}

/// `wanted`, or what a soft limit of `soft` descriptors leaves after
/// [`RESERVED_FDS`], but at least one.
pub fn fit(wanted: usize, soft: u64) -> usize {
    let room = usize::try_from(soft.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
    wanted.min(room).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_keep_room_for_the_database_and_cores() {
        assert_eq!(fit(1024, 1024), 1024 - 256);
        assert_eq!(fit(1024, 524_288), 1024);
        assert_eq!(fit(10, 100), 1, "never zero: daisy would accept nothing");
        assert_eq!(fit(4096, 0), 1, "a limit below the reserve");
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        // Lowered first, so that the raise is seen even where the soft
        // limit starts at the hard one.
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((0, 1));
        let lower = hard.min(1024).saturating_sub(1);
        setrlimit(Resource::RLIMIT_NOFILE, lower, hard).unwrap_or(());
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).map(|l| l.0), Ok(lower));
        let fit = raise_and_fit(1 << 30);
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((0, 1));
        assert_eq!(soft, hard);
        assert_eq!(fit.soft_limit, soft);
    }
}
