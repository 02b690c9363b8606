//! Expanding a hook's glob step without following symlinked directories.
//!
//! Like [`safe_file`](super::safe_file), every directory is entered with
//! `O_NOFOLLOW`, so a symlink planted anywhere in the tree cannot lead the walk
//! (running as root for a root step) out of the directory the hook names. Only
//! regular files match; the walk is bounded in entries scanned and matches.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::fcntl::{OFlag, open, openat};
use nix::sys::stat::{Mode, SFlag, fstat};

use super::safe_file::{FileError, check_path, file_type};

/// At most this many directory entries are looked at for one glob step.
pub const MAX_GLOB_SCAN: usize = 10_000;

/// The files a glob matched, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobMatches {
    /// Matching regular files.
    pub paths: Vec<PathBuf>,
    /// More files matched (or more entries existed) than the bounds allow.
    pub truncated: bool,
}

/// apport's `path_to_key` on a file name's bytes (lossily decoded).
pub fn path_to_key(name: &[u8]) -> String {
    crate::report::path_to_key(&String::from_utf8_lossy(name))
}

/// Whether a path component contains glob metacharacters.
pub fn has_wildcard(component: &[u8]) -> bool {
    component.iter().any(|b| matches!(b, b'*' | b'?' | b'['))
}

/// `fnmatch(3)` on one path component, byte-wise: `*`, `?`, `[a-z]`, `[!x]`, `\x`.
///
/// Linear in the name for any number of `*` (one backtracking point), so a
/// pattern cannot make the walk quadratic-per-star.
pub fn pattern_matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (pattern, name);
    let mut backtrack: Option<(&[u8], &[u8])> = None;
    loop {
        if let Some((b'*', rest)) = p.split_first() {
            p = rest;
            backtrack = Some((rest, n));
            continue;
        }
        if p.is_empty() && n.is_empty() {
            return true;
        }
        if let Some((p_rest, n_rest)) = match_one(p, n) {
            p = p_rest;
            n = n_rest;
            continue;
        }
        match backtrack {
            Some((bp, bn)) => match bn.split_first() {
                Some((_, bn_rest)) => {
                    p = bp;
                    n = bn_rest;
                    backtrack = Some((bp, bn_rest));
                }
                None => return false,
            },
            None => return false,
        }
    }
}

/// Match one non-`*` pattern token against the first byte of `name`.
fn match_one<'p, 'n>(pattern: &'p [u8], name: &'n [u8]) -> Option<(&'p [u8], &'n [u8])> {
    let (&c, n_rest) = name.split_first()?;
    let (&token, p_rest) = pattern.split_first()?;
    match token {
        b'?' => Some((p_rest, n_rest)),
        b'[' => match parse_class(p_rest) {
            Some((class, after)) => class_matches(class, c).then_some((after, n_rest)),
            // An unclosed `[` is a literal, as in fnmatch.
            None => (c == b'[').then_some((p_rest, n_rest)),
        },
        b'\\' => match p_rest.split_first() {
            Some((&lit, after)) => (lit == c).then_some((after, n_rest)),
            None => (c == b'\\').then_some((p_rest, n_rest)),
        },
        lit => (lit == c).then_some((p_rest, n_rest)),
    }
}

/// Split `[...]` (the `[` already consumed) into its body and what follows `]`.
fn parse_class(after_bracket: &[u8]) -> Option<(&[u8], &[u8])> {
    // A `]` right after `[` or `[!` is part of the set.
    let skip = match after_bracket {
        [b'!' | b'^', b']', ..] => 2,
        [b'!' | b'^', ..] | [b']', ..] => 1,
        _ => 0,
    };
    let tail = after_bracket.get(skip..)?;
    let close = tail.iter().position(|b| *b == b']')?;
    let body_len = skip.checked_add(close)?;
    let body = after_bracket.get(..body_len)?;
    let after = after_bracket.get(body_len.checked_add(1)?..)?;
    Some((body, after))
}

fn class_matches(body: &[u8], c: u8) -> bool {
    let (negated, mut set) = match body.split_first() {
        Some((b'!' | b'^', rest)) => (true, rest),
        _ => (false, body),
    };
    let mut found = false;
    while let Some((&first, rest)) = set.split_first() {
        if let [b'-', last, after @ ..] = rest {
            if (first..=*last).contains(&c) {
                found = true;
            }
            set = after;
        } else {
            if first == c {
                found = true;
            }
            set = rest;
        }
    }
    found != negated
}

/// Expand an absolute glob pattern into at most `max_matches` regular files.
///
/// Wildcards may appear in any component; `*` does not match a leading `.`
/// unless the pattern component starts with one (shell behaviour). Symlinks are
/// neither followed as directories nor returned as matches.
///
/// Depth first, one directory descriptor open per level of the pattern (and
/// one more while a directory is listed): a root step runs this inside
/// apportd, whose descriptors every job shares, and a walk that held one
/// per matched directory (`/proc/*/status` with a thousand processes) used
/// them all up. Running out of descriptors or memory fails the step; it is
/// never taken for a directory that is not there.
pub fn expand(pattern: &Path, max_matches: usize) -> Result<GlobMatches, FileError> {
    check_path(pattern)?;
    let io = |source: nix::Error| FileError::Io {
        path: pattern.to_path_buf(),
        source: source.into(),
    };
    let root = open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io)?;
    let components: Vec<&[u8]> = pattern
        .as_os_str()
        .as_bytes()
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    let mut walk = Walk {
        max_matches,
        scanned: 0,
        truncated: false,
        matches: Vec::new(),
    };
    walk.descend(Path::new("/"), &root, &components)
        .map_err(io)?;
    let mut paths = walk.matches;
    let mut truncated = walk.truncated;
    if paths.len() > max_matches {
        truncated = true;
        paths.truncate(max_matches);
    }
    Ok(GlobMatches { paths, truncated })
}

/// A walk in progress: its bounds and what it found.
struct Walk {
    max_matches: usize,
    scanned: usize,
    truncated: bool,
    matches: Vec<PathBuf>,
}

impl Walk {
    /// Whether the walk has more matches than it may return (the entries
    /// scanned are bounded by each listing's budget instead).
    fn done(&self) -> bool {
        self.matches.len() > self.max_matches
    }

    /// Matches `components` below `dir`, in path order. `Err` only for a
    /// lack of resources (see [`exhausted`]).
    fn descend(&mut self, dir_path: &Path, dir: &OwnedFd, components: &[&[u8]]) -> nix::Result<()> {
        let Some((component, rest)) = components.split_first() else {
            return Ok(());
        };
        let names: Vec<Vec<u8>> = if has_wildcard(component) {
            let listed = list_dir(dir, MAX_GLOB_SCAN.saturating_sub(self.scanned))?;
            self.scanned = self.scanned.saturating_add(listed.scanned);
            self.truncated |= listed.truncated;
            listed
                .names
                .into_iter()
                .filter(|name| {
                    (component.first() == Some(&b'.') || name.first() != Some(&b'.'))
                        && pattern_matches(component, name)
                })
                .collect()
        } else {
            vec![component.to_vec()]
        };
        let want = if rest.is_empty() {
            SFlag::S_IFREG
        } else {
            SFlag::S_IFDIR
        };
        for name in names {
            if self.done() {
                self.truncated = true;
                break;
            }
            let name = OsStr::from_bytes(&name);
            let fd = match openat(
                dir.as_fd(),
                name,
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(e) if exhausted(e) => return Err(e),
                Err(_) => continue,
            };
            let Ok(stat) = fstat(fd.as_fd()) else {
                continue;
            };
            // A symlink opened with O_PATH|O_NOFOLLOW is S_IFLNK: never matches.
            if file_type(&stat) != want {
                continue;
            }
            let path = dir_path.join(name);
            if rest.is_empty() {
                self.matches.push(path);
            } else {
                // `fd` is closed when this returns: one per level.
                self.descend(&path, &fd, rest)?;
            }
        }
        Ok(())
    }
}

/// Errors that say the process ran short of descriptors or memory, not
/// that a path is missing or forbidden: they end the walk.
fn exhausted(e: nix::Error) -> bool {
    matches!(
        e,
        nix::Error::EMFILE | nix::Error::ENFILE | nix::Error::ENOMEM
    )
}

struct Listing {
    names: Vec<Vec<u8>>,
    scanned: usize,
    truncated: bool,
}

fn list_dir(dir: &OwnedFd, budget: usize) -> nix::Result<Listing> {
    let mut listing = Listing {
        names: Vec::new(),
        scanned: 0,
        truncated: false,
    };
    let fd = match openat(
        dir.as_fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) if exhausted(e) => return Err(e),
        Err(_) => return Ok(listing),
    };
    let mut dir = match Dir::from_fd(fd) {
        Ok(dir) => dir,
        Err(e) if exhausted(e) => return Err(e),
        Err(_) => return Ok(listing),
    };
    for entry in dir.iter().flatten() {
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        if listing.scanned >= budget {
            listing.truncated = true;
            break;
        }
        listing.scanned = listing.scanned.saturating_add(1);
        listing.names.push(name.to_vec());
    }
    listing.names.sort();
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_to_key_matches_apport() {
        assert_eq!(path_to_key(b"Xorg.0.log"), "Xorg.0.log");
        assert_eq!(path_to_key(b"my file+x"), "my.file.x");
        assert_eq!(path_to_key("é~".as_bytes()), "..");
    }

    #[test]
    fn fnmatch_semantics() {
        let yes = [
            ("*.log", "Xorg.0.log"),
            ("*", "a"),
            ("a*b*c", "aXbYc"),
            ("a?c", "abc"),
            ("[a-c]x", "bx"),
            ("[!a-c]x", "dx"),
            ("[]]", "]"),
            ("\\*", "*"),
            ("*a*a*a*a*b", "aaaaaaaaaaaaab"),
        ];
        let no = [
            ("*.log", "Xorg.0.log.old"),
            ("a?c", "ac"),
            ("[a-c]x", "dx"),
            ("[!a-c]x", "ax"),
            ("\\*", "a"),
            (
                "*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac",
            ),
        ];
        for (p, n) in yes {
            assert!(pattern_matches(p.as_bytes(), n.as_bytes()), "{p} {n}");
        }
        for (p, n) in no {
            assert!(!pattern_matches(p.as_bytes(), n.as_bytes()), "{p} {n}");
        }
    }
}
