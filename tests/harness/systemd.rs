//! A real systemd (252) booted as PID 1 of fresh namespaces, for testing the
//! shipped `apportd.service` under its hardening on a machine without systemd.
//!
//! What keeps the host safe (a first probe with the default unit path let
//! `systemd-tmpfiles` wipe the host's `/tmp`: deleting files is not namespaced):
//! - the unit search path is ONLY the test's unit directory
//!   (`SYSTEMD_UNIT_PATH` without a trailing `:` replaces the whole list,
//!   generator directories included — `man systemd`, ENVIRONMENT), and
//!   `SYSTEMD_GENERATOR_PATH`/`SYSTEMD_ENVIRONMENT_GENERATOR_PATH` name an
//!   empty directory, so no generator and no distribution unit ever runs;
//!   the test's units all have `DefaultDependencies=no`;
//! - new pid, mount (private propagation), uts, ipc and cgroup namespaces;
//!   inside, fresh tmpfs on `/run`, `/tmp`, `/var/tmp`, `/var/log/journal` and
//!   `/dev` (with only the device nodes a service needs bound in), and the cgroup
//!   hierarchies remounted so that they are rooted at a per-test cgroup;
//! - the host's network namespace is kept on purpose (so that `PrivateNetwork=`
//!   can be observed against real interfaces); systemd only brings `lo` up;
//! - teardown always SIGKILLs PID 1 by its host pid (the kernel then kills the
//!   whole namespace), waits for it and removes the per-test cgroups; if the
//!   test process dies first, `setpriv --pdeathsig` and `unshare --kill-child`
//!   kill PID 1, and the next boot sweeps the cgroups it left.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Inside the namespaces, the per-test directory is bound here.
pub const SHARE: &str = "/run/apport-test";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Run on the host: one cgroup per hierarchy under our own, enter them, then
/// `unshare` (the forked child becomes PID 1 and runs `INNER`).
/// `$1` = cgroup name, `$2` = test directory.
const OUTER: &str = r#"set -eu
id=$1; dir=$2
: > "$dir/cgroups"
awk '$3=="cgroup"||$3=="cgroup2"{print $2, $3, $4}' /proc/self/mounts > "$dir/cgmounts"
while read -r m t o; do
  rel=""
  while IFS=: read -r n c p; do
    if [ "$t" = cgroup2 ]; then
      if [ "$n" = 0 ]; then rel=$p; fi
    elif [ -n "$c" ]; then
      case ",$o," in *",$c,"*) rel=$p;; esac
    fi
  done < /proc/self/cgroup
  # Sweep cgroups left by a test process that was killed before its teardown.
  for old in "${m}${rel%/}"/apport-hooks-sysd-*; do
    [ -d "$old" ] || continue
    pid=${old##*/apport-hooks-sysd-}; pid=${pid%%-*}
    [ -d "/proc/$pid" ] || find "$old" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  cg="${m}${rel%/}/$id"
  echo "$cg" >> "$dir/cgroups"
  mkdir "$cg"
  if [ -e "$cg/cpuset.cpus" ]; then
    cat "$cg/../cpuset.cpus" > "$cg/cpuset.cpus"
    cat "$cg/../cpuset.mems" > "$cg/cpuset.mems"
  fi
  echo $$ > "$cg/cgroup.procs"
done < "$dir/cgmounts"
# If the test process dies without its teardown, unshare and then PID 1 get SIGKILL.
exec setpriv --pdeathsig KILL \
  unshare --kill-child=SIGKILL --pid --fork --mount --uts --ipc --cgroup --propagation private \
  --mount-proc /bin/sh -c "$3" inner "$dir"
"#;

/// Run as PID 1 of the new namespaces, before `exec`ing systemd. `$1` = test directory.
const INNER: &str = r#"set -eu
dir=$1
mount -t tmpfs -o mode=0755,nosuid,nodev apport-test-run /run
mkdir -p /run/apport-test /run/dbus /run/systemd/journald.conf.d
mount --bind "$dir/share" /run/apport-test
: > /run/dbus/system_bus_socket
mount --bind "$(cat "$dir/bus")" /run/dbus/system_bus_socket
printf '[Journal]\nStorage=volatile\n' > /run/systemd/journald.conf.d/apport-test.conf
# What tmpfiles.d/systemd.conf does on a real machine: the journal readable by systemd-journal.
mkdir -p "/run/log/journal/$(cat /etc/machine-id)"
chgrp -R systemd-journal /run/log/journal
chmod 2755 /run/log/journal
chmod 2750 "/run/log/journal/$(cat /etc/machine-id)"
while read -r from to; do mount --bind "$from" "$to"; done < "$dir/binds"
# A private /dev: systemd resets /dev/console and creates symlinks in /dev.
mount --bind /dev "$dir/hostdev"
mount -t tmpfs -o mode=0755,nosuid apport-test-dev /dev
for n in null zero full random urandom tty kmsg loop0; do
  [ -e "$dir/hostdev/$n" ] || continue
  : > "/dev/$n"
  mount --bind "$dir/hostdev/$n" "/dev/$n"
done
mkdir /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 apport-test-pts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev apport-test-shm /dev/shm
: > /dev/console
mount --bind "$dir/console.log" /dev/console
umount -l "$dir/hostdev"
# The cgroup hierarchies, rooted at this cgroup namespace (the per-test cgroups).
mount -t tmpfs -o mode=0755 apport-test-cgroup /sys/fs/cgroup
while read -r m t o; do
  mkdir -p "$m"
  mount -t "$t" -o "$o" "$t" "$m"
done < "$dir/cgmounts"
mount -t tmpfs -o mode=1777,nosuid,nodev apport-test-tmp /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev apport-test-tmp /var/tmp
if [ -d /var/log/journal ]; then
  mount -t tmpfs -o mode=2755 apport-test-journal /var/log/journal
fi
exec env -i container=apport-hooks-test \
  SYSTEMD_UNIT_PATH=/run/apport-test/units \
  SYSTEMD_GENERATOR_PATH=/run/apport-test/empty \
  SYSTEMD_ENVIRONMENT_GENERATOR_PATH=/run/apport-test/empty \
  /lib/systemd/systemd --system --unit=apport-test.target --log-target=journal --log-level=info
"#;

/// The target the test boots: it pulls in the stand-in bus units and journald.
const TARGET: &str = "[Unit]
Description=apport-hooks systemd test
DefaultDependencies=no
Wants=dbus.socket dbus.service systemd-journald.socket systemd-journald.service
";

/// PID 1 connects to the system bus (needed for `Type=dbus`) only once
/// `dbus.socket` and `dbus.service` are active. The bus itself is the test's
/// dbus-daemon, bound at /run/dbus/system_bus_socket: these two are stand-ins.
const DBUS_SOCKET: &str = "[Unit]
Description=stand-in: the system bus is the test's dbus-daemon
DefaultDependencies=no
[Socket]
ListenStream=/run/apport-test-placeholder-bus
";

const DBUS_SERVICE: &str = "[Unit]
Description=stand-in: the system bus is the test's dbus-daemon
DefaultDependencies=no
[Service]
ExecStart=/bin/sleep infinity
";

/// A real journald (volatile storage in the namespace's /run), so that
/// services log to a journal and `journal` steps have one to read.
const JOURNALD_SOCKET: &str = "[Unit]
Description=Journal Socket
DefaultDependencies=no
[Socket]
ListenStream=/run/systemd/journal/stdout
ListenDatagram=/run/systemd/journal/socket
SocketMode=0666
PassCredentials=yes
PassSecurity=yes
ReceiveBuffer=8M
Service=systemd-journald.service
";

const JOURNALD_SERVICE: &str = "[Unit]
Description=Journal Service
DefaultDependencies=no
Requires=systemd-journald.socket
After=systemd-journald.socket
[Service]
Type=notify
Sockets=systemd-journald.socket
ExecStart=/lib/systemd/systemd-journald
StandardOutput=null
";

/// A systemd booted in namespaces; killed (with everything in them) on drop.
pub struct Systemd {
    /// Host side of the per-test directory; `share/` inside is [`SHARE`].
    pub dir: tempfile::TempDir,
    outer: Child,
    /// PID 1's pid on the host.
    pub pid1: i32,
    cgroups: Vec<PathBuf>,
}

impl Systemd {
    /// The per-test directory visible inside at [`SHARE`].
    pub fn share(&self) -> PathBuf {
        self.dir.path().join("share")
    }

    /// The host path of the per-test cgroup `hierarchy` (e.g. `pids`, `memory`).
    pub fn cgroup(&self, hierarchy: &str) -> PathBuf {
        let mount = Path::new("/sys/fs/cgroup").join(hierarchy);
        self.cgroups
            .iter()
            .find(|c| c.starts_with(&mount))
            .unwrap_or_else(|| panic!("no per-test cgroup under {}", mount.display()))
            .clone()
    }

    /// Boot systemd with the test's units plus `units` (name, text), `binds`
    /// (host path, path inside) bound in, and `bus_socket` as the system bus.
    /// Panics (with [`Systemd::logs`]) if it does not come up.
    pub fn boot(bus_socket: &Path, units: &[(&str, String)], binds: &[(PathBuf, &str)]) -> Self {
        use std::os::unix::fs::PermissionsExt;
        for program in [
            "/lib/systemd/systemd",
            "/usr/bin/unshare",
            "/usr/bin/nsenter",
            "/usr/bin/setpriv",
        ] {
            assert!(super::require_program(program));
        }
        // Without one, systemd would create /etc/machine-id on the host.
        assert!(
            std::fs::metadata("/etc/machine-id").is_ok_and(|m| m.len() > 0),
            "/etc/machine-id is missing or empty: run systemd-machine-id-setup first"
        );
        let dir = super::shared_tempdir();
        let share = dir.path().join("share");
        for sub in ["share/units", "share/empty", "hostdev"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("console.log"), "").unwrap();
        std::fs::write(dir.path().join("bus"), bus_socket.to_str().unwrap()).unwrap();
        let binds: String = binds
            .iter()
            .map(|(from, to)| format!("{} {to}\n", from.display()))
            .collect();
        std::fs::write(dir.path().join("binds"), binds).unwrap();
        // Stand-ins for what a unit with default dependencies requires
        // (sysinit.target, basic.target, shutdown.target): empty here, where on
        // a real machine they pull in tmpfiles, udev and the like.
        let stand_in = |what: &str| {
            format!("[Unit]\nDescription=stand-in for {what}\nDefaultDependencies=no\n")
        };
        let ours = [
            ("sysinit.target", stand_in("sysinit.target")),
            ("basic.target", stand_in("basic.target")),
            ("shutdown.target", stand_in("shutdown.target")),
            ("apport-test.target", TARGET.to_owned()),
            ("dbus.socket", DBUS_SOCKET.to_owned()),
            ("dbus.service", DBUS_SERVICE.to_owned()),
            ("systemd-journald.socket", JOURNALD_SOCKET.to_owned()),
            ("systemd-journald.service", JOURNALD_SERVICE.to_owned()),
        ];
        let theirs = units.iter().map(|(name, text)| (*name, text.clone()));
        for (name, text) in ours.into_iter().chain(theirs) {
            std::fs::write(share.join("units").join(name), text).unwrap();
        }
        let id = format!(
            "apport-hooks-sysd-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let outer = Command::new("/bin/sh")
            .args(["-c", OUTER, "outer", &id])
            .arg(dir.path())
            .arg(INNER)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("setup.log")).unwrap())
            .spawn()
            .expect("start unshare");
        let mut systemd = Systemd {
            dir,
            pid1: 0,
            outer,
            cgroups: Vec::new(),
        };
        systemd.pid1 = systemd.find_pid1();
        systemd.cgroups = std::fs::read_to_string(systemd.dir.path().join("cgroups"))
            .unwrap()
            .lines()
            .map(PathBuf::from)
            .collect();
        systemd.wait_running();
        systemd
    }

    /// The setup script's errors, systemd's console and the end of the
    /// namespace's journal (where PID 1 logs), for failure messages.
    pub fn logs(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let journal = if self.pid1 > 0 {
            self.nsenter(&["journalctl", "--no-pager", "-n", "100"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        } else {
            String::new()
        };
        format!(
            "--- setup ---\n{}\n--- systemd console ---\n{}\n--- journal ---\n{journal}",
            read("setup.log"),
            read("console.log")
        )
    }

    /// The host pid of the `unshare` child once it is systemd.
    fn find_pid1(&mut self) -> i32 {
        let outer = self.outer.id().to_string();
        for _ in 0..600 {
            if let Ok(Some(status)) = self.outer.try_wait() {
                panic!("namespace setup failed ({status}):\n{}", self.logs());
            }
            for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    continue;
                };
                let ppid = stat
                    .rsplit(')')
                    .next()
                    .and_then(|s| s.split_whitespace().nth(1));
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if ppid == Some(outer.as_str()) && comm.trim() == "systemd" {
                    return pid;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("systemd never started:\n{}", self.logs());
    }

    /// Wait until the boot job finished (`running`, or `degraded` with the failed units named).
    fn wait_running(&self) {
        let mut last = String::new();
        for _ in 0..600 {
            let out = self.systemctl(&["is-system-running"]);
            last = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            match last.as_str() {
                "running" => return,
                "degraded" => panic!(
                    "systemd booted degraded:\n{}\n{}",
                    String::from_utf8_lossy(&self.systemctl(&["--failed", "--no-pager"]).stdout),
                    self.logs()
                ),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        panic!(
            "systemd did not finish booting (state {last:?}):\n{}",
            self.logs()
        );
    }

    /// `ARGS…` run inside the namespaces (mount and pid), as root.
    pub fn nsenter(&self, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--target={}", self.pid1))
            .args(["--mount", "--pid", "--"])
            .args(args);
        command
    }

    /// `systemctl ARGS…` against this systemd.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        let mut full = vec!["systemctl"];
        full.extend_from_slice(args);
        self.nsenter(&full).output().unwrap()
    }

    /// One property of a unit (`systemctl show -p NAME --value UNIT`).
    pub fn property(&self, unit: &str, name: &str) -> String {
        let out = self.systemctl(&["show", "-p", name, "--value", unit]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The host pid of a process whose pid inside the namespace is `inner`.
    pub fn host_pid(&self, inner: i32) -> Option<i32> {
        let wanted = inner.to_string();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                continue;
            };
            let nspid: Vec<&str> = status
                .lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .map(|l| l.split_whitespace().collect())
                .unwrap_or_default();
            if nspid.len() == 2 && nspid.get(1) == Some(&wanted.as_str()) && self.in_our_pidns(pid)
            {
                return Some(pid);
            }
        }
        None
    }

    fn in_our_pidns(&self, pid: i32) -> bool {
        let ns = |p: i32| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
        ns(pid).is_some() && ns(pid) == ns(self.pid1)
    }
}

impl Drop for Systemd {
    fn drop(&mut self) {
        if self.pid1 > 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid1),
                nix::sys::signal::Signal::SIGKILL,
            );
        } else {
            let _ = self.outer.kill();
        }
        let _ = self.outer.wait();
        // Deepest first; a cgroup whose last task just died may take a moment to go.
        for root in self.cgroups.iter().rev() {
            for _ in 0..100 {
                if remove_tree(root) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// `rmdir` a cgroup and everything below it; `true` when it is gone.
fn remove_tree(dir: &Path) -> bool {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    std::fs::remove_dir(dir).is_ok() || !dir.exists()
}
