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
//! | `/etc/shadow*`, `/etc/gshadow*` | password hashes (and their `-` backups) |
//! | `/etc/sudoers**` | sudo policy (`/etc/sudoers`, `/etc/sudoers.d/…`) |
//! | `/etc/security/opasswd` | old password hashes |
//! | `/root`, `/root/**` | root's home |
//! | `**/.ssh`, `**/.ssh/**` | SSH keys and known hosts of any user |
//! | `/etc/ssh/*_key` | SSH host private keys |
//! | `/etc/ssl/private`, `/etc/ssl/private/**`, `/etc/pki/tls/private/**` | TLS private keys |
//! | `/etc/letsencrypt/archive/**`, `/etc/letsencrypt/keys/**` | certificate private keys |
//! | `/etc/NetworkManager/system-connections`, `/etc/NetworkManager/system-connections/**` | Wi-Fi and VPN passwords |
//! | `/var/lib/NetworkManager/secret_key` | NetworkManager's secret key |
//! | `/etc/wpa_supplicant/**`, `/var/lib/iwd/**` | Wi-Fi passphrases |
//! | `/etc/wireguard/**`, `/etc/ipsec.secrets`, `/etc/ppp/*-secrets` | VPN keys |
//! | `/var/lib/bluetooth/**` | Bluetooth pairing keys |
//! | `**/.gnupg`, `**/.gnupg/**` | GnuPG keys |
//! | `**/.local/share/keyrings`, `**/.local/share/keyrings/**` | GNOME keyrings |
//! | `**/.password-store/**` | `pass` password store |
//! | `/var/lib/sss`, `/var/lib/sss/**` | SSSD credential caches |
//! | `/etc/krb5.keytab`, `/etc/**/*.keytab` | Kerberos keys |
//! | `**/.netrc`, `**/.pgpass`, `**/.git-credentials` | stored passwords |
//! | `**/.aws/**`, `**/.docker/config.json`, `**/.kube/config` | cloud and cluster credentials |
//! | `**/.mozilla/**`, `**/.config/google-chrome/**`, `**/.config/chromium/**` | browser profiles: cookies, saved passwords |
//! | `**/.*_history` | shell and REPL histories (typed passwords) |
//! | `/etc/mysql/debian.cnf` | MySQL maintenance password |
//! | `/var/lib/systemd/credential.secret`, `/etc/credstore/**`, `/etc/credstore.encrypted/**` | systemd credentials |
//! | `/var/lib/private/**` | `DynamicUser=` services' private state |
//! | `/proc/**/environ`, `/proc/**/mem`, `/proc/kcore` | other processes' environment and memory |
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
        patterns: &["/etc/shadow*", "/etc/gshadow*"],
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
        ],
        reason: "Wi-Fi and VPN passwords",
    },
    DenyEntry {
        patterns: &["/var/lib/NetworkManager/secret_key"],
        reason: "NetworkManager's secret key",
    },
    DenyEntry {
        patterns: &["/etc/wpa_supplicant/**", "/var/lib/iwd/**"],
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
        patterns: &["/var/lib/sss", "/var/lib/sss/**"],
        reason: "SSSD credential caches",
    },
    DenyEntry {
        patterns: &["/etc/krb5.keytab", "/etc/**/*.keytab"],
        reason: "Kerberos keys",
    },
    DenyEntry {
        patterns: &["**/.netrc", "**/.pgpass", "**/.git-credentials"],
        reason: "stored passwords",
    },
    DenyEntry {
        patterns: &["**/.aws/**", "**/.docker/config.json", "**/.kube/config"],
        reason: "cloud and cluster credentials",
    },
    DenyEntry {
        patterns: &[
            "**/.mozilla/**",
            "**/.config/google-chrome/**",
            "**/.config/chromium/**",
        ],
        reason: "browser profiles (cookies, saved passwords)",
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

/// The first deny-list entry and pattern `path` could match, if any.
pub(crate) fn denied(path: &Pattern) -> Option<(&'static DenyEntry, &'static str)> {
    COMPILED
        .iter()
        .find(|(_, _, compiled)| intersects(path, compiled))
        .map(|(entry, p, _)| (*entry, *p))
}

/// Whether a literal absolute path is denied.
pub fn is_denied_path(path: &str) -> bool {
    denied(&Pattern::literal(path)).is_some()
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
    fn ordinary_paths_are_not_denied() {
        for p in [
            "/var/log/lightdm/lightdm.log",
            "/etc/ssh/ssh_host_ed25519_key.pub",
            "/etc/passwd",
            "/proc/cpuinfo",
            "/proc/1/status",
            "/etc/X11/xorg.conf",
            "/var/log/Xorg.0.log",
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
