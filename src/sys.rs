//! The crate's only `unsafe` code: system calls with no safe wrapper in the
//! dependencies the core may use (the core's nix is behind the client
//! features; daisy links the core without them, and uses nix itself only
//! for its open-file limit). Keep every such call here, each with its
//! `// SAFETY:` comment.
#![allow(unsafe_code)]

/// The effective uid of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, touches no memory of ours and
    // always succeeds.
    unsafe { libc::geteuid() }
}

/// A descriptor pinning one process (`pidfd_open(2)`), so a later signal
/// cannot reach another process that reused its pid.
///
/// `Ok(None)` when the kernel has no pidfds (before 5.3): callers fall back
/// to a plain `kill(2)`.
pub fn pidfd_open(pid: i32) -> std::io::Result<Option<std::os::fd::OwnedFd>> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open(2) takes a pid and a flags word by value and touches
    // no memory of ours; it returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let error = std::io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::ENOSYS) => Ok(None),
            _ => Err(error),
        };
    }
    let fd = i32::try_from(fd).map_err(|_| std::io::Error::other("pidfd out of range"))?;
    // SAFETY: the kernel just returned `fd` as a new descriptor that nothing
    // else owns; OwnedFd takes sole ownership and closes it once.
    Ok(Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
}

/// Send `signal` to the process `pidfd` pins (`pidfd_send_signal(2)`).
pub fn pidfd_send_signal(pidfd: std::os::fd::BorrowedFd<'_>, signal: i32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd_send_signal(2) with a null siginfo pointer (the kernel
    // fills in a kill(2)-like one) and flags 0; the descriptor is borrowed
    // and stays open for the call; no memory of ours is read or written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
