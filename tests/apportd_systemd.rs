//! The SHIPPED `systemd/apportd.service` under a real systemd 252 booted as
//! PID 1 of fresh namespaces (`tests/harness/systemd.rs`), on the harness's
//! private system bus with the real polkitd (needs root).
//!
//! What "each directive tested against every step kind" means here: one
//! instance of the unit, with every directive of the shipped file, runs a hook
//! with every step kind as root and as the report's owner, and each succeeds;
//! in the same instance, each directive is shown to be in force by an
//! observation it causes (a denied write, a missing interface, a capability
//! gone, a cgroup limit…) next to a control showing the same observation is
//! different outside the service. A directive added to the unit without such a
//! check fails `every_directive_of_the_shipped_unit_is_checked`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod harness;
#[path = "apportd_systemd/rig.rs"]
mod rig;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use apport_hooks::hook::{Action, JournalQuery, RunAs};
use harness::have_root;
use harness::systemd::SHARE;
use rig::{
    command, hook, key, main_and_owner, outcome, rig, service_directives, shipped_unit,
    shipped_value, started_rig, step, wait_property, wait_status,
};

/// The directives the tests below observe (the table in docs/apportd.md says how).
const CHECKED_DIRECTIVES: &[&str] = &[
    "Type",
    "BusName",
    "ExecStart",
    "NotifyAccess",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateNetwork",
    "DevicePolicy",
    "DeviceAllow",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectControlGroups",
    "ProtectClock",
    "ProtectHostname",
    "RestrictNamespaces",
    "RestrictAddressFamilies",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "LockPersonality",
    "MemoryDenyWriteExecute",
    "SystemCallFilter",
    "SystemCallArchitectures",
    "NoNewPrivileges",
    "UMask",
    "MemoryMax",
    "TasksMax",
    "LimitNOFILE",
    "StateDirectory",
    "StateDirectoryMode",
];

#[test]
fn every_directive_of_the_shipped_unit_is_checked() {
    let directives = service_directives(&shipped_unit());
    assert!(directives.len() > 20, "{directives:?}");
    for (name, _) in &directives {
        assert!(
            CHECKED_DIRECTIVES.contains(&name.as_str()),
            "{name}= is in systemd/apportd.service but tests/apportd_systemd.rs does not check it"
        );
    }
    for name in CHECKED_DIRECTIVES {
        assert!(
            directives.iter().any(|(n, _)| n == name),
            "{name}= is checked but not in the shipped unit"
        );
    }
}

fn host(argv: &[&str]) -> String {
    let out = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap();
    assert!(out.status.success(), "{argv:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `Name: value` of a `/proc/PID/status` text.
fn status_field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
}

fn has_capability(status: &str, bit: u32) -> bool {
    let bounding = u64::from_str_radix(status_field(status, "CapBnd"), 16).unwrap();
    bounding & (1u64 << bit) != 0
}

/// The interface names in a `/proc/net/dev` text.
fn interfaces(net_dev: &str) -> Vec<String> {
    net_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_owned())
        .collect()
}

const CAP_SYS_MODULE: u32 = 16;
const CAP_SYS_TIME: u32 = 25;

#[test]
fn every_step_kind_collects_under_the_shipped_hardening_and_each_directive_bites() {
    if !have_root("every_step_kind_collects_under_the_shipped_hardening_and_each_directive_bites") {
        return;
    }
    let rig = started_rig();
    let owner = &rig.owner;
    let share = rig.systemd.share();

    // --- every step kind, as root and as the report's owner -------------------
    let note = rig.owner_file("owner-note", &format!("note of {}\n", owner.uid));
    std::fs::create_dir(share.join("glob")).unwrap();
    for (name, text) in [("a.txt", "first\n"), ("b.txt", "second\n")] {
        std::fs::write(share.join("glob").join(name), text).unwrap();
        std::fs::set_permissions(
            share.join("glob").join(name),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let journal_query = JournalQuery {
        unit: Some("apportd.service".into()),
        priority: None,
        lines: Some(50),
        grep: Some("serving".into()),
        this_boot: false,
    };
    let mut steps = Vec::new();
    for (who, run_as) in [("Root", RunAs::Root), ("User", RunAs::User)] {
        steps.extend([
            step(
                &format!("{who}OsRelease"),
                run_as,
                Action::File("/usr/lib/os-release".into()),
            ),
            step(
                &format!("{who}Glob"),
                run_as,
                Action::Glob(format!("{SHARE}/glob/*.txt")),
            ),
            command(&format!("{who}Id"), run_as, &["/usr/bin/id", "-u"]),
            step(
                &format!("{who}Journal"),
                run_as,
                Action::Journal(journal_query.clone()),
            ),
            step(
                &format!("{who}Packages"),
                run_as,
                Action::PackageVersions(vec!["bash".into(), "dpkg".into()]),
            ),
            step(
                &format!("{who}Conffiles"),
                run_as,
                Action::Conffiles("bash".into()),
            ),
        ]);
    }
    // Only the owner may read this file: the user step reads it as the owner.
    steps.push(step("UserNote", RunAs::User, Action::File(note)));
    // apport's attach_dmesg: reads /dev/kmsg (kernel.dmesg_restrict=1 here: root only).
    steps.push(command("RootDmesg", RunAs::Root, &["/usr/bin/dmesg"]));
    let kinds: std::collections::BTreeSet<&str> = steps.iter().map(|s| s.action.kind()).collect();
    assert_eq!(
        kinds.len(),
        6,
        "a step kind is missing from this test: {kinds:?}"
    );
    let result = rig.run("kinds", &hook(steps.clone()));
    for s in &steps {
        assert_eq!(outcome(&result, &s.key), "collected", "{}: {result}", s.key);
    }
    let os_release = std::fs::read_to_string("/usr/lib/os-release").unwrap();
    let versions = host(&[
        "dpkg-query",
        "-W",
        "--showformat=${binary:Package} ${Version}\\n",
        "--",
        "bash",
        "dpkg",
    ]);
    let bashrc_key = apport_hooks::report::path_to_key("etc/bash.bashrc");
    for (who, uid) in [("Root", 0), ("User", owner.uid)] {
        assert_eq!(key(&result, &format!("{who}OsRelease")), os_release);
        assert_eq!(key(&result, &format!("{who}Glob.a.txt")), "first\n");
        assert_eq!(key(&result, &format!("{who}Glob.b.txt")), "second\n");
        assert_eq!(key(&result, &format!("{who}Id")), uid.to_string());
        // apportd's own start message, logged to the namespace's journald.
        assert!(
            key(&result, &format!("{who}Journal")).contains("apportd is serving com.ubuntu.apport"),
            "{result}"
        );
        assert_eq!(
            key(&result, &format!("{who}Packages")).trim(),
            versions.trim()
        );
        assert!(
            key(&result, &format!("{who}Conffiles")).contains("/etc/bash.bashrc: modified"),
            "{result}"
        );
        assert_eq!(
            key(&result, &format!("{who}Conffiles.{bashrc_key}")),
            rig.bashrc
        );
    }
    assert_eq!(key(&result, "UserNote"), format!("note of {}\n", owner.uid));
    let dmesg = key(&result, "RootDmesg");
    assert!(!dmesg.is_empty() && !dmesg.starts_with("Error:"), "{dmesg}");

    // --- each directive in force: what it causes, next to a control ----------
    let outer_marker = "apport-hooks-outer-marker";
    assert!(
        rig.outside(&["touch", &format!("/tmp/{outer_marker}")])
            .status
            .success()
    );
    let probe = "/usr/lib/apport-hooks-systemd-probe";
    let home_probe = "/home/apport-hooks-systemd-probe";
    let bites = hook(vec![
        command(
            "Status",
            RunAs::Root,
            &["/usr/bin/cat", "/proc/self/status"],
        ),
        command(
            "UserStatus",
            RunAs::User,
            &["/usr/bin/cat", "/proc/self/status"],
        ),
        command(
            "Limits",
            RunAs::Root,
            &["/usr/bin/cat", "/proc/self/limits"],
        ),
        command("ProtectSystem", RunAs::Root, &["/usr/bin/touch", probe]),
        command("ProtectHome", RunAs::Root, &["/usr/bin/touch", home_probe]),
        command("PrivateTmp", RunAs::Root, &["/usr/bin/ls", "-A", "/tmp"]),
        command(
            "PrivateNetwork",
            RunAs::Root,
            &["/usr/bin/cat", "/proc/net/dev"],
        ),
        command(
            "DevicePolicy",
            RunAs::Root,
            &["/usr/bin/head", "-c", "1", "/dev/loop0"],
        ),
        command(
            "DeviceAllow",
            RunAs::Root,
            &[
                "/bin/sh",
                "-c",
                "echo apport-hooks-systemd-test > /dev/kmsg",
            ],
        ),
        command(
            "ProtectKernelTunables",
            RunAs::Root,
            &["/usr/bin/findmnt", "-n", "-o", "OPTIONS", "/proc/sys"],
        ),
        command(
            "ProtectControlGroups",
            RunAs::Root,
            &[
                "/usr/bin/findmnt",
                "-n",
                "-o",
                "OPTIONS",
                "/sys/fs/cgroup/unified",
            ],
        ),
        command(
            "ProtectHostname",
            RunAs::Root,
            &[
                "/usr/bin/perl",
                "-e",
                "my $n = 'apport-probe'; print syscall(170, $n, length $n) == -1 ? \"denied: $!\" : 'changed'",
            ],
        ),
        command(
            "RestrictNamespaces",
            RunAs::Root,
            &["/usr/bin/unshare", "--uts", "/usr/bin/true"],
        ),
        command(
            "RestrictAddressFamilies",
            RunAs::Root,
            &["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9"],
        ),
        command(
            "RestrictRealtime",
            RunAs::Root,
            &["/usr/bin/chrt", "-f", "1", "/usr/bin/true"],
        ),
        command(
            "RestrictSUIDSGID",
            RunAs::Root,
            &["/bin/sh", "-c", "touch /tmp/s && chmod u+s /tmp/s"],
        ),
        command(
            "LockPersonality",
            RunAs::Root,
            &["/usr/bin/setarch", "linux32", "/usr/bin/true"],
        ),
        command(
            "MemoryDenyWriteExecute",
            RunAs::Root,
            &[
                "/usr/bin/perl",
                "-e",
                "print syscall(9, 0, 4096, 7, 34, -1, 0) == -1 ? \"denied: $!\" : 'mapped'",
            ],
        ),
        command(
            "SystemCallFilter",
            RunAs::Root,
            &[
                "/usr/bin/mount",
                "-t",
                "tmpfs",
                "apport-hooks-probe",
                "/mnt",
            ],
        ),
        command("UMask", RunAs::Root, &["/bin/sh", "-c", "umask"]),
        // access(2) answers EROFS for a read-only mount, even for root.
        command(
            "StateDirectory",
            RunAs::Root,
            &[
                "/bin/sh",
                "-c",
                "stat -c %a /var/lib/apportd; test -w /var/lib/apportd && echo rw; test -w /var/lib || echo ro",
            ],
        ),
        command(
            "Uts",
            RunAs::Root,
            &["/usr/bin/readlink", "/proc/self/ns/uts"],
        ),
    ]);
    let result = rig.run("bites", &bites);
    let own_status = std::fs::read_to_string("/proc/self/status").unwrap();
    let status = key(&result, "Status");

    // ProtectSystem=strict: / is read-only for root; the host's /usr unchanged.
    assert!(
        key(&result, "ProtectSystem").contains("Read-only file system"),
        "{result}"
    );
    assert!(!Path::new(probe).exists(), "a root step wrote {probe}");
    // ProtectHome=read-only.
    assert!(
        key(&result, "ProtectHome").contains("Read-only file system"),
        "{result}"
    );
    assert!(
        !Path::new(home_probe).exists(),
        "a root step wrote {home_probe}"
    );
    // PrivateTmp: the service's /tmp is not the one systemd (and the marker) see.
    let outer_tmp = String::from_utf8(rig.outside(&["ls", "-A", "/tmp"]).stdout).unwrap();
    assert!(outer_tmp.contains(outer_marker), "{outer_tmp}");
    assert!(
        !key(&result, "PrivateTmp").contains(outer_marker),
        "{result}"
    );
    // PrivateNetwork: only lo, where systemd itself sees the host's interfaces.
    let outer_net = String::from_utf8(rig.outside(&["cat", "/proc/net/dev"]).stdout).unwrap();
    assert!(interfaces(&outer_net).len() > 1, "{outer_net}");
    assert_eq!(
        interfaces(key(&result, "PrivateNetwork")),
        ["lo"],
        "{result}"
    );
    // DevicePolicy=closed: a block device root could read outside is refused.
    assert!(
        rig.outside(&["head", "-c", "1", "/dev/loop0"])
            .status
            .success(),
        "control: /dev/loop0 readable outside the service"
    );
    assert!(
        key(&result, "DevicePolicy").contains("Operation not permitted"),
        "{result}"
    );
    // DeviceAllow=/dev/kmsg r: dmesg read it above; writing is refused.
    assert!(
        key(&result, "DeviceAllow").contains("Operation not permitted"),
        "{result}"
    );
    // ProtectKernelTunables / ProtectControlGroups: read-only mounts only the service has.
    // (The last line is the topmost mount.)
    let top = |text: &str| text.lines().last().unwrap_or_default().to_owned();
    let outer_sys = rig.outside(&["findmnt", "-n", "-o", "OPTIONS", "/proc/sys"]);
    assert!(
        outer_sys.stdout.is_empty(),
        "control: /proc/sys is no mount outside"
    );
    assert!(
        top(key(&result, "ProtectKernelTunables")).starts_with("ro,"),
        "{result}"
    );
    let outer_cg = rig.outside(&["findmnt", "-n", "-o", "OPTIONS", "/sys/fs/cgroup/unified"]);
    let outer_cg = top(&String::from_utf8(outer_cg.stdout).unwrap());
    assert!(outer_cg.starts_with("rw,"), "control: {outer_cg}");
    assert!(
        top(key(&result, "ProtectControlGroups")).starts_with("ro,"),
        "{result}"
    );
    // ProtectKernelModules / ProtectClock: their capabilities are gone from the bounding set.
    assert!(
        has_capability(&own_status, CAP_SYS_MODULE) && has_capability(&own_status, CAP_SYS_TIME)
    );
    assert!(!has_capability(status, CAP_SYS_MODULE), "{status}");
    assert!(!has_capability(status, CAP_SYS_TIME), "{status}");
    // SystemCallFilter / SystemCallArchitectures / the Restrict* filters: a
    // seccomp filter is installed, and calls outside @system-service fail.
    assert_eq!(status_field(status, "Seccomp"), "2", "{status}");
    assert_eq!(status_field(&own_status, "Seccomp"), "0");
    for (directive, denial) in [
        ("RestrictNamespaces", "Operation not permitted"),
        ("RestrictAddressFamilies", "Address family not supported"),
        ("RestrictRealtime", "Operation not permitted"),
        ("RestrictSUIDSGID", "Operation not permitted"),
        ("LockPersonality", "Operation not permitted"),
        ("MemoryDenyWriteExecute", "denied: Operation not permitted"),
        // mount(2) is outside @system-service: the filter's action kills (SIGSYS).
        ("SystemCallFilter", "killed by signal 31"),
    ] {
        assert!(
            key(&result, directive).contains(denial),
            "{directive}: {result}"
        );
    }
    // ProtectHostname: a UTS namespace of its own, and sethostname(2) is
    // refused (EPERM) or, outside @system-service, kills the caller (SIGSYS).
    let outer_uts = std::fs::read_link(format!("/proc/{}/ns/uts", rig.systemd.pid1)).unwrap();
    assert_ne!(
        key(&result, "Uts").trim(),
        outer_uts.to_str().unwrap(),
        "{result}"
    );
    let hostname = key(&result, "ProtectHostname");
    assert!(
        hostname.contains("denied: Operation not permitted")
            || hostname.contains("killed by signal 31"),
        "{hostname}"
    );
    // StateDirectory=apportd, StateDirectoryMode=0700: the anti-rollback marks' directory
    // exists, is 0700 and writable, while the rest of /var/lib stays read-only.
    assert_eq!(
        key(&result, "StateDirectory")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["700", "rw", "ro"],
        "{result}"
    );
    // UMask=0077 reaches the steps.
    assert_eq!(key(&result, "UMask").trim(), "0077");
    // NoNewPrivileges=no for the service; the helper sets it on user steps itself.
    assert_eq!(status_field(status, "NoNewPrivs"), "0");
    assert_eq!(status_field(key(&result, "UserStatus"), "NoNewPrivs"), "1");
    // LimitNOFILE=: the steps inherit it.
    let (_, nofile) = service_directives(&shipped_unit())
        .into_iter()
        .find(|(name, _)| name == "LimitNOFILE")
        .unwrap();
    let limits = key(&result, "Limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&fields[3..5], [nofile.as_str(), nofile.as_str()], "{line}");
}

#[test]
fn systemd_tracks_apportd_by_bus_name_status_and_cgroup_limits() {
    if !have_root("systemd_tracks_apportd_by_bus_name_status_and_cgroup_limits") {
        return;
    }
    let rig = started_rig();
    // Type=dbus + BusName=: the start job finished, so systemd saw the name
    // taken; the name's owner on the bus is the unit's main process, which
    // runs the ExecStart= binary.
    assert_eq!(
        rig.systemd.property("apportd.service", "SubState"),
        "running"
    );
    assert_eq!(
        rig.systemd.property("apportd.service", "BusName"),
        shipped_value("BusName")
    );
    let (host_pid, owner) = main_and_owner(&rig);
    assert_eq!(owner, format!("u {host_pid}"));
    assert_eq!(
        std::fs::read_link(format!("/proc/{host_pid}/exe")).unwrap(),
        Path::new(env!("CARGO_BIN_EXE_apportd"))
    );

    // MemoryMax= and TasksMax= reach the kernel: the unit's cgroup limits
    // (cgroup v1 controllers here: memory.limit_in_bytes, pids.max).
    let unit_cgroup = "system.slice/apportd.service";
    let memory = std::fs::read_to_string(
        rig.systemd
            .cgroup("memory")
            .join(unit_cgroup)
            .join("memory.limit_in_bytes"),
    )
    .unwrap();
    let memory_max = shipped_value("MemoryMax");
    let mebibytes: u64 = memory_max.strip_suffix('M').unwrap().parse().unwrap();
    assert_eq!(memory.trim(), (mebibytes * 1024 * 1024).to_string());
    let tasks = std::fs::read_to_string(
        rig.systemd
            .cgroup("pids")
            .join(unit_cgroup)
            .join("pids.max"),
    )
    .unwrap();
    assert_eq!(tasks.trim(), shipped_value("TasksMax"));
    // SystemCallArchitectures= is taken as written (its effect, refusing
    // non-native syscalls, needs a foreign-ABI program to observe).
    assert_eq!(
        rig.systemd
            .property("apportd.service", "SystemCallArchitectures"),
        shipped_value("SystemCallArchitectures")
    );

    // NotifyAccess=main: apportd's sd_notify STATUS= reaches systemd, idle
    // and while a job runs.
    assert_eq!(wait_status(&rig, "idle"), "idle");
    let sleeper = hook(vec![command("Sleep", RunAs::Root, &["/bin/sleep", "300"])]);
    let (hook_path, report) = rig.files("sleep", &sleeper);
    let mut client = rig
        .bus
        .run_hook(None, true, &hook_path, &report)
        .spawn()
        .unwrap();
    let running = wait_status(&rig, "running 1 job");
    client.kill().unwrap();
    client.wait().unwrap();
    assert_eq!(running, "running 1 job");
    // The caller left: the job is cancelled and apportd says so.
    assert_eq!(wait_status(&rig, "idle"), "idle");
}

#[test]
fn the_shipped_activation_file_starts_apportd_service_and_it_exits_when_idle() {
    if !have_root("the_shipped_activation_file_starts_apportd_service_and_it_exits_when_idle") {
        return;
    }
    let rig = rig("idle_exit_secs = 2\n");
    assert_eq!(
        rig.systemd.property("apportd.service", "ActiveState"),
        "inactive"
    );
    // The first call: dbus-daemon (--systemd-activation, the shipped
    // dbus/com.ubuntu.apport.service) asks systemd for apportd.service.
    let version = rig.bus.apportd_property("Version");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("s \"{}\"", env!("CARGO_PKG_VERSION")),
        "{}\n{}",
        String::from_utf8_lossy(&version.stderr),
        rig.systemd.logs()
    );
    // The reply came from the unit's process (the shipped file's own Exec=,
    // /usr/libexec/apportd, does not exist here).
    let (host_pid, owner) = main_and_owner(&rig);
    assert_eq!(owner, format!("u {host_pid}"));
    // Idle for 2 s: apportd exits cleanly and systemd sees the unit stop.
    assert_eq!(wait_property(&rig, "ActiveState", "inactive"), "inactive");
    assert_eq!(rig.systemd.property("apportd.service", "Result"), "success");
}
