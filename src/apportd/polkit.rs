//! Authorization through polkit, failing closed.
//!
//! The subject is always the caller's *system-bus-name*, never a PID (the PID
//! subject races: CVE-2013-4288, CVE-2019-6133), and every polkit error, an
//! absent polkitd included, means "not authorized" (CVE-2021-3560 took an error
//! for success).

use std::collections::HashMap;
use std::future::Future;

use zbus::Connection;
use zbus_polkit::policykit1::{AuthorityProxy, CheckAuthorizationFlags, Subject};

use super::job::{Authorizer, RootRequest};

/// Root steps of a signed hook.
pub const PACKAGE_HOOK_ACTION: &str = "com.ubuntu.apport.package-hook";
/// Any step of an unsigned, local hook (`auth_admin`, never kept).
pub const TEST_HOOK_ACTION: &str = "com.ubuntu.apport.test-hook";

/// Ask polkit whether `subject` may do `action`. `false` on any error.
pub async fn is_authorized(
    connection: &Connection,
    subject: &Subject,
    action: &str,
    details: &HashMap<&str, &str>,
    interactive: bool,
) -> bool {
    let authority = match AuthorityProxy::new(connection).await {
        Ok(authority) => authority,
        Err(e) => {
            tracing::warn!(action, error = %e, "polkit unavailable: denying");
            return false;
        }
    };
    let flags = if interactive {
        CheckAuthorizationFlags::ALLOW_USER_INTERACTION
    } else {
        CheckAuthorizationFlags::empty()
    };
    match authority
        .check_authorization(subject, action, details, flags, "")
        .await
    {
        Ok(result) => result.is_authorized,
        Err(e) => {
            tracing::warn!(action, error = %e, "polkit check failed: denying");
            false
        }
    }
}

/// `check`'s answer if it comes within `wait`, else "not authorized": an
/// authentication dialog left open, or an agent of the caller's own that
/// never answers, must not hold a call (its slot, its descriptors, and
/// apportd's idle exit) for ever.
pub async fn answered_within(wait: std::time::Duration, check: impl Future<Output = bool>) -> bool {
    match tokio::time::timeout(wait, check).await {
        Ok(answer) => answer,
        Err(_) => {
            tracing::warn!("polkit gave no answer within {} s: denying", wait.as_secs());
            false
        }
    }
}

/// The message polkit shows when it asks for a password.
pub fn root_message(request: &RootRequest) -> String {
    format!(
        "A crash hook ({} version {}) wants to collect system information as root for the \
         Ubuntu error tracker.",
        request.hook_id, request.hook_version
    )
}

/// [`Authorizer`] asking polkit for [`PACKAGE_HOOK_ACTION`] on behalf of one caller.
pub struct PolkitAuthorizer {
    connection: Connection,
    subject: Option<Subject>,
    interactive: bool,
}

impl PolkitAuthorizer {
    /// `subject` is the caller's bus name (`None` if it could not be built:
    /// then nothing is authorized); `interactive` only if the caller's message
    /// allowed interactive authorization.
    pub fn new(connection: Connection, subject: Option<Subject>, interactive: bool) -> Self {
        PolkitAuthorizer {
            connection,
            subject,
            interactive,
        }
    }
}

impl Authorizer for PolkitAuthorizer {
    fn authorize_root(&self, request: &RootRequest) -> impl Future<Output = bool> + Send {
        let version = request.hook_version.to_string();
        let message = root_message(request);
        let hook_id = request.hook_id.clone();
        let package = request.package.clone().unwrap_or_default();
        async move {
            let Some(subject) = &self.subject else {
                return false;
            };
            let mut details = HashMap::new();
            details.insert("hook_id", hook_id.as_str());
            details.insert("hook_version", version.as_str());
            details.insert("package", package.as_str());
            details.insert("polkit.message", message.as_str());
            is_authorized(
                &self.connection,
                subject,
                PACKAGE_HOOK_ACTION,
                &details,
                self.interactive,
            )
            .await
        }
    }
}

#[cfg(test)]
mod wait_tests {
    use std::time::Duration;

    use super::answered_within;

    #[tokio::test]
    async fn an_answer_that_never_comes_is_no_and_one_in_time_stands() {
        assert!(!answered_within(Duration::from_millis(50), std::future::pending()).await);
        assert!(answered_within(Duration::from_secs(120), async { true }).await);
        assert!(!answered_within(Duration::from_secs(120), async { false }).await);
    }
}
