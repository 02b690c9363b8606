//! Who is calling, taken from the bus, and whether they may use a report.
//!
//! apport once identified callers by PID (CVE-2019-15790, CVE-2025-5054) and
//! polkit once took an error for uid 0 (CVE-2021-3560): the caller's uid here
//! comes only from the bus daemon's `GetConnectionCredentials` for the message's
//! unique sender name, never from an argument, and any failure denies.
//!
//! The answer is remembered per unique name ([`CallerCache`]): a unique name
//! is never reused on a bus, and the credentials the bus daemon reports for it
//! are those the connection authenticated with, fixed for its lifetime. So a
//! cached uid is exactly what the bus daemon would answer again; it saves a
//! bus round trip on every call after a caller's first.

use std::collections::HashMap;
use std::future::Future;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, PoisonError};

use nix::sys::stat::{SFlag, fstat};
use zbus::Connection;
use zbus::fdo::DBusProxy;
use zbus::message::Header;
use zbus::names::{BusName, OwnedUniqueName, UniqueName};

use super::safe_file::file_type;

/// The account reports are uploaded by; it may run hooks on anyone's report.
pub const WHOOPSIE_USER: &str = "whoopsie";

/// A caller as the bus knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's unique connection name (`:1.42`).
    pub name: OwnedUniqueName,
    /// The caller's uid, from the bus daemon.
    pub uid: u32,
}

/// Why a caller or its report was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    /// The bus could not say who the caller is.
    #[error("cannot identify the caller: {0}")]
    Unknown(String),
    /// The descriptor is not a regular file.
    #[error("the report descriptor is not a regular file; open the .crash file itself")]
    NotAFile,
    /// The descriptor could not be inspected.
    #[error("cannot inspect the report descriptor: {0}")]
    BadDescriptor(String),
    /// Someone else's report.
    #[error("uid {caller} may not run hooks on a report owned by uid {owner}")]
    NotOwner {
        /// The caller.
        caller: u32,
        /// The report's owner.
        owner: u32,
    },
}

/// Finds out who sent a message.
pub trait CallerResolver: Sync {
    /// The caller of the message with this header.
    fn resolve(
        &self,
        header: &Header<'_>,
    ) -> impl Future<Output = Result<Caller, CallerError>> + Send;
}

/// Callers kept in a [`CallerCache`] at most; a full cache is emptied (a
/// forgotten caller is only asked from the bus again).
pub const MAX_CACHED_CALLERS: usize = 1024;

/// The uids the bus daemon gave for unique names, for the lifetime of each
/// name on apportd's one bus connection. Entries are forgotten when the name
/// is seen leaving the bus and all at once at [`MAX_CACHED_CALLERS`]; an entry
/// never goes stale (unique names are never reused on a bus), so forgetting
/// only bounds memory.
#[derive(Debug, Default)]
pub struct CallerCache {
    uids: Mutex<HashMap<String, u32>>,
}

impl CallerCache {
    /// An empty cache.
    pub fn new() -> Self {
        CallerCache::default()
    }

    /// The uid the bus daemon gave for `name`, if remembered.
    pub fn get(&self, name: &UniqueName<'_>) -> Option<u32> {
        self.uids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name.as_str())
            .copied()
    }

    /// Remember the uid the bus daemon gave for `name`.
    pub fn insert(&self, name: OwnedUniqueName, uid: u32) {
        let mut uids = self.uids.lock().unwrap_or_else(PoisonError::into_inner);
        if uids.len() >= MAX_CACHED_CALLERS && !uids.contains_key(name.as_str()) {
            uids.clear();
        }
        uids.insert(name.as_str().to_owned(), uid);
    }

    /// `name` left the bus.
    pub fn forget(&self, name: &UniqueName<'_>) {
        self.uids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name.as_str());
    }

    /// Callers remembered now.
    pub fn len(&self) -> usize {
        self.uids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Asks the bus daemon (`org.freedesktop.DBus.GetConnectionCredentials`),
/// once per unique name while it stays in `cache`.
#[derive(Debug, Clone)]
pub struct BusCallerResolver {
    connection: Connection,
    cache: Arc<CallerCache>,
}

impl BusCallerResolver {
    /// Resolve callers on `connection`'s bus, remembering them in `cache`
    /// (which must belong to this connection alone).
    pub fn new(connection: Connection, cache: Arc<CallerCache>) -> Self {
        BusCallerResolver { connection, cache }
    }
}

impl CallerResolver for BusCallerResolver {
    fn resolve(
        &self,
        header: &Header<'_>,
    ) -> impl Future<Output = Result<Caller, CallerError>> + Send {
        let sender = header.sender().map(|s| OwnedUniqueName::from(s.to_owned()));
        let connection = self.connection.clone();
        let cache = Arc::clone(&self.cache);
        async move {
            let name =
                sender.ok_or_else(|| CallerError::Unknown("message has no sender".into()))?;
            if let Some(uid) = cache.get(&name) {
                return Ok(Caller { name, uid });
            }
            let proxy = DBusProxy::new(&connection)
                .await
                .map_err(|e| CallerError::Unknown(e.to_string()))?;
            let credentials = proxy
                .get_connection_credentials(BusName::Unique(name.as_ref()))
                .await
                .map_err(|e| CallerError::Unknown(e.to_string()))?;
            let uid = credentials
                .unix_user_id()
                .ok_or_else(|| CallerError::Unknown("the bus did not report a uid".into()))?;
            cache.insert(name.clone(), uid);
            Ok(Caller { name, uid })
        }
    }
}

/// The owner of the report behind `fd`, if `caller_uid` may use it: the owner
/// themself, root, or `whoopsie_uid`.
pub fn report_owner(
    fd: impl AsFd,
    caller_uid: u32,
    whoopsie_uid: Option<u32>,
) -> Result<u32, CallerError> {
    let stat = fstat(fd.as_fd()).map_err(|e| CallerError::BadDescriptor(e.to_string()))?;
    if file_type(&stat) != SFlag::S_IFREG {
        return Err(CallerError::NotAFile);
    }
    let owner = stat.st_uid;
    if caller_uid == owner || caller_uid == 0 || Some(caller_uid) == whoopsie_uid {
        Ok(owner)
    } else {
        Err(CallerError::NotOwner {
            caller: caller_uid,
            owner,
        })
    }
}

/// The `whoopsie` user's uid, if that user exists.
pub fn whoopsie_uid() -> Option<u32> {
    nix::unistd::User::from_name(WHOOPSIE_USER)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_owner_root_and_whoopsie_may_use_a_report() {
        let file = tempfile::tempfile().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(report_owner(&file, me, None), Ok(me));
        assert_eq!(report_owner(&file, 0, None), Ok(me));
        assert_eq!(report_owner(&file, 4242, Some(4242)), Ok(me));
        if me != 4243 {
            assert_eq!(
                report_owner(&file, 4243, Some(4242)),
                Err(CallerError::NotOwner {
                    caller: 4243,
                    owner: me
                })
            );
        }
        let dir = std::fs::File::open("/").unwrap();
        assert_eq!(report_owner(&dir, me, None), Err(CallerError::NotAFile));
    }

    fn unique(n: usize) -> OwnedUniqueName {
        OwnedUniqueName::try_from(format!(":1.{n}")).unwrap()
    }

    #[test]
    fn a_cached_caller_is_forgotten_when_it_leaves() {
        let cache = CallerCache::new();
        let name = unique(42);
        assert_eq!(cache.get(&name), None);
        cache.insert(name.clone(), 1000);
        assert_eq!(cache.get(&name), Some(1000));
        assert_eq!(cache.get(&unique(43)), None);
        cache.forget(&name);
        assert_eq!(cache.get(&name), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_caller_cache_stays_bounded() {
        let cache = CallerCache::new();
        for n in 0..MAX_CACHED_CALLERS {
            cache.insert(unique(n), 1000);
        }
        assert_eq!(cache.len(), MAX_CACHED_CALLERS);
        // Updating a known name does not empty it; a new one past the cap does.
        cache.insert(unique(0), 1000);
        assert_eq!(cache.len(), MAX_CACHED_CALLERS);
        cache.insert(unique(MAX_CACHED_CALLERS), 1001);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&unique(MAX_CACHED_CALLERS)), Some(1001));
        assert_eq!(cache.get(&unique(0)), None);
    }
}
