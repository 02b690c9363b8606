//! The secret deny-list: paths no hook may read, whoever reviewed it.
//!
//! A hook runs unattended, possibly as root, on machines whose owners never
//! saw it; these locations hold credentials or other people's secrets, or are
//! not files at all. The list is checked against `file` paths, against every
//! path a `glob` could match (a glob that could reach a denied path is itself
//! denied) and against command arguments that are absolute paths. The check
//! is lexical; apportd must still open files without following symlinks
//! (CVE-2021-32547…32555).
//!
//! Patterns: `*` is any run of characters but `/`, `**` any run of
//! characters including `/`.
//!
//! | Pattern(s) | Why |
//! |---|---|
//! | `/etc/shadow*`, `/etc/gshadow*`, `/var/backups/shadow*`, `/var/backups/gshadow*` | password hashes (and their `-` backups) |
//! | `/etc/sudoers**` | sudo policy (`/etc/sudoers`, `/etc/sudoers.d/…`) |
//! | `/etc/security/opasswd` | old password hashes |
//! | `/root`, `/root/**` | root's home |
//! | `**/.ssh`, `**/.ssh/**` | SSH keys and known hosts of any user |
//! | `/etc/ssh/*_key` | SSH host private keys |
//! | `/etc/ssl/private`, `/etc/ssl/private/**`, `/etc/pki/tls/private/**` | TLS private keys |
//! | `/etc/letsencrypt/archive/**`, `/etc/letsencrypt/keys/**` | certificate private keys |
//! | `/etc/NetworkManager/system-connections`, `/etc/NetworkManager/system-connections/**`, `/run/NetworkManager/system-connections/**`, `/etc/netplan/**`, `/run/netplan/**` | Wi-Fi and VPN passwords |
//! | `/var/lib/NetworkManager/secret_key` | NetworkManager's secret key |
//! | `/etc/wpa_supplicant/**`, `/etc/wpa_supplicant.conf`, `/var/lib/iwd/**` | Wi-Fi passphrases |
//! | `/etc/wireguard/**`, `/etc/ipsec.secrets`, `/etc/ppp/*-secrets` | VPN keys |
//! | `/var/lib/bluetooth/**` | Bluetooth pairing keys |
//! | `**/.gnupg`, `**/.gnupg/**` | GnuPG keys |
//! | `**/.local/share/keyrings`, `**/.local/share/keyrings/**` | GNOME keyrings |
//! | `**/.password-store/**` | `pass` password store |
//! | `/var/lib/sss`, `/var/lib/sss/**`, `/etc/sssd/sssd.conf`, `/etc/sssd/conf.d/**` | SSSD credential caches and bind passwords |
//! | `/etc/krb5.keytab`, `/etc/**/*.keytab` | Kerberos keys |
//! | `**/.netrc`, `**/.pgpass`, `**/.git-credentials`, `**/.npmrc`, `**/.pypirc`, `**/.cargo/credentials*`, `/etc/*.secret`, `/etc/**/*.secret`, `/etc/samba/smbpasswd`, `/var/lib/samba/private/**`, `/etc/postfix/sasl_passwd*`, `/var/cache/debconf/passwords.dat` | stored passwords |
//! | `**/.aws/**`, `**/.docker/**`, `**/.kube/**`, `**/.config/gcloud/**`, `**/.azure/**` | cloud and cluster credentials |
//! | `**/.mozilla/**`, `**/.thunderbird/**`, `**/.config/google-chrome/**`, `**/.config/chromium/**`, `**/.config/BraveSoftware/**`, `**/.config/microsoft-edge/**`, `**/.config/vivaldi/**`, `**/.config/opera/**`, `**/.config/**/Cookies`, `**/.config/**/Cookies-journal`, `**/.config/**/Login Data` | browser and mail profiles: cookies, saved passwords |
//! | `**/.*_history` | shell and REPL histories (typed passwords) |
//! | `/etc/mysql/debian.cnf` | MySQL maintenance password |
//! | `/var/lib/systemd/credential.secret`, `/run/credentials/**`, `/etc/credstore/**`, `/etc/credstore.encrypted/**` | systemd credentials |
//! | `/var/lib/private/**` | `DynamicUser=` services' private state |
//! | `/proc/**/environ`, `/proc/**/mem`, `/proc/kcore` | other processes' environment and memory |
//! | `/proc/**/root`, `/proc/**/root/**`, `/proc/**/cwd`, `/proc/**/cwd/**`, `/proc/**/fd/**`, `/proc/**/map_files/**` | other processes' view of the file system (a way around every other entry) |
//! | `/var/lib/cloud/**/user-data*`, `/var/lib/cloud/**/vendor-data*`, `/var/lib/cloud/**/vendor2-data*`, `/var/lib/cloud/**/obj.pkl`, `/run/cloud-init/instance-data-sensitive.json`, `/etc/cloud/cloud.cfg.d/99-installer.cfg`, `/var/log/installer/autoinstall-user-data` | cloud-init and installer user data (passwords, tokens, keys) |
//! | `/etc/apt/auth.conf`, `/etc/apt/auth.conf.d/**`, `/var/lib/ubuntu-advantage/private/**`, `/var/lib/snapd/state.json`, `**/.snap/auth.json` | package archive, Ubuntu Pro and snap store credentials |
//! | `/var/lib/polkit-1/**`, `/etc/polkit-1/localauthority/**` | local polkit authorizations |
//! | `/etc/machine-id`, `/var/lib/dbus/machine-id`, `/sys/**/dmi/id/*_serial`, `/sys/**/dmi/id/product_uuid` | raw machine identifiers and serial numbers (whoopsie sends only a hash) |
//! | `/sys/firmware/efi/efivars/**`, `/sys/firmware/efi/vars/**`, `/sys/firmware/qemu_fw_cfg/**` | firmware variables and VM firmware configuration (may carry keys) |
//! | `/etc/openvpn/**` | VPN keys |
//! | `/sys/kernel/debug/**` | kernel debug interfaces (mac80211 exposes Wi-Fi key material there) |
//! | `**/.Xauthority`, `**/.ICEauthority`, `/run/user/*/gdm/Xauthority`, `/run/lightdm/root/**`, `/var/lib/lightdm/.Xauthority` | X11 session cookies (whoever holds one controls the session) |
//! | `/dev/**` | devices: not regular files; a read may never end or change hardware state |

use std::sync::LazyLock;

use super::pattern::{Pattern, intersects};

/// One deny-list entry.
#[derive(Debug, Clone, Copy)]
pub struct DenyEntry {
    /// The patterns (`*` within a component, `**` across components).
    pub patterns: &'static [&'static str],
    /// Why it is denied.
    pub reason: &'static str,
}

/// The deny-list. Keep the table in the module documentation in step.
pub const DENY_LIST: &[DenyEntry] = &[
    DenyEntry {
        patterns: &[
            "/etc/shadow*",
            "/etc/gshadow*",
            "/var/backups/shadow*",
            "/var/backups/gshadow*",
        ],
        reason: "password hashes",
    },
    DenyEntry {
        patterns: &["/etc/sudoers**"],
        reason: "sudo policy",
    },
    DenyEntry {
        patterns: &["/etc/security/opasswd"],
        reason: "old password hashes",
    },
    DenyEntry {
        patterns: &["/root", "/root/**"],
        reason: "root's home",
    },
    DenyEntry {
        patterns: &["**/.ssh", "**/.ssh/**"],
        reason: "SSH keys",
    },
    DenyEntry {
        patterns: &["/etc/ssh/*_key"],
        reason: "SSH host private keys",
    },
    DenyEntry {
        patterns: &[
            "/etc/ssl/private",
            "/etc/ssl/private/**",
            "/etc/pki/tls/private/**",
        ],
        reason: "TLS private keys",
    },
    DenyEntry {
        patterns: &["/etc/letsencrypt/archive/**", "/etc/letsencrypt/keys/**"],
        reason: "certificate private keys",
    },
    DenyEntry {
        patterns: &[
            "/etc/NetworkManager/system-connections",
            "/etc/NetworkManager/system-connections/**",
            "/run/NetworkManager/system-connections/**",
            "/etc/netplan/**",
            "/run/netplan/**",
        ],
        reason: "Wi-Fi and VPN passwords",
    },
    DenyEntry {
        patterns: &["/var/lib/NetworkManager/secret_key"],
        reason: "NetworkManager's secret key",
    },
    DenyEntry {
        patterns: &[
            "/etc/wpa_supplicant/**",
            "/etc/wpa_supplicant.conf",
            "/var/lib/iwd/**",
        ],
        reason: "Wi-Fi passphrases",
    },
    DenyEntry {
        patterns: &[
            "/etc/wireguard/**",
            "/etc/ipsec.secrets",
            "/etc/ppp/*-secrets",
        ],
        reason: "VPN keys",
    },
    DenyEntry {
        patterns: &["/var/lib/bluetooth/**"],
        reason: "Bluetooth pairing keys",
    },
    DenyEntry {
        patterns: &["**/.gnupg", "**/.gnupg/**"],
        reason: "GnuPG keys",
    },
    DenyEntry {
        patterns: &["**/.local/share/keyrings", "**/.local/share/keyrings/**"],
        reason: "GNOME keyrings",
    },
    DenyEntry {
        patterns: &["**/.password-store/**"],
        reason: "password store",
    },
    DenyEntry {
        patterns: &[
            "/var/lib/sss",
            "/var/lib/sss/**",
            "/etc/sssd/sssd.conf",
            "/etc/sssd/conf.d/**",
        ],
        reason: "SSSD credential caches and bind passwords",
    },
    DenyEntry {
        patterns: &["/etc/krb5.keytab", "/etc/**/*.keytab"],
        reason: "Kerberos keys",
    },
    DenyEntry {
        patterns: &[
            "**/.netrc",
            "**/.pgpass",
            "**/.git-credentials",
            "**/.npmrc",
            "**/.pypirc",
            "**/.cargo/credentials*",
            "/etc/*.secret",
            "/etc/**/*.secret",
            "/etc/samba/smbpasswd",
            "/var/lib/samba/private/**",
            "/etc/postfix/sasl_passwd*",
            "/var/cache/debconf/passwords.dat",
        ],
        reason: "stored passwords",
    },
    DenyEntry {
        patterns: &[
            "**/.aws/**",
            "**/.docker/**",
            "**/.kube/**",
            "**/.config/gcloud/**",
            "**/.azure/**",
        ],
        reason: "cloud and cluster credentials",
    },
    DenyEntry {
        patterns: &[
            "**/.mozilla/**",
            "**/.thunderbird/**",
            "**/.config/google-chrome/**",
            "**/.config/chromium/**",
            "**/.config/BraveSoftware/**",
            "**/.config/microsoft-edge/**",
            "**/.config/vivaldi/**",
            "**/.config/opera/**",
            "**/.config/**/Cookies",
            "**/.config/**/Cookies-journal",
            "**/.config/**/Login Data",
        ],
        reason: "browser and mail profiles (cookies, saved passwords)",
    },
    DenyEntry {
        patterns: &["**/.*_history"],
        reason: "shell and REPL histories",
    },
    DenyEntry {
        patterns: &["/etc/mysql/debian.cnf"],
        reason: "MySQL maintenance password",
    },
    DenyEntry {
        patterns: &[
            "/var/lib/systemd/credential.secret",
            "/run/credentials/**",
            "/etc/credstore/**",
            "/etc/credstore.encrypted/**",
        ],
        reason: "systemd credentials",
    },
    DenyEntry {
        patterns: &["/var/lib/private/**"],
        reason: "private state of DynamicUser services",
    },
    DenyEntry {
        patterns: &["/proc/**/environ", "/proc/**/mem", "/proc/kcore"],
        reason: "other processes' environment and memory",
    },
    DenyEntry {
        patterns: &[
            "/proc/**/root",
            "/proc/**/root/**",
            "/proc/**/cwd",
            "/proc/**/cwd/**",
            "/proc/**/fd/**",
            "/proc/**/map_files/**",
        ],
        reason: "other processes' view of the file system (a way around every other entry)",
    },
    DenyEntry {
        patterns: &[
            "/var/lib/cloud/**/user-data*",
            "/var/lib/cloud/**/vendor-data*",
            "/var/lib/cloud/**/vendor2-data*",
            "/var/lib/cloud/**/obj.pkl",
            "/run/cloud-init/instance-data-sensitive.json",
            "/etc/cloud/cloud.cfg.d/99-installer.cfg",
            "/var/log/installer/autoinstall-user-data",
        ],
        reason: "cloud-init and installer user data (passwords, tokens, keys)",
    },
    DenyEntry {
        patterns: &[
            "/etc/apt/auth.conf",
            "/etc/apt/auth.conf.d/**",
            "/var/lib/ubuntu-advantage/private/**",
            "/var/lib/snapd/state.json",
            "**/.snap/auth.json",
        ],
        reason: "package archive, Ubuntu Pro and snap store credentials",
    },
    DenyEntry {
        patterns: &["/var/lib/polkit-1/**", "/etc/polkit-1/localauthority/**"],
        reason: "local polkit authorizations",
    },
    DenyEntry {
        patterns: &[
            "/etc/machine-id",
            "/var/lib/dbus/machine-id",
            "/sys/**/dmi/id/*_serial",
            "/sys/**/dmi/id/product_uuid",
        ],
        reason: "raw machine identifiers and serial numbers (whoopsie sends only a hash)",
    },
    DenyEntry {
        patterns: &[
            "/sys/firmware/efi/efivars/**",
            "/sys/firmware/efi/vars/**",
            "/sys/firmware/qemu_fw_cfg/**",
        ],
        reason: "firmware variables and VM firmware configuration (may carry keys)",
    },
    DenyEntry {
        patterns: &["/etc/openvpn/**"],
        reason: "VPN keys",
    },
    DenyEntry {
        patterns: &["/sys/kernel/debug/**"],
        reason: "kernel debug interfaces (mac80211 exposes Wi-Fi key material there)",
    },
    DenyEntry {
        patterns: &[
            "**/.Xauthority",
            "**/.ICEauthority",
            "/run/user/*/gdm/Xauthority",
            "/run/lightdm/root/**",
            "/var/lib/lightdm/.Xauthority",
        ],
        reason: "X11 session cookies (whoever holds one controls the session)",
    },
    DenyEntry {
        patterns: &["/dev/**"],
        reason: "devices are not regular files",
    },
];

/// Every deny pattern, compiled once.
static COMPILED: LazyLock<Vec<(&'static DenyEntry, &'static str, Pattern)>> = LazyLock::new(|| {
    DENY_LIST
        .iter()
        .flat_map(|entry| {
            entry
                .patterns
                .iter()
                .map(move |p| (entry, *p, Pattern::deny(p)))
        })
        .collect()
});

/// Every compiled deny pattern with its entry.
#[cfg(test)]
pub(crate) fn compiled_patterns() -> &'static [(&'static DenyEntry, &'static str, Pattern)] {
    &COMPILED
}

/// Symlinks every Ubuntu system has, as (link, target). Programs run by a
/// `command` step follow them, so a literal path under a link is checked as
/// the path under its target too (`/var/run/credentials/…` is
/// `/run/credentials/…`). `file` and `glob` steps never follow symlinks.
pub const SYMLINK_ALIASES: &[(&str, &str)] = &[
    ("/var/run", "/run"),
    ("/var/lock", "/run/lock"),
    ("/bin", "/usr/bin"),
    ("/sbin", "/usr/sbin"),
    ("/lib", "/usr/lib"),
    ("/lib64", "/usr/lib64"),
    ("/dev/fd", "/proc/self/fd"),
];

/// The first deny-list entry and pattern `path` could match, if any.
pub(crate) fn denied(path: &Pattern) -> Option<(&'static DenyEntry, &'static str)> {
    COMPILED
        .iter()
        .find(|(_, _, compiled)| intersects(path, compiled))
        .map(|(entry, p, _)| (*entry, *p))
}

/// Like [`denied`], but only patterns anchored at a directory (not those
/// starting with `**`, which could match under any directory): for "does this
/// directory tree hold a denied path", where `**/.ssh` would make every tree
/// suspect.
pub(crate) fn denied_anchored(path: &Pattern) -> Option<(&'static DenyEntry, &'static str)> {
    COMPILED
        .iter()
        .filter(|(_, p, _)| !p.starts_with("**"))
        .find(|(_, _, compiled)| intersects(path, compiled))
        .map(|(entry, p, _)| (*entry, *p))
}

/// `path` with a leading well-known symlink replaced by its target, if it
/// starts with one (see [`SYMLINK_ALIASES`]).
pub(crate) fn through_alias(path: &str) -> Option<String> {
    SYMLINK_ALIASES.iter().find_map(|(link, target)| {
        let rest = path.strip_prefix(link)?;
        (rest.is_empty() || rest.starts_with('/')).then(|| format!("{target}{rest}"))
    })
}

/// A deny pattern as an anchored regex: on a literal path (where the
/// hidden-name rule of globs plays no part) it matches exactly when
/// [`intersects`] says so (a property test in `pattern.rs` checks this).
fn literal_regex(pattern: &str) -> String {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '*' {
            if chars.peek() == Some(&'*') {
                chars.next();
                re.push_str("(?s:.*)");
            } else {
                re.push_str("[^/]*");
            }
        } else {
            re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
        }
    }
    re.push('$');
    re
}

/// Every deny pattern in one regex set, in [`COMPILED`] order: a literal path
/// is checked in one linear pass (the product automaton costs the product of
/// the lengths per pattern, which a command with many long arguments made
/// minutes long).
static LITERAL_SET: LazyLock<Result<regex::RegexSet, regex::Error>> =
    LazyLock::new(|| regex::RegexSet::new(COMPILED.iter().map(|(_, p, _)| literal_regex(p))));

fn denied_exactly(path: &str) -> Option<(&'static DenyEntry, &'static str)> {
    match &*LITERAL_SET {
        Ok(set) => set
            .matches(path)
            .iter()
            .next()
            .and_then(|i| COMPILED.get(i))
            .map(|(entry, p, _)| (*entry, *p)),
        Err(_) => denied(&Pattern::literal(path)),
    }
}

/// The first deny-list entry and pattern a literal path matches, directly or
/// through a well-known symlink.
pub(crate) fn denied_literal(path: &str) -> Option<(&'static DenyEntry, &'static str)> {
    denied_exactly(path).or_else(|| through_alias(path).and_then(|p| denied_exactly(&p)))
}

/// Whether a literal absolute path is denied (directly or through a
/// well-known symlink).
pub fn is_denied_path(path: &str) -> bool {
    denied_literal(path).is_some()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_issue_examples_are_denied() {
        for p in [
            "/etc/shadow",
            "/etc/gshadow",
            "/etc/sudoers",
            "/etc/sudoers.d/90-cloud-init-users",
            "/root/.bashrc",
            "/home/alice/.ssh/id_ed25519",
            "/etc/ssl/private/ssl-cert-snakeoil.key",
            "/etc/NetworkManager/system-connections/Home.nmconnection",
            "/home/alice/.gnupg/private-keys-v1.d/x.key",
            "/home/alice/.local/share/keyrings/login.keyring",
            "/etc/security/opasswd",
            "/var/lib/sss/db/cache.ldb",
            "/home/alice/.netrc",
            "/var/lib/postgresql/.pgpass",
            "/etc/krb5.keytab",
            "/etc/ssh/ssh_host_ed25519_key",
            "/home/alice/.bash_history",
            "/proc/1/environ",
            "/dev/sda",
        ] {
            assert!(is_denied_path(p), "{p}");
        }
    }

    #[test]
    fn distribution_secrets_and_other_views_of_them_are_denied() {
        for p in [
            // Other processes' view of the file system: a way around every entry.
            "/proc/self/root/etc/shadow",
            "/proc/1/root/etc/shadow",
            "/proc/thread-self/root/etc/gshadow",
            "/proc/self/cwd/x",
            "/proc/1/fd/3",
            "/proc/1/map_files/55d0-55d1",
            "/proc/1/task/1/environ",
            "/proc/1/mem",
            "/dev/mem",
            "/dev/kmem",
            "/dev/port",
            "/run/credentials/getty@tty1.service/x",
            "/sys/firmware/efi/efivars/Boot0000-8be4df61-93ca-11d2-aa0d-00e098032b8c",
            "/sys/firmware/qemu_fw_cfg/by_name/opt/secret/raw",
            "/sys/class/dmi/id/product_serial",
            "/sys/devices/virtual/dmi/id/board_serial",
            "/sys/class/dmi/id/product_uuid",
            "/etc/machine-id",
            "/var/lib/dbus/machine-id",
            "/var/lib/polkit-1/localauthority/10-vendor.d/x.pkla",
            "/etc/polkit-1/localauthority/50-local.d/x.pkla",
            "/run/NetworkManager/system-connections/netplan-wlan0-Home.nmconnection",
            "/etc/netplan/50-cloud-init.yaml",
            "/run/netplan/wlan0.yaml",
            "/etc/wpa_supplicant.conf",
            "/var/lib/cloud/instance/user-data.txt",
            "/var/lib/cloud/instances/i-0abc/vendor-data.txt.i",
            "/var/lib/cloud/instance/obj.pkl",
            "/run/cloud-init/instance-data-sensitive.json",
            "/etc/cloud/cloud.cfg.d/99-installer.cfg",
            "/var/log/installer/autoinstall-user-data",
            "/var/cache/debconf/passwords.dat",
            "/etc/apt/auth.conf",
            "/etc/apt/auth.conf.d/90ubuntu-advantage",
            "/var/lib/ubuntu-advantage/private/machine-token.json",
            "/var/lib/snapd/state.json",
            "/home/alice/.snap/auth.json",
            "/home/alice/snap/firefox/common/.mozilla/firefox/x.default/cookies.sqlite",
            "/home/alice/.config/chromium/Default/Cookies",
            "/home/alice/.config/BraveSoftware/Brave-Browser/Default/Login Data",
            "/home/alice/.config/some-electron-app/Cookies",
            "/home/alice/.config/microsoft-edge/Default/Cookies",
            "/home/alice/.thunderbird/x.default/logins.json",
            "/home/alice/.docker/config.json",
            "/home/alice/.docker/contexts/meta/x/meta.json",
            "/home/alice/.kube/cache/x",
            "/home/alice/.aws/credentials",
            "/home/alice/.config/gcloud/credentials.db",
            "/home/alice/.azure/msal_token_cache.json",
            "/home/alice/.npmrc",
            "/home/alice/.pypirc",
            "/home/alice/.cargo/credentials.toml",
            "/etc/sssd/sssd.conf",
            "/etc/ldap.secret",
            "/etc/samba/smbpasswd",
            "/var/lib/samba/private/secrets.tdb",
            "/etc/postfix/sasl_passwd.db",
            "/etc/openvpn/client/x.key",
            "/var/backups/shadow.bak",
            "/var/backups/gshadow.bak",
            "/sys/kernel/debug/ieee80211/phy0/netdev:wlan0/stations/x/keys",
            "/home/alice/.Xauthority",
            "/run/user/1000/gdm/Xauthority",
            "/run/lightdm/root/:0",
        ] {
            assert!(is_denied_path(p), "{p}");
        }
    }

    #[test]
    fn the_regex_set_agrees_with_the_automaton_on_literal_paths() {
        assert!(LITERAL_SET.is_ok());
        for path in [
            "/etc/shadow",
            "/etc/shadow-",
            "/etc/passwd",
            "/home/a/.ssh/id_rsa",
            "/home/a/.config/x/y/Cookies",
            "/home/a/.config/Cookies",
            "/proc/1/task/2/environ",
            "/etc/ssh/ssh_host_rsa_key.pub",
            "/var/lib/cloud/instances/i/user-data.txt",
            "/sys/class/dmi/id/product_name",
            "/root",
            "/rootfs",
            "/etc/sudoers.d/x",
            "/dev",
        ] {
            let automaton = denied(&Pattern::literal(path)).map(|(_, p)| p);
            assert_eq!(denied_exactly(path).map(|(_, p)| p), automaton, "{path}");
        }
    }

    #[test]
    fn paths_through_well_known_symlinks_are_denied_like_their_targets() {
        assert!(is_denied_path("/var/run/credentials/x.service/token"));
        assert!(is_denied_path(
            "/var/run/NetworkManager/system-connections/x"
        ));
        assert!(!is_denied_path("/var/run/lightdm.pid"));
    }

    #[test]
    fn ordinary_paths_are_not_denied() {
        for p in [
            "/var/log/lightdm/lightdm.log",
            "/etc/ssh/ssh_host_ed25519_key.pub",
            "/etc/passwd",
            "/proc/cpuinfo",
            "/proc/1/status",
            "/etc/X11/xorg.conf",
            "/var/log/Xorg.0.log",
            "/var/lib/whoopsie/whoopsie-id",
            "/sys/class/dmi/id/product_name",
            "/proc/1/cmdline",
            "/var/log/cloud-init.log",
            "/etc/apt/sources.list",
            "/home/alice/.config/monitors.xml",
            "/var/backups/passwd.bak",
            "/var/backups/dpkg.status.0",
        ] {
            assert!(!is_denied_path(p), "{p}");
        }
    }

    #[test]
    fn doc_table_names_every_pattern() {
        let doc = include_str!("denylist.rs");
        let table: String = doc.lines().filter(|l| l.starts_with("//! |")).collect();
        for entry in DENY_LIST {
            for p in entry.patterns {
                assert!(table.contains(&format!("`{p}`")), "{p} not in table");
            }
        }
    }
}
