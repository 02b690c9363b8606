//! The shipped polkit policy and rules, judged by the real polkitd, as apportd
//! asks it: system-bus-name subjects of connections owned by test users (needs root).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::zombie_processes
)]

mod harness;

use apport_hooks::apportd::job::{Authorizer, RootRequest};
use apport_hooks::apportd::polkit::PolkitAuthorizer;
use harness::{SystemBus, TestUser, have_root, require_program};
use zbus::Connection;
use zbus::fdo::DBusProxy;
use zbus::names::BusName;
use zbus_polkit::policykit1::Subject;

/// A connection to `bus` held open by a process running as `user`.
struct UserConnection {
    child: std::process::Child,
    name: String,
}

impl Drop for UserConnection {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect_as(bus: &SystemBus, connection: &Connection, user: &TestUser) -> UserConnection {
    use std::os::unix::process::CommandExt;
    let child = std::process::Command::new("dbus-monitor")
        .arg("--address")
        .arg(&bus.address)
        .uid(user.uid)
        .gid(user.gid)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dbus = DBusProxy::new(connection).await.unwrap();
    for _ in 0..200 {
        for name in dbus.list_names().await.unwrap() {
            if name.starts_with(':')
                && dbus
                    .get_connection_unix_user(BusName::try_from(name.as_str()).unwrap())
                    .await
                    .ok()
                    == Some(user.uid)
            {
                return UserConnection {
                    child,
                    name: name.to_string(),
                };
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{} never connected", user.name);
}

async fn package_hook_authorized(connection: &Connection, caller: &UserConnection) -> bool {
    // The subject is built exactly as apportd builds it: from a message header's sender.
    let message = zbus::Message::method_call("/com/ubuntu/Apport", "RunBundle")
        .sender(caller.name.as_str())
        .build(&())
        .unwrap();
    let subject = Subject::new_for_message_header(&message.header()).unwrap();
    let authorizer = PolkitAuthorizer::new(connection.clone(), Some(subject), false);
    authorizer
        .authorize_root(&RootRequest {
            caller_uid: 0,
            hook_id: "lightdm-logs".into(),
            hook_version: 3,
            package: Some("lightdm".into()),
        })
        .await
}

#[tokio::test]
async fn shipped_rules_grant_package_hook_to_admins_and_whoopsie_without_a_prompt() {
    if !have_root("shipped_rules_grant_package_hook_to_admins_and_whoopsie_without_a_prompt") {
        return;
    }
    assert!(require_program("/usr/bin/dbus-monitor"));
    let mut bus = SystemBus::start("idle_exit_secs = 2\n");
    let admin = TestUser::create("pa", &["sudo"], false);
    let plain = TestUser::create("pp", &[], false);
    let whoopsie = TestUser::create_named("whoopsie", &[], true);
    let connection = zbus::connection::Builder::address(bus.address.as_str())
        .build()
        .await
        .unwrap();
    let admin_conn = connect_as(&bus, &connection, &admin).await;
    let plain_conn = connect_as(&bus, &connection, &plain).await;
    let whoopsie_conn = connect_as(&bus, &connection, &whoopsie).await;
    // Not in any session (headless, like a daemon or ssh without logind):
    // the rules still decide, and no prompt is possible or needed.
    assert!(
        package_hook_authorized(&connection, &admin_conn).await,
        "sudo member"
    );
    assert!(
        package_hook_authorized(&connection, &whoopsie_conn).await,
        "whoopsie"
    );
    assert!(
        !package_hook_authorized(&connection, &plain_conn).await,
        "plain user"
    );

    // polkitd gone: denied, for everyone.
    bus.stop_polkitd();
    assert!(
        !package_hook_authorized(&connection, &admin_conn).await,
        "fail closed"
    );
}
