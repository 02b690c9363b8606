//! apportd: the privileged com.ubuntu.apport D-Bus service.

use std::ffi::OsString;
use std::process::ExitCode;

use apport_hooks::apportd::principal::{DROP_PRIVILEGES_ARG, drop_privileges_main};

fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().collect();
    // The privilege-dropping helper must decide before any thread or runtime exists.
    if args.get(1).is_some_and(|a| a == DROP_PRIVILEGES_ARG) {
        return Ok(drop_privileges_main(args.get(2..).unwrap_or_default()));
    }
    anyhow::bail!("the apportd D-Bus service is not built yet (only the step executor is)")
}
