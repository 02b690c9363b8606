//! apportd-launch: apportd's per-step launcher and privilege-dropping helper
//! as a small executable of its own.
//!
//! apportd starts one of these for every step process; executing the whole
//! apportd binary (D-Bus, polkit, runtime) only to run `supervise_main` or
//! `drop_privileges_main` costs milliseconds per step. apportd uses this
//! file when it is installed next to it, and falls back to re-executing
//! itself (which understands the same arguments) when it is not.

use std::ffi::OsString;
use std::process::ExitCode;

use apport_hooks::apportd::principal::{DROP_PRIVILEGES_ARG, drop_privileges_main, exit};
use apport_hooks::apportd::subreaper::{SUPERVISE_ARG, supervise_main};

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let rest = argv.get(2..).unwrap_or_default();
    match argv.get(1) {
        Some(arg) if arg == SUPERVISE_ARG => supervise_main(rest),
        Some(arg) if arg == DROP_PRIVILEGES_ARG => drop_privileges_main(rest),
        _ => {
            eprintln!("apportd-launch is started by apportd only");
            ExitCode::from(exit::USAGE)
        }
    }
}
