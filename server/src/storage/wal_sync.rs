//! Durability of the SQLite writer's batches without making the writer
//! wait for the disk.
//!
//! With `synchronous=FULL`, SQLite fsyncs the WAL inside `COMMIT`, so the
//! writer thread sat idle for the whole fsync (milliseconds on real disks)
//! before it could start the next batch: at 64 connections daisy was
//! waiting, not working, half the time. The writer now commits with
//! `synchronous=NORMAL` (the WAL is written, not synced, at commit) and
//! hands the batch's answers to this thread, which calls `fdatasync` on the
//! WAL file and only then answers. One sync covers every batch committed
//! before it started, so while it runs the writer is already storing the
//! next batch, and the next sync covers all of those at once.
//!
//! Every answer leaves only after a sync that started after the commit of
//! its batch, and every batch a later answer depends on (a `409` refers to
//! an earlier crash) was committed before that batch: so whatever daisy
//! acknowledged is on disk, as before. SQLite's recovery keeps every commit
//! whose frames are intact in the WAL. Rows can be visible to other
//! connections (the API) for the length of one sync before they are
//! durable; nothing acknowledged ever is.
//!
//! A failed sync (EIO, a full or vanished disk) leaves it unknown what
//! reached the disk. As PostgreSQL does after a failed fsync, the writer
//! then stops accepting work: every waiting and later request fails, and
//! `/healthz` keeps working so the operator sees the log and restarts
//! daisy, whose SQLite recovery then holds exactly what is on disk.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::StorageError;

/// The writer's WAL file. Opened at the first sync, right after the first
/// commit created it; from then on it must stay the file at its path. A WAL
/// deleted or replaced under a running daisy (SQLite keeps writing to the
/// file it has open) fails the sync: syncing another file would acknowledge
/// data that is not on disk.
struct WalFile {
    path: PathBuf,
    open: Option<(File, u64)>,
}

impl WalFile {
    fn new(database: &Path) -> WalFile {
        let mut path = database.as_os_str().to_owned();
        path.push("-wal");
        WalFile {
            path: PathBuf::from(path),
            open: None,
        }
    }

    /// `fdatasync` of the WAL file.
    fn sync(&mut self) -> std::io::Result<()> {
        let inode = std::fs::symlink_metadata(&self.path)?.ino();
        match &self.open {
            Some((file, ino)) if *ino == inode => file.sync_data(),
            Some(_) => Err(std::io::Error::other(
                "the WAL file was replaced while daisy had it open",
            )),
            None => {
                let file = File::open(&self.path)?;
                let ino = file.metadata()?.ino();
                // A new WAL's directory entry must be on disk too: SQLite
                // syncs the directory only at the first sync it makes
                // itself, which under `synchronous=NORMAL` is the first
                // checkpoint.
                if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    File::open(dir)?.sync_all()?;
                }
                file.sync_data()?;
                self.open = Some((file, ino));
                Ok(())
            }
        }
    }
}

/// Answers to send once the WAL that holds them is on disk: each caller's
/// channel and what the writer answered it.
pub(super) type Acks<T> = Vec<(
    oneshot::Sender<Result<T, StorageError>>,
    Result<T, StorageError>,
)>;

/// Handle of the sync thread; it ends when the handle is dropped.
pub(super) struct WalSyncer<T> {
    acks: mpsc::Sender<Acks<T>>,
    failed: Arc<AtomicBool>,
}

impl<T: Send + 'static> WalSyncer<T> {
    /// Starts the sync thread for the database at `database`.
    pub(super) fn start(database: &Path) -> Result<WalSyncer<T>, StorageError> {
        let (acks, rx) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let wal = WalFile::new(database);
        let flag = Arc::clone(&failed);
        std::thread::Builder::new()
            .name("daisy-sqlite-sync".into())
            .spawn(move || run(wal, &rx, &flag))
            .map_err(|e| StorageError::Open(format!("cannot start the WAL sync thread: {e}")))?;
        Ok(WalSyncer { acks, failed })
    }

    /// Sends `acks` after the next sync of the WAL (or the sync's error).
    pub(super) fn after_sync(&self, acks: Acks<T>) {
        if let Err(mpsc::SendError(acks)) = self.acks.send(acks) {
            for (reply, _) in acks {
                let _ = reply.send(Err(StorageError::WorkerGone));
            }
        }
    }

    /// Whether a sync has failed: nothing may be acknowledged any more.
    pub(super) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The flag behind [`WalSyncer::failed`], for other threads.
    pub(super) fn failed_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.failed)
    }
}

/// The error every request gets once a sync has failed.
pub(super) fn sync_failed_error() -> StorageError {
    StorageError::Open(
        "writing the SQLite WAL to disk failed, so daisy stopped accepting data; \
         check the disk and the log, then restart daisy"
            .into(),
    )
}

fn run<T>(mut wal: WalFile, rx: &mpsc::Receiver<Acks<T>>, failed: &AtomicBool) {
    while let Ok(mut acks) = rx.recv() {
        // Everything committed so far rides on this one sync.
        while let Ok(more) = rx.try_recv() {
            acks.extend(more);
        }
        let synced = if failed.load(Ordering::Acquire) {
            Err(sync_failed_error())
        } else {
            wal.sync().map_err(|e| {
                tracing::error!(
                    wal = %wal.path.display(),
                    "fdatasync of the SQLite WAL failed, refusing all further writes: {e}"
                );
                failed.store(true, Ordering::Release);
                sync_failed_error()
            })
        };
        for (reply, outcome) in acks {
            let _ = reply.send(match &synced {
                Ok(()) => outcome,
                Err(_) => Err(sync_failed_error()),
            });
        }
    }
}
