//! `debian/` installs the shipped files where the code, the other shipped
//! files and `docs/deploying.md` expect them, and nothing it installs is
//! missing from the tree or from what `debian/rules` builds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel))
        .unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn debian_files(suffix: &str) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(Path::new(ROOT).join("debian"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            let package = name.strip_suffix(suffix)?.to_owned();
            Some((package, p))
        })
        .collect();
    out.sort();
    out
}

/// The binary packages named in `debian/control`.
fn control_packages() -> BTreeSet<String> {
    read("debian/control")
        .lines()
        .filter_map(|l| l.strip_prefix("Package:"))
        .map(|p| p.trim().to_owned())
        .collect()
}

/// One line of a `debian/PACKAGE.install` file.
#[derive(Debug, Clone)]
struct Installed {
    package: String,
    /// As written: relative to the source tree, or to `debian/tmp` when the
    /// line has no destination.
    source: String,
    /// The absolute path on the installed system.
    dest: String,
    /// The line has no destination: the file comes from `debian/tmp`.
    from_tmp: bool,
}

fn installed() -> Vec<Installed> {
    let mut out = Vec::new();
    for (package, path) in debian_files(".install") {
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let dest = match fields.as_slice() {
                [source] => format!("/{source}"),
                [source, dir] => {
                    let base = Path::new(source).file_name().unwrap().to_str().unwrap();
                    format!("/{}/{base}", dir.trim_end_matches('/'))
                }
                _ => panic!("{}: unexpected line {line:?}", path.display()),
            };
            out.push(Installed {
                package: package.clone(),
                source: fields[0].to_owned(),
                dest,
                from_tmp: fields.len() == 1,
            });
        }
    }
    assert!(!out.is_empty(), "no debian/*.install files");
    out
}

/// Where `debian/*.install` puts the file that is `source` in the tree.
fn dest_of(source: &str) -> String {
    installed()
        .into_iter()
        .find(|i| i.source == source)
        .unwrap_or_else(|| panic!("{source} is not installed by any debian/*.install"))
        .dest
}

/// Which package installs a path (exactly).
fn package_of(dest: &str) -> Option<String> {
    installed()
        .into_iter()
        .find(|i| i.dest == dest)
        .map(|i| i.package)
}

/// `Key=value` lines of a unit or D-Bus service file (last one wins).
fn ini_values(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn tree_files(dir: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(Path::new(ROOT).join(dir))
        .unwrap()
        .map(|e| {
            format!(
                "{dir}/{}",
                e.unwrap().file_name().to_str().unwrap().to_owned()
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_installed_file_exists_in_the_tree_or_is_built_by_rules() {
    let rules = read("debian/rules");
    for item in installed() {
        if item.from_tmp {
            // Only debian/rules puts files into debian/tmp.
            assert!(
                rules.contains(&format!("debian/tmp/{}", item.source)),
                "{}: debian/rules does not install {} into debian/tmp",
                item.package,
                item.source
            );
            continue;
        }
        if let Some(generated) = item.source.strip_prefix("debian/generated/") {
            let file = Path::new(generated).file_name().unwrap().to_str().unwrap();
            assert!(
                rules.contains(&format!("$(GENERATED)/{generated}"))
                    || rules.contains(&format!("> $(GENERATED)/completions/{file}")),
                "{} installs {} but debian/rules never writes it",
                item.package,
                item.source
            );
            continue;
        }
        assert!(
            Path::new(ROOT).join(&item.source).is_file(),
            "{} installs {}, which is not in the tree",
            item.package,
            item.source
        );
    }
}

#[test]
fn every_built_binary_is_a_cargo_binary_and_is_installed() {
    let rules = read("debian/rules");
    let bins: BTreeSet<&str> = ["apportd", "apportd-launch", "apport-hook", "daisy"].into();
    let mut seen = BTreeSet::new();
    for line in rules
        .lines()
        .filter(|l| l.contains("$(RELEASE)/") && l.contains("debian/tmp/"))
    {
        let bin = line
            .split("$(RELEASE)/")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        assert!(bins.contains(bin), "debian/rules installs unknown {bin}");
        let dest = line.split("debian/tmp/").nth(1).unwrap().trim();
        assert!(
            package_of(&format!("/{dest}")).is_some(),
            "{dest} is built but no package installs it"
        );
        seen.insert(bin);
    }
    assert_eq!(seen, bins, "every binary of the workspace is packaged");
    // The cargo targets exist under those names.
    let manifests = read("Cargo.toml") + &read("server/Cargo.toml");
    for bin in bins {
        assert!(
            manifests.contains(&format!("name = \"{bin}\"")),
            "no [[bin]] {bin}"
        );
    }
}

#[test]
fn packages_in_control_match_the_packaging_files() {
    let control = read("debian/control");
    assert!(control.contains("debhelper-compat (= 13)"), "{control}");
    let packages = control_packages();
    assert_eq!(
        packages,
        ["apport-hook", "apportd", "daisy"]
            .map(str::to_owned)
            .into(),
    );
    for suffix in [
        ".install",
        ".dirs",
        ".docs",
        ".postinst",
        ".postrm",
        ".manpages",
        ".examples",
        ".lintian-overrides",
    ] {
        for (package, path) in debian_files(suffix) {
            assert!(
                packages.contains(&package),
                "{} belongs to no package in debian/control",
                path.display()
            );
        }
    }
    assert_eq!(read("debian/source/format").trim(), "3.0 (native)");
    let copyright = read("debian/copyright");
    assert!(
        copyright.starts_with(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
        )
    );
}

#[test]
fn changelog_version_is_the_workspace_version() {
    let changelog = read("debian/changelog");
    let first = changelog.lines().next().unwrap();
    let version = first
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(v, _)| v)
        .unwrap();
    let cargo: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let workspace_version = cargo["workspace"]["package"]["version"].as_str().unwrap();
    assert_eq!(version, workspace_version, "{first}");
    assert!(first.starts_with("apport-hooks ("), "{first}");
}

#[test]
fn activation_file_execs_where_debian_installs_apportd() {
    let apportd = dest_of("usr/libexec/apportd");
    let text = read("dbus/com.ubuntu.apport.service");
    let values = ini_values(&text);
    assert_eq!(values["Exec"], apportd);
    // apportd runs steps through the small launcher when it sits next to it.
    assert_eq!(
        dest_of("usr/libexec/apportd-launch"),
        apportd.replace("/apportd", "/apportd-launch")
    );
    assert_eq!(values["User"], "root");
    // The system bus finds an activatable service only by its file name.
    let dest = dest_of("dbus/com.ubuntu.apport.service");
    assert_eq!(
        dest,
        format!(
            "/usr/share/dbus-1/system-services/{}.service",
            values["Name"]
        )
    );
    // The unit it hands activation to is installed, and starts the same binary.
    let unit = &values["SystemdService"];
    assert_eq!(
        dest_of(&format!("systemd/{unit}")),
        format!("/lib/systemd/system/{unit}")
    );
    let unit_values = ini_values(&read(&format!("systemd/{unit}")));
    assert_eq!(unit_values["ExecStart"], apportd);
    assert_eq!(unit_values["BusName"], values["Name"]);
}

#[test]
fn every_unit_starts_an_installed_binary() {
    for unit in tree_files("systemd") {
        let dest = dest_of(&unit);
        let name = Path::new(&unit).file_name().unwrap().to_str().unwrap();
        assert_eq!(dest, format!("/lib/systemd/system/{name}"), "{unit}");
        let values = ini_values(&read(&unit));
        if let Some(exec) = values.get("ExecStart") {
            let program = exec.split_whitespace().next().unwrap();
            assert!(
                package_of(program).is_some(),
                "{unit} starts {program}, which no package installs"
            );
        }
        // A Documentation=file: link must name a file the package installs.
        if let Some(doc) = values.get("Documentation") {
            for link in doc.split_whitespace() {
                let Some(path) = link
                    .strip_prefix("file://")
                    .or_else(|| link.strip_prefix("file:"))
                else {
                    continue;
                };
                let (package, file) = path
                    .strip_prefix("/usr/share/doc/")
                    .and_then(|p| p.split_once('/'))
                    .unwrap_or_else(|| panic!("{unit}: {link} is not under /usr/share/doc"));
                // dh_compress would turn FILE.md into FILE.md.gz and break the link.
                assert!(
                    read("debian/rules").contains("dh_compress -X.md"),
                    "{unit}: {link} would be compressed away by dh_compress"
                );
                let docs = read(&format!("debian/{package}.docs"));
                assert!(
                    docs.lines().any(|l| l.trim() == format!("docs/{file}")),
                    "{unit}: {link}, but debian/{package}.docs does not install docs/{file}"
                );
            }
        }
    }
}

#[test]
fn bus_policy_and_polkit_files_go_where_the_daemons_read_them() {
    for file in tree_files("dbus") {
        let dest = dest_of(&file);
        let expected_dir = if file.ends_with(".conf") {
            "/usr/share/dbus-1/system.d/"
        } else if file.ends_with(".service") {
            "/usr/share/dbus-1/system-services/"
        } else if file.ends_with(".xml") {
            "/usr/share/dbus-1/interfaces/"
        } else {
            panic!("unexpected file {file}")
        };
        assert!(dest.starts_with(expected_dir), "{file} → {dest}");
        assert_eq!(package_of(&dest).as_deref(), Some("apportd"));
    }
    for file in tree_files("polkit") {
        let dest = dest_of(&file);
        let expected_dir = if file.ends_with(".policy") {
            "/usr/share/polkit-1/actions/"
        } else if file.ends_with(".rules") {
            "/usr/share/polkit-1/rules.d/"
        } else {
            panic!("unexpected file {file}")
        };
        assert!(dest.starts_with(expected_dir), "{file} → {dest}");
        assert_eq!(package_of(&dest).as_deref(), Some("apportd"));
    }
    // The bus policy lets only root own the name the activation file starts.
    let policy = read("dbus/com.ubuntu.apport.conf");
    let name = ini_values(&read("dbus/com.ubuntu.apport.service"))["Name"].clone();
    assert!(policy.contains(&format!("<allow own=\"{name}\"/>")));
}

#[test]
fn key_directories_and_spool_are_the_ones_the_code_reads() {
    use apport_hooks::agent::config::DEFAULT_SPOOL_DIR;
    use apport_hooks::bundle::{DEFAULT_KEY_DIR, LOCAL_KEY_DIR};
    let dirs = read("debian/apportd.dirs");
    for dir in [DEFAULT_KEY_DIR, LOCAL_KEY_DIR] {
        let rel = dir.trim_matches('/');
        assert!(
            dirs.lines().any(|l| l.trim() == rel),
            "debian/apportd.dirs lacks {rel}"
        );
    }
    let spool = DEFAULT_SPOOL_DIR.trim_start_matches('/');
    assert!(
        read("debian/apport-hook.dirs")
            .lines()
            .any(|l| l.trim() == spool)
    );
    // The spool belongs to the user the watcher runs as.
    let postinst = read("debian/apport-hook.postinst");
    assert!(postinst.contains(&format!("SPOOL={DEFAULT_SPOOL_DIR}")));
    assert!(postinst.contains("chown whoopsie:whoopsie \"$SPOOL\""));
    assert!(postinst.contains("chmod 0700 \"$SPOOL\""));
    for unit in tree_files("systemd")
        .into_iter()
        .filter(|u| u.contains("apport-hook"))
    {
        let values = ini_values(&read(&unit));
        if let Some(user) = values.get("User") {
            assert_eq!(user, "whoopsie", "{unit}");
            assert_eq!(package_of(&dest_of(&unit)).as_deref(), Some("apport-hook"));
        }
    }
}

#[test]
fn daisy_runs_as_the_user_postinst_creates_with_the_shipped_config() {
    let dropin = ini_values(&read("debian/daisy.service.d/debian.conf"));
    assert_eq!(dropin["DynamicUser"], "no");
    assert_eq!(dropin["User"], "daisy");
    let postinst = read("debian/daisy.postinst");
    assert!(
        postinst
            .contains("adduser --quiet --system --group --no-create-home --home \"$STATE\" daisy")
    );
    assert_eq!(
        dest_of("debian/daisy.service.d/debian.conf"),
        "/lib/systemd/system/daisy.service.d/debian.conf"
    );

    // The shipped /etc/daisy/daisy.toml is read by daisy's real parser and
    // names the directory the unit serves from, so `daisy admin` needs no flag.
    assert_eq!(
        dest_of("debian/daisy.toml"),
        daisy::config::DEFAULT_CONFIG_PATH
    );
    let config = daisy::config::Config::from_toml(
        &read("debian/daisy.toml"),
        &daisy::config::CommonArgs::default(),
        None,
    )
    .unwrap();
    assert_eq!(config.data_dir, Path::new("/var/lib/daisy"));
    assert!(postinst.contains("STATE=/var/lib/daisy"));
    let exec = ini_values(&read("systemd/daisy.service"))["ExecStart"].clone();
    assert!(
        exec.contains("--data-dir /var/lib/daisy"),
        "daisy.service serves another directory: {exec}"
    );
}

#[test]
fn maintainer_scripts_pass_sh_n() {
    let mut checked = 0;
    for suffix in [".postinst", ".postrm", ".preinst", ".prerm"] {
        for (_, path) in debian_files(suffix) {
            let out = std::process::Command::new("sh")
                .arg("-n")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.starts_with("#!/bin/sh\n"), "{}", path.display());
            assert!(text.contains("\nset -e\n"), "{}", path.display());
            assert!(text.contains("\n#DEBHELPER#\n"), "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 3, "expected maintainer scripts, found {checked}");
}

#[test]
fn rules_is_executable_and_builds_locked() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(Path::new(ROOT).join("debian/rules"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "debian/rules must be executable");
    let rules = read("debian/rules");
    assert!(rules.starts_with("#!/usr/bin/make -f\n"));
    assert!(rules.contains("CARGO_FLAGS := --release --locked"));
    // Man pages and completions come from the binaries' own generators.
    assert!(rules.contains("$(RELEASE)/apport-hook man $(GENERATED)/man/apport-hook"));
    assert!(rules.contains("$(RELEASE)/daisy man $(GENERATED)/man/daisy"));
    assert!(rules.contains("$(RELEASE)/apportd --internal-man $(GENERATED)/man/apportd"));
    for bin in ["apport-hook", "daisy"] {
        for shell in ["bash", "zsh", "fish"] {
            assert!(
                rules.contains(&format!("$(RELEASE)/{bin} completions {shell} >")),
                "{bin} {shell}"
            );
        }
    }
}

/// The `$(RELEASE)/BIN … $(GENERATED)/man/DIR` lines of debian/rules, as
/// (binary, arguments before the directory, directory under debian/generated/man).
fn man_generators() -> Vec<(String, Vec<String>, String)> {
    read("debian/rules")
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let (last, middle) = words.split_last()?;
            let bin = words.first()?.strip_prefix("$(RELEASE)/")?;
            let dir = last.strip_prefix("$(GENERATED)/man/")?;
            let args = middle[1..].iter().map(|w| (*w).to_owned()).collect();
            Some((bin.to_owned(), args, dir.to_owned()))
        })
        .collect()
}

/// `debian/generated/man/DIR/PREFIX*SUFFIX` lines of a `.manpages` file.
fn manpage_globs(path: &Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let rest = l
                .strip_prefix("debian/generated/man/")
                .unwrap_or_else(|| panic!("{}: {l} is not a generated page", path.display()));
            let (dir, file) = rest.split_once('/').unwrap();
            let (prefix, suffix) = file.split_once('*').unwrap_or((file, ""));
            (dir.to_owned(), prefix.to_owned(), suffix.to_owned())
        })
        .collect()
}

#[test]
fn every_package_ships_the_man_pages_its_own_binary_generates() {
    let generators = man_generators();
    let mut packages = BTreeSet::new();
    for (package, path) in debian_files(".manpages") {
        for (dir, _, _) in manpage_globs(&path) {
            let (bin, _, _) = generators
                .iter()
                .find(|(_, _, d)| *d == dir)
                .unwrap_or_else(|| panic!("debian/rules writes no man pages into {dir}"));
            let installed_by = installed()
                .into_iter()
                .find(|i| i.from_tmp && Path::new(&i.source).file_name().unwrap() == bin.as_str())
                .map(|i| i.package);
            assert_eq!(
                installed_by.as_deref(),
                Some(package.as_str()),
                "{} ships the pages {bin} writes",
                path.display()
            );
        }
        packages.insert(package);
    }
    // Every package has a binary, so every package has its man pages.
    assert_eq!(packages, control_packages());
    assert_eq!(generators.len(), packages.len(), "{generators:?}");
}

/// Runs the man-page lines of debian/rules with the binaries of this crate
/// (daisy's are run the same way in server/tests/cli_docs.rs): each
/// package's `.manpages` glob matches non-empty roff pages, and nothing else.
#[test]
fn man_page_globs_match_the_pages_the_rules_write() {
    let generated = tempfile::tempdir().unwrap();
    let binaries = [
        ("apport-hook", env!("CARGO_BIN_EXE_apport-hook")),
        ("apportd", env!("CARGO_BIN_EXE_apportd")),
    ];
    let generators = man_generators();
    for (name, exe) in binaries {
        let (_, args, dir) = generators
            .iter()
            .find(|(b, _, _)| b == name)
            .unwrap_or_else(|| panic!("debian/rules generates no man page with {name}"));
        let out = std::process::Command::new(exe)
            .args(args)
            .arg(generated.path().join(dir))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (_, path) = debian_files(".manpages")
            .into_iter()
            .find(|(p, _)| p == name)
            .unwrap_or_else(|| panic!("no debian/{name}.manpages"));
        for (glob_dir, prefix, suffix) in manpage_globs(&path) {
            assert_eq!(&glob_dir, dir, "{}", path.display());
            let pages: Vec<PathBuf> = std::fs::read_dir(generated.path().join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert!(!pages.is_empty(), "{name} wrote no page");
            for page in pages {
                let file = page.file_name().unwrap().to_str().unwrap();
                assert!(
                    file.starts_with(&prefix) && file.ends_with(&suffix),
                    "debian/{name}.manpages misses {file}"
                );
                let text = std::fs::read_to_string(&page).unwrap();
                assert!(text.contains(".TH"), "{file} is not roff");
                // dh_installman takes the section from the extension and the .TH line.
                let section = file.rsplit('.').next().unwrap();
                assert!(
                    text.lines()
                        .any(|l| l.starts_with(".TH")
                            && l.split_whitespace().nth(2) == Some(section)),
                    "{file}: .TH section is not {section}"
                );
            }
        }
    }
}

#[test]
fn deploying_doc_names_every_installed_path() {
    let doc = read("docs/deploying.md");
    for item in installed() {
        assert!(
            doc.contains(&format!("`{}`", item.dest)),
            "docs/deploying.md does not name {} (package {})",
            item.dest,
            item.package
        );
    }
    for dirs in debian_files(".dirs") {
        for line in std::fs::read_to_string(&dirs.1).unwrap().lines() {
            let path = format!("/{}", line.trim());
            assert!(
                doc.contains(&format!("`{path}")),
                "docs/deploying.md does not name {path}"
            );
        }
    }
}

#[test]
fn every_unit_is_handed_to_dh_installsystemd_by_its_package() {
    let rules = read("debian/rules");
    for unit in tree_files("systemd") {
        let name = Path::new(&unit).file_name().unwrap().to_str().unwrap();
        let package = package_of(&dest_of(&unit)).unwrap();
        let line = rules
            .lines()
            .find(|l| {
                l.trim_start().starts_with("dh_installsystemd")
                    && l.split_whitespace().any(|w| w == name)
            })
            .unwrap_or_else(|| panic!("debian/rules never passes {name} to dh_installsystemd"));
        assert!(
            line.split_whitespace().any(|w| w == format!("-p{package}")),
            "{name} is installed by {package} but handled as: {line}"
        );
        // daisy must not start before its operator configured it.
        if name == "daisy.service" {
            assert!(line.contains("--no-enable") && line.contains("--no-start"));
        }
        // A path unit triggers a unit of its own package.
        if let Some(target) = ini_values(&read(&unit)).get("Unit") {
            assert_eq!(
                package_of(&format!("/lib/systemd/system/{target}")).as_deref(),
                Some(package.as_str()),
                "{name} triggers {target}"
            );
        }
    }
}

#[test]
fn watcher_state_is_where_the_agent_keeps_it_and_purge_removes_it() {
    use apport_hooks::agent::config::DEFAULT_SPOOL_DIR;
    use apport_hooks::agent::state_dir::DEFAULT_STATE_DIR;
    let service = ini_values(&read("systemd/apport-hook.service"));
    assert_eq!(
        format!("/var/lib/{}", service["StateDirectory"]),
        DEFAULT_STATE_DIR
    );
    let postrm = read("debian/apport-hook.postrm");
    let purge = postrm
        .lines()
        .find(|l| l.trim_start().starts_with("rm -rf"))
        .unwrap();
    for dir in [DEFAULT_SPOOL_DIR, DEFAULT_STATE_DIR] {
        assert!(
            purge.split_whitespace().any(|w| w == dir),
            "purge does not remove {dir}"
        );
    }
}
