//! Man pages and shell completion scripts generated from a binary's clap
//! definitions, so that what debian/rules installs never drifts from the real
//! options. Shared by `daisy` (`completions`, `man`), `apport-hook`
//! (`completions`, `man`) and `apportd` (`--internal-man`); each binary keeps
//! its own argument structs and only calls [`print_completions`] and
//! [`write_man_pages`].

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why a completion script or a man page could not be written. The messages
/// name the file or stream, and the source is the I/O error, so a broken pipe
/// stays recognizable through an `anyhow` chain.
#[derive(Debug, thiserror::Error)]
pub enum CliDocsError {
    /// Stdout refused the completion script (a closed pipe, a full disk).
    #[error("cannot write the completion script to stdout")]
    CompletionsToStdout(#[source] io::Error),
    /// The output directory could not be created: check the path and its permissions.
    #[error("cannot create {}", dir.display())]
    CreateDir {
        /// The directory given on the command line.
        dir: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
    /// clap_mangen failed to render a page (it writes into memory, so this is
    /// not expected; kept so a future renderer error is not a panic).
    #[error("cannot render the man page of {name}")]
    Render {
        /// The page's name, e.g. `daisy-admin-hook`.
        name: String,
        /// The renderer's error.
        #[source]
        source: io::Error,
    },
    /// A page could not be written into the output directory.
    #[error("cannot write {}", path.display())]
    WritePage {
        /// The page's path.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
    /// The path of a written page could not be printed (stdout closed): the
    /// page itself is on disk.
    #[error("cannot print {} on stdout", path.display())]
    PrintPath {
        /// The page that was written.
        path: PathBuf,
        /// What stdout said.
        #[source]
        source: io::Error,
    },
}

/// Prints the completion script of `command` for `shell` on stdout, for the
/// binary named `bin_name`.
///
/// The script is generated into a buffer first: clap_complete panics when its
/// writer fails, and `daisy completions bash | head` (a closed pipe) must be
/// an error, not a panic.
pub fn print_completions(
    shell: clap_complete::Shell,
    mut command: clap::Command,
    bin_name: &str,
) -> Result<(), CliDocsError> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, bin_name, &mut script);
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(&script)
        .and_then(|()| stdout.flush())
        .map_err(CliDocsError::CompletionsToStdout)
}

/// Creates `outdir` and writes the man page of `command` into
/// `outdir/NAME.SECTION`, then one page per visible subcommand, nested ones
/// included, as `NAME-SUB[-SUB…].SECTION` (`daisy admin hook activate` is an
/// operator's real entry point, so it gets a page too). Hidden subcommands
/// and `help` get none. Each page's `.TH` title is its file name without the
/// section; the path of each page is printed on stdout once it is written.
pub fn write_man_pages(
    command: clap::Command,
    name: &str,
    section: &str,
    outdir: &Path,
) -> Result<(), CliDocsError> {
    write_man_pages_listed(command, name, section, outdir, &mut io::stdout().lock())
}

/// [`write_man_pages`] with the written paths listed on `listing`.
fn write_man_pages_listed(
    mut command: clap::Command,
    name: &str,
    section: &str,
    outdir: &Path,
    listing: &mut dyn Write,
) -> Result<(), CliDocsError> {
    std::fs::create_dir_all(outdir).map_err(|source| CliDocsError::CreateDir {
        dir: outdir.to_owned(),
        source,
    })?;
    // Built once here so that every subcommand knows its full name
    // (`daisy admin hook`) for its page's synopsis.
    command.build();
    ManPages {
        section,
        outdir,
        listing,
    }
    .write_tree(&command, name)
}

/// Where and how the pages of one binary go.
struct ManPages<'a> {
    section: &'a str,
    outdir: &'a Path,
    listing: &'a mut dyn Write,
}

impl ManPages<'_> {
    fn write_tree(&mut self, command: &clap::Command, name: &str) -> Result<(), CliDocsError> {
        self.write_page(command, name)?;
        for sub in command
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            self.write_tree(sub, &format!("{name}-{}", sub.get_name()))?;
        }
        Ok(())
    }

    fn write_page(&mut self, command: &clap::Command, name: &str) -> Result<(), CliDocsError> {
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone())
            .title(name.to_owned())
            .section(self.section.to_owned())
            .render(&mut page)
            .map_err(|source| CliDocsError::Render {
                name: name.to_owned(),
                source,
            })?;
        let path = self.outdir.join(format!("{name}.{}", self.section));
        if let Err(source) = std::fs::write(&path, page) {
            return Err(CliDocsError::WritePage { path, source });
        }
        match writeln!(self.listing, "{}", path.display()) {
            Ok(()) => Ok(()),
            Err(source) => Err(CliDocsError::PrintPath { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    /// A command shaped like daisy's: a nested subcommand, a hidden one, help.
    fn tool() -> clap::Command {
        clap::Command::new("tool")
            .version("1.2")
            .about("A tool.")
            .subcommand(
                clap::Command::new("admin").about("Administer.").subcommand(
                    clap::Command::new("add")
                        .about("Add.")
                        .arg(clap::Arg::new("team").long("team").help("The team.")),
                ),
            )
            .subcommand(clap::Command::new("man").hide(true))
    }

    fn listed(outdir: &Path, section: &str) -> (Vec<String>, Vec<String>) {
        let mut listing = Vec::new();
        write_man_pages_listed(tool(), "tool", section, outdir, &mut listing).unwrap();
        let listing = String::from_utf8(listing)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let mut files: Vec<String> = std::fs::read_dir(outdir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        (listing, files)
    }

    #[test]
    fn every_visible_subcommand_gets_a_page_and_a_listed_path() {
        let dir = tempfile::tempdir().unwrap();
        let outdir = dir.path().join("new/man");
        let (listing, files) = listed(&outdir, "1");
        assert_eq!(files, ["tool-admin-add.1", "tool-admin.1", "tool.1"]);
        let expected: Vec<String> = ["tool.1", "tool-admin.1", "tool-admin-add.1"]
            .iter()
            .map(|f| outdir.join(f).display().to_string())
            .collect();
        assert_eq!(listing, expected, "parents first, in definition order");
        let add = std::fs::read_to_string(outdir.join("tool-admin-add.1")).unwrap();
        assert!(add.contains("\n.TH tool-admin-add 1 "), "{add}");
        assert!(add.contains("\\-\\-team"), "{add}");
        assert!(
            add.contains("tool admin add"),
            "full name in the synopsis: {add}"
        );
    }

    #[test]
    fn the_section_names_the_file_and_the_title_line() {
        let dir = tempfile::tempdir().unwrap();
        let (_, files) = listed(dir.path(), "8");
        assert!(files.contains(&"tool.8".to_owned()), "{files:?}");
        let top = std::fs::read_to_string(dir.path().join("tool.8")).unwrap();
        assert!(top.contains("\n.TH tool 8 "), "{top}");
    }

    #[test]
    fn an_unwritable_page_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tool-admin.1")).unwrap();
        let mut listing = Vec::new();
        let err = write_man_pages_listed(tool(), "tool", "1", dir.path(), &mut listing)
            .expect_err("a directory where a page goes");
        let path = dir.path().join("tool-admin.1");
        assert!(matches!(&err, CliDocsError::WritePage { path: p, .. } if *p == path));
        assert_eq!(err.to_string(), format!("cannot write {}", path.display()));
        // The page before it was written and listed.
        assert_eq!(
            String::from_utf8(listing).unwrap(),
            format!("{}\n", dir.path().join("tool.1").display())
        );
    }

    #[test]
    fn a_closed_listing_is_an_error_with_the_io_source() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let err = write_man_pages_listed(tool(), "tool", "1", dir.path(), &mut Closed)
            .expect_err("the listing fails");
        let source = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<io::Error>())
            .unwrap();
        assert_eq!(source.kind(), io::ErrorKind::BrokenPipe);
        assert!(matches!(err, CliDocsError::PrintPath { .. }), "{err}");
    }
}
