//! The agent's settings read from real files, the way whoopsie reads its own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::path::Path;

use apport_hooks::agent::config::{
    ConfigError, DEFAULT_SERVER_URL, DEFAULT_SPOOL_DIR, DEFAULT_SPOOL_MAX_BYTES, Environment,
    IdOrigin, OptOut, Origin, Paths, Settings, system_id,
};

/// `printf %s 4C4C4544-0042-3510-8052-B4C04F384E32 | sha512sum`
const DMI_UUID: &str = "4C4C4544-0042-3510-8052-B4C04F384E32";
const DMI_UUID_SHA512: &str = "da53ca2e2b9f6c2f03186aa7aba8e991778bb266893f322dcf2bc3483ac8563a80967c6b78dcf7b68a459715c76af6c288808d8614033a007e51fd80302a2bc6";
/// `printf %s 0123456789abcdef0123456789abcdef | sha512sum`
const MACHINE_ID: &str = "0123456789abcdef0123456789abcdef";
const MACHINE_ID_SHA512: &str = "0372a8619ebcbbcd91abcda1ba389ac36e72962887b3019de3372a561fd962da7e9cfa0c3069c46ca5dc2ad88e607e70bb7a87996ab96fea7aa27e5288952055";

fn paths_in(dir: &Path) -> Paths {
    Paths {
        config_file: dir.join("hooks.conf"),
        whoopsie_defaults: dir.join("whoopsie"),
        whoopsie_id: dir.join("whoopsie-id"),
        dmi_product_uuid: dir.join("product_uuid"),
        machine_id: dir.join("machine-id"),
    }
}

#[test]
fn no_files_give_the_documented_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let s = Settings::load(&paths_in(dir.path()), &Environment::default()).unwrap();
    assert_eq!(s.server_url, DEFAULT_SERVER_URL);
    assert_eq!(s.server_url_origin, Origin::Default);
    assert!(s.hooks_enabled());
    assert_eq!(s.spool_dir, Path::new(DEFAULT_SPOOL_DIR));
    assert_eq!(s.spool_max_bytes, DEFAULT_SPOOL_MAX_BYTES);
    assert_eq!(s.ca_file, None);
}

#[test]
fn crash_db_url_wins_over_hooks_conf_which_wins_over_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    std::fs::write(
        &paths.config_file,
        "server_url = \"https://errors.example.org/\"\nca_file = \"/etc/ssl/pinned.pem\"\n\
         spool_dir = \"/tmp/spool\"\nspool_max_bytes = 1000\ntimeout_secs = 5\n",
    )
    .unwrap();
    let s = Settings::load(&paths, &Environment::default()).unwrap();
    assert_eq!(s.server_url, "https://errors.example.org");
    assert_eq!(s.server_url_origin, Origin::ConfigFile);
    assert_eq!(s.ca_file.as_deref(), Some(Path::new("/etc/ssl/pinned.pem")));
    assert_eq!(s.spool_dir, Path::new("/tmp/spool"));
    assert_eq!(s.spool_max_bytes, 1000);
    assert_eq!(s.timeout.as_secs(), 5);
    assert_eq!(
        s.connect_timeout.as_secs(),
        5,
        "connect timeout never exceeds the whole"
    );

    let env = Environment {
        crash_db_url: Some("http://127.0.0.1:5000".into()),
        crash_db_identifier: None,
    };
    let s = Settings::load(&paths, &env).unwrap();
    assert_eq!(s.server_url, "http://127.0.0.1:5000");
    assert_eq!(s.server_url_origin, Origin::Environment);
}

#[test]
fn a_bad_crash_db_url_is_an_error_not_a_silent_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let env = Environment {
        crash_db_url: Some("ftp://daisy".into()),
        crash_db_identifier: None,
    };
    let err = Settings::load(&paths_in(dir.path()), &env).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::BadServerUrl {
                source_name: "CRASH_DB_URL",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn report_crashes_false_in_etc_default_whoopsie_stops_hooks() {
    for text in [
        "report_crashes=false\n",
        "[General]\nreport_crashes=false\n",
        "# set by the installer\nreport_crashes=\"FALSE\"\n",
        "report_crashes=true\nexport report_crashes='false'\n",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_in(dir.path());
        std::fs::write(&paths.whoopsie_defaults, text).unwrap();
        let s = Settings::load(&paths, &Environment::default()).unwrap();
        assert!(!s.hooks_enabled(), "{text:?}");
        assert!(
            matches!(s.opt_out, Some(OptOut::WhoopsieReportCrashes { .. })),
            "{text:?}"
        );
    }
    for text in [
        "report_crashes=true\n",
        "[General]\nreport_crashes=true\n",
        "",
        "report_crashes=false # no\n",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_in(dir.path());
        std::fs::write(&paths.whoopsie_defaults, text).unwrap();
        let s = Settings::load(&paths, &Environment::default()).unwrap();
        // `false # no` is not `false`: only an exact value opts out, as in whoopsie-preferences.
        assert!(s.hooks_enabled(), "{text:?}");
    }
}

#[test]
fn enabled_false_in_hooks_conf_stops_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    std::fs::write(&paths.config_file, "enabled = false\n").unwrap();
    let s = Settings::load(&paths, &Environment::default()).unwrap();
    assert!(matches!(s.opt_out, Some(OptOut::HooksDisabled { .. })));
}

#[test]
fn a_typo_in_hooks_conf_is_refused_rather_than_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    std::fs::write(&paths.config_file, "enable = false\n").unwrap();
    let err = Settings::load(&paths, &Environment::default()).unwrap_err();
    assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("enable"), "{err}");

    std::fs::write(&paths.config_file, "timeout_secs = 0\n").unwrap();
    assert!(Settings::load(&paths, &Environment::default()).is_err());
    std::fs::write(&paths.config_file, "server_url = [\n").unwrap();
    assert!(Settings::load(&paths, &Environment::default()).is_err());
}

#[test]
fn system_id_prefers_crash_db_identifier_then_whoopsie_id() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    std::fs::write(&paths.whoopsie_id, format!("{}\n", "ab".repeat(64))).unwrap();
    std::fs::write(&paths.dmi_product_uuid, format!("{DMI_UUID}\n")).unwrap();
    let env = Environment {
        crash_db_url: None,
        crash_db_identifier: Some("i_am_a_machine".into()),
    };
    let (id, origin) = system_id(&paths, &env).unwrap();
    assert_eq!(
        (id.as_str(), origin),
        ("i_am_a_machine", IdOrigin::Environment)
    );
    let (id, origin) = system_id(&paths, &Environment::default()).unwrap();
    assert_eq!(
        (id.as_str(), origin),
        ("ab".repeat(64).as_str(), IdOrigin::WhoopsieIdFile)
    );
}

#[test]
fn system_id_is_the_sha512_of_the_dmi_uuid_like_whoopsie() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    std::fs::write(&paths.dmi_product_uuid, format!("{DMI_UUID}\n")).unwrap();
    std::fs::write(&paths.machine_id, format!("{MACHINE_ID}\n")).unwrap();
    let (id, origin) = system_id(&paths, &Environment::default()).unwrap();
    assert_eq!(
        (id.as_str(), origin),
        (DMI_UUID_SHA512, IdOrigin::DmiProductUuid)
    );
}

#[test]
fn without_dmi_the_system_id_comes_from_machine_id() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    // A DMI UUID of the wrong length is not used (whoopsie reads exactly 36 bytes).
    std::fs::write(&paths.dmi_product_uuid, "short\n").unwrap();
    std::fs::write(&paths.machine_id, format!("{MACHINE_ID}\n")).unwrap();
    let (id, origin) = system_id(&paths, &Environment::default()).unwrap();
    assert_eq!(
        (id.as_str(), origin),
        (MACHINE_ID_SHA512, IdOrigin::MachineId)
    );
}

#[test]
fn a_corrupt_whoopsie_id_file_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    std::fs::write(&paths.whoopsie_id, "../../etc/passwd\n").unwrap();
    std::fs::write(&paths.machine_id, MACHINE_ID).unwrap();
    let (id, _) = system_id(&paths, &Environment::default()).unwrap();
    assert_eq!(id.as_str(), MACHINE_ID_SHA512);
}

#[test]
fn hostile_or_missing_system_ids_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    let env = Environment {
        crash_db_url: None,
        crash_db_identifier: Some("../submit-core/x".into()),
    };
    assert!(matches!(
        system_id(&paths, &env),
        Err(ConfigError::BadIdentifier(_))
    ));
    let err = system_id(&paths, &Environment::default()).unwrap_err();
    assert!(matches!(err, ConfigError::NoSystemId { .. }));
    assert!(err.to_string().contains("CRASH_DB_IDENTIFIER"), "{err}");
}
