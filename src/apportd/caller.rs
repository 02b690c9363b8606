//! Who is calling, taken from the bus, and whether they may use a report.
//!
//! apport once identified callers by PID (CVE-2019-15790, CVE-2025-5054) and
//! polkit once took an error for uid 0 (CVE-2021-3560): the caller's uid here
//! comes only from the bus daemon's `GetConnectionCredentials` for the message's
//! unique sender name, never from an argument, and any failure denies.

use std::future::Future;
use std::os::fd::AsFd;

use nix::sys::stat::{SFlag, fstat};
use zbus::Connection;
use zbus::fdo::DBusProxy;
use zbus::message::Header;
use zbus::names::{BusName, OwnedUniqueName};

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

/// Asks the bus daemon (`org.freedesktop.DBus.GetConnectionCredentials`).
#[derive(Debug, Clone)]
pub struct BusCallerResolver {
    connection: Connection,
}

impl BusCallerResolver {
    /// Resolve callers on `connection`'s bus.
    pub fn new(connection: Connection) -> Self {
        BusCallerResolver { connection }
    }
}

impl CallerResolver for BusCallerResolver {
    fn resolve(
        &self,
        header: &Header<'_>,
    ) -> impl Future<Output = Result<Caller, CallerError>> + Send {
        let sender = header.sender().map(|s| OwnedUniqueName::from(s.to_owned()));
        let connection = self.connection.clone();
        async move {
            let name =
                sender.ok_or_else(|| CallerError::Unknown("message has no sender".into()))?;
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
}
