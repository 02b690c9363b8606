//! Tables of programs a `command` step must not run, or must not run in
//! certain ways. The logic that applies them is in [`super::command`].

/// Ways an interpreter takes code inline.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Inline {
    /// A short option cluster containing one of these letters (`-c`, `-ec`),
    /// or one of these long options (`--command`, `--eval=…`).
    Flags {
        letters: &'static [char],
        long: &'static [&'static str],
    },
    /// The program text is an argument unless `-f`/`--file` names a file.
    ProgramArgument,
    /// The first argument that is not an option is a database; any further
    /// one (an option's value too: which options take one is not guessed),
    /// and `-cmd`/`-init`/`-A…`, is code.
    Statements,
}

/// Interpreters and how they take inline code. Matched on the program's name
/// with any version suffix removed (`python3.12` → `python`).
pub(crate) const INTERPRETERS: &[(&str, Inline)] = &[
    ("sh", SHELL),
    ("bash", SHELL),
    ("bash-static", SHELL),
    ("zsh-static", SHELL),
    ("rbash", SHELL),
    ("dash", SHELL),
    ("ash", SHELL),
    ("zsh", SHELL),
    ("ksh", SHELL),
    ("mksh", SHELL),
    ("yash", SHELL),
    ("posh", SHELL),
    ("csh", SHELL),
    ("tcsh", SHELL),
    (
        "fish",
        Inline::Flags {
            letters: &['c', 'C'],
            long: &["--command", "--init-command"],
        },
    ),
    // `-m` too: `python3 -m timeit CODE` runs code, and other modules
    // (`http.server`) are programs of their own.
    (
        "python",
        Inline::Flags {
            letters: &['c', 'm'],
            long: &[],
        },
    ),
    (
        "pypy",
        Inline::Flags {
            letters: &['c', 'm'],
            long: &[],
        },
    ),
    (
        "perl",
        Inline::Flags {
            letters: &['e', 'E'],
            long: &[],
        },
    ),
    (
        "ruby",
        Inline::Flags {
            letters: &['e'],
            long: &[],
        },
    ),
    (
        "lua",
        Inline::Flags {
            letters: &['e'],
            long: &[],
        },
    ),
    (
        "luajit",
        Inline::Flags {
            letters: &['e'],
            long: &[],
        },
    ),
    (
        "expect",
        Inline::Flags {
            letters: &['c'],
            long: &[],
        },
    ),
    (
        "julia",
        Inline::Flags {
            letters: &['e', 'E'],
            long: &["--eval", "--print"],
        },
    ),
    (
        "Rscript",
        Inline::Flags {
            letters: &['e'],
            long: &[],
        },
    ),
    ("node", NODE),
    ("nodejs", NODE),
    ("bun", NODE),
    (
        "deno",
        Inline::Flags {
            letters: &[],
            long: &["eval"],
        },
    ),
    (
        "php",
        Inline::Flags {
            letters: &['r', 'R', 'B', 'E'],
            long: &[],
        },
    ),
    ("gdb", GDB),
    ("gdb-multiarch", GDB),
    ("awk", Inline::ProgramArgument),
    ("gawk", Inline::ProgramArgument),
    ("mawk", Inline::ProgramArgument),
    ("nawk", Inline::ProgramArgument),
    ("original-awk", Inline::ProgramArgument),
    ("sed", Inline::ProgramArgument),
    // SQL in the shell runs dot-commands (`.shell`, `.system`) and
    // functions that load libraries or write files (`load_extension`,
    // `writefile`, `edit`): any statement is code.
    ("sqlite3", Inline::Statements),
];

/// gdb's command options (also by any prefix, after one dash or two, see
/// `command::inline_code`): every one runs gdb commands, `shell` among them.
const GDB: Inline = Inline::Flags {
    letters: &[],
    long: &[
        "-ex",
        "--ex",
        "-iex",
        "--iex",
        "-eiex",
        "--eiex",
        "-eval-command",
        "--eval-command",
        "-init-eval-command",
        "--init-eval-command",
        "-early-init-eval-command",
        "--early-init-eval-command",
        "-x",
        "--command",
        "-ix",
        "--init-command",
        "-eix",
        "--early-init-command",
    ],
};
const SHELL: Inline = Inline::Flags {
    letters: &['c'],
    long: &["--command"],
};
const NODE: Inline = Inline::Flags {
    letters: &['e', 'p'],
    long: &["--eval", "--print"],
};

/// Programs that switch user or escape confinement. A root step is declared
/// with `as = "root"` and authorized by polkit; anything else bypasses the
/// review (and `pkexec` itself was CVE-2021-4034).
pub(crate) const PRIVILEGE_TOOLS: &[&str] = &[
    "sudo",
    "su",
    "pkexec",
    "doas",
    "run0",
    "runuser",
    "setpriv",
    "sg",
    "newgrp",
    "chroot",
    "nsenter",
    "unshare",
    "capsh",
    "machinectl",
    "systemd-run",
    // Bus clients: a call to PID 1 or logind acts outside the step's
    // sandbox (`StartTransientUnit` is `systemd-run` by another name).
    "dbus-send",
    "gdbus",
    "varlinkctl",
];

/// Programs whose job is to run another program: the reviewer would see
/// `env` where `sh -c …` runs.
pub(crate) const INDIRECT_TOOLS: &[&str] = &[
    "env",
    "nice",
    "nohup",
    "timeout",
    "xargs",
    "setsid",
    "stdbuf",
    "ionice",
    "chrt",
    "taskset",
    "flock",
    "script",
    "watch",
    "busybox",
    "strace",
    "ltrace",
    "valgrind",
    "time",
    "parallel",
    "at",
    "batch",
    "ssh",
    "dbus-run-session",
    "dbus-launch",
    "unbuffer",
    "faketime",
    "firejail",
    "bwrap",
    "runcon",
    "catchsegv",
    "cgexec",
    "numactl",
    "prlimit",
    "setarch",
    "linux32",
    "linux64",
    "choom",
    "systemd-cat",
    "systemd-inhibit",
    "run-parts",
    "start-stop-daemon",
    "perf",
    "gdbserver",
];

/// Options that make a program run another program it is given, as
/// `find -exec` does. A long option matches alone, as `--opt=…`, and by
/// any prefix (GNU programs take an unambiguous prefix, and an ambiguous
/// one is an error anyway) unless that prefix is an option of its own
/// (`tar --checkpoint`). A short letter matches anywhere in a cluster
/// (`-xIzstd`, `-4e`), which refuses some harmless clusters rather than
/// miss a value-taking letter.
pub(crate) const EXEC_OPTIONS: &[ExecOptions] = &[
    ExecOptions {
        program: "tar",
        long: &[
            "--to-command",
            "--use-compress-program",
            "--checkpoint-action",
            "--info-script",
            "--new-volume-script",
            "--rsh-command",
            "--rmt-command",
        ],
        own_options: &["--checkpoint"],
        letters: &['I', 'F'],
        bundled_first: true,
    },
    ExecOptions {
        program: "rsync",
        long: &["--rsh", "--rsync-path"],
        own_options: &[],
        letters: &['e'],
        bundled_first: false,
    },
    ExecOptions {
        program: "scp",
        long: &[],
        own_options: &[],
        letters: &['S', 'o'],
        bundled_first: false,
    },
    ExecOptions {
        program: "sort",
        long: &["--compress-program"],
        own_options: &[],
        letters: &[],
        bundled_first: false,
    },
    ExecOptions {
        program: "zip",
        long: &["--unzip-command", "-TT"],
        own_options: &[],
        letters: &[],
        bundled_first: false,
    },
    ExecOptions {
        program: "sftp",
        long: &[],
        own_options: &[],
        letters: &['D', 'S', 'o'],
        bundled_first: false,
    },
    ExecOptions {
        program: "split",
        long: &["--filter"],
        own_options: &[],
        letters: &[],
        bundled_first: false,
    },
    ExecOptions {
        program: "cpio",
        long: &["--rsh-command"],
        own_options: &[],
        letters: &[],
        bundled_first: false,
    },
    ExecOptions {
        program: "tcpdump",
        long: &[],
        own_options: &[],
        letters: &['z'],
        bundled_first: false,
    },
];

/// One program's entry in [`EXEC_OPTIONS`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExecOptions {
    pub(crate) program: &'static str,
    /// Long options (`--…` ones also by prefix; a single-dash one, zip's
    /// `-TT`, anywhere in a cluster, its value attached or not).
    pub(crate) long: &'static [&'static str],
    /// Options that are a prefix of one in `long` but mean something else.
    pub(crate) own_options: &'static [&'static str],
    /// Short option letters.
    pub(crate) letters: &'static [char],
    /// The first argument is a cluster of letters even without a dash
    /// (`tar xIf PROG …`, the traditional form).
    pub(crate) bundled_first: bool,
}

/// `find` actions that run programs.
pub(crate) const FIND_EXEC_ACTIONS: &[&str] = &["-exec", "-execdir", "-ok", "-okdir"];

/// `find` actions that write or delete files.
pub(crate) const FIND_WRITE_ACTIONS: &[&str] =
    &["-delete", "-fprint", "-fprint0", "-fprintf", "-fls"];

/// Pagers, editors and other interactive programs: with no terminal they
/// hang until the timeout, and as root they are shell escapes (CVE-2023-1326
/// was `less` reachable from apport-cli).
pub(crate) const INTERACTIVE_TOOLS: &[&str] = &[
    "less",
    "more",
    "most",
    "pg",
    "pager",
    "sensible-pager",
    "man",
    "vi",
    "vim",
    "nvim",
    "view",
    "vimdiff",
    "ex",
    "ed",
    "emacs",
    "nano",
    "pico",
    "joe",
    "mcedit",
    "editor",
    "sensible-editor",
    "sensible-browser",
    "xdg-open",
    "top",
    "htop",
    "mc",
    "w3m",
    "lynx",
    "links",
];

/// Programs that change the machine whatever their arguments.
pub(crate) const STATE_CHANGING_TOOLS: &[&str] = &[
    "rm",
    "rmdir",
    "unlink",
    "mv",
    "cp",
    "dd",
    "ln",
    "link",
    "chmod",
    "chown",
    "chgrp",
    "chattr",
    "setfacl",
    "tee",
    "truncate",
    "shred",
    "install",
    "mkdir",
    "mknod",
    "mkfifo",
    "touch",
    "mkswap",
    "mkfs",
    "mke2fs",
    "swapon",
    "swapoff",
    "wipefs",
    "fdisk",
    "sfdisk",
    "cfdisk",
    "parted",
    "gdisk",
    "sgdisk",
    "kill",
    "pkill",
    "killall",
    "reboot",
    "shutdown",
    "poweroff",
    "halt",
    "telinit",
    "init",
    "useradd",
    "userdel",
    "usermod",
    "adduser",
    "deluser",
    "groupadd",
    "groupdel",
    "groupmod",
    "passwd",
    "chpasswd",
    "chage",
    "modprobe",
    "insmod",
    "rmmod",
    "depmod",
    "update-grub",
    "update-initramfs",
    "apt-get",
    "aptitude",
    "dpkg-reconfigure",
    "umount",
    "fsck",
    "e2fsck",
    "tune2fs",
    "resize2fs",
];

/// For programs that read or write depending on a verb: the verbs that only read.
pub(crate) const READ_ONLY_VERBS: &[(&str, &[&str])] = &[
    (
        "busctl",
        &[
            "list",
            "status",
            "tree",
            "introspect",
            "get-property",
            "help",
        ],
    ),
    (
        "loginctl",
        &[
            "list-sessions",
            "list-users",
            "list-seats",
            "session-status",
            "user-status",
            "seat-status",
            "show-session",
            "show-user",
            "show-seat",
            "help",
        ],
    ),
    (
        "systemctl",
        &[
            "status",
            "show",
            "cat",
            "list-units",
            "list-unit-files",
            "list-sockets",
            "list-timers",
            "list-jobs",
            "list-dependencies",
            "list-machines",
            "list-automounts",
            "list-paths",
            "is-active",
            "is-enabled",
            "is-failed",
            "is-system-running",
            "show-environment",
            "get-default",
            "help",
        ],
    ),
    (
        "apt",
        &["list", "show", "policy", "search", "depends", "rdepends"],
    ),
    (
        "apt-mark",
        &[
            "showhold",
            "showauto",
            "showmanual",
            "showinstall",
            "showremove",
            "showpurge",
        ],
    ),
    (
        "snap",
        &[
            "list",
            "info",
            "version",
            "connections",
            "services",
            "changes",
            "tasks",
            "warnings",
            "model",
            "get",
            "find",
            "interfaces",
            "aliases",
        ],
    ),
    (
        "hostnamectl",
        &[
            "status",
            "hostname",
            "icon-name",
            "chassis",
            "deployment",
            "location",
        ],
    ),
    (
        "timedatectl",
        &[
            "status",
            "show",
            "show-timesync",
            "timesync-status",
            "list-timezones",
        ],
    ),
    (
        "localectl",
        &[
            "status",
            "list-locales",
            "list-keymaps",
            "list-x11-keymap-models",
        ],
    ),
];

/// `dpkg` options that only query.
pub(crate) const DPKG_QUERY_OPTIONS: &[&str] = &[
    "-l",
    "--list",
    "-s",
    "--status",
    "-L",
    "--listfiles",
    "-S",
    "--search",
    "-p",
    "--print-avail",
    "-C",
    "--audit",
    "--print-architecture",
    "--print-foreign-architectures",
    "--get-selections",
    "-V",
    "--verify",
    "--compare-versions",
    "--version",
    "--help",
    "-c",
    "--contents",
    "-I",
    "--info",
    "-f",
    "--field",
];

/// `ip` words that change configuration.
pub(crate) const IP_WRITE_WORDS: &[&str] = &[
    "add", "del", "delete", "set", "flush", "change", "replace", "append", "prepend",
];

/// `journalctl` options that change the journal.
pub(crate) const JOURNALCTL_WRITE_OPTIONS: &[&str] = &[
    "--vacuum-size",
    "--vacuum-time",
    "--vacuum-files",
    "--rotate",
    "--flush",
    "--sync",
    "--relinquish-var",
    "--smart-relinquish-var",
    "--setup-keys",
    "--update-catalog",
];

/// `sysctl` options that write.
pub(crate) const SYSCTL_WRITE_OPTIONS: &[&str] = &["-w", "--write", "-p", "--load", "--system"];

/// Programs that print secrets: the deny-list protects files, these read
/// the same secrets through a program (`getent shadow` is `/etc/shadow`).
/// With no words the program is refused outright; otherwise when any
/// argument is one of the words (or `word=…`).
pub(crate) const SECRET_COMMANDS: &[(&str, &[&str])] = &[
    ("getent", &["shadow", "gshadow"]),
    ("debconf-get-selections", &[]),
    ("debconf-copydb", &[]),
    ("unshadow", &[]),
    ("systemd-creds", &[]),
    ("keyctl", &[]),
    ("secret-tool", &[]),
    ("tpm2_unseal", &[]),
    ("wg", &["showconf", "private-key", "preshared-keys"]),
    (
        "nmcli",
        &["-s", "--show-secrets", "-show-secrets", "show-password"],
    ),
    ("ip", &["xfrm"]),
    ("cloud-init", &["query"]),
    ("netplan", &["get"]),
    (
        "gpg",
        &[
            "--export-secret-keys",
            "--export-secret-subkeys",
            "--export-ssh-key",
        ],
    ),
];

/// Prefixes that only a secret-printing long option of these programs
/// starts with: they accept a long option by any unambiguous prefix, so
/// `nmcli --show-secr` and `gpg --export-secret-key` mean the options in
/// [`SECRET_COMMANDS`].
pub(crate) const SECRET_OPTION_STEMS: &[(&str, &[&str])] = &[
    ("nmcli", &["--sh", "-sh"]),
    ("gpg", &["--export-secret", "--export-ss"]),
];

/// Programs that read every file under a directory argument, and the
/// options that make them do so (`None`: always). `tar -c /etc` or
/// `grep -r . /etc` reads /etc/shadow although no argument names it.
pub(crate) const RECURSIVE_READERS: &[(&str, Option<Recursion>)] = &[
    ("grep", Some(GREP_RECURSION)),
    ("egrep", Some(GREP_RECURSION)),
    ("fgrep", Some(GREP_RECURSION)),
    ("zgrep", Some(GREP_RECURSION)),
    (
        "diff",
        Some(Recursion {
            letters: &['r'],
            long: &["--recursive"],
        }),
    ),
    ("rgrep", None),
    ("rg", None),
    ("ag", None),
    ("tar", None),
    ("cpio", None),
    ("zip", None),
    ("7z", None),
    ("7za", None),
    ("rsync", None),
    ("scp", None),
];

/// Options that turn on recursion: short letters (alone or in a cluster)
/// and long options (alone or as `--opt=…`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recursion {
    pub(crate) letters: &'static [char],
    pub(crate) long: &'static [&'static str],
}

const GREP_RECURSION: Recursion = Recursion {
    letters: &['r', 'R'],
    long: &[
        "--recursive",
        "--dereference-recursive",
        "--directories=recurse",
        "-d",
    ],
};

/// Arguments that only mean something to a shell.
pub(crate) const SHELL_OPERATORS: &[&str] = &[
    "|", "||", "&&", ";", ";;", "&", ">", ">>", "<", "<<", "<<<", "2>", "2>>", "2>&1", ">&2", "&>",
    "&>>", "|&", "(", ")", "{", "}",
];
