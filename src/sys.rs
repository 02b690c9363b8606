//! The crate's only `unsafe` code: system calls with no safe wrapper in the
//! dependencies the core may use (nix is client-only, and daisy links the core
//! without it). Keep every such call here, each with its `// SAFETY:` comment.
#![allow(unsafe_code)]

/// The effective uid of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, touches no memory of ours and
    // always succeeds.
    unsafe { libc::geteuid() }
}
