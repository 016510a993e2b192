//! Folder locks (`flock`): a server holds one on its temp folder for its
//! whole life, so that another server starting over the same store can tell
//! a folder in use from one left by a server that ended without removing it.
//!
//! A `flock` lock belongs to the open file description, not to a process or
//! a descriptor: a forked worker's copy of the descriptor shares the lock
//! (and [`fork_worker`](super::process::fork_worker) keeps every held
//! [`FolderLock`]'s descriptor open in the worker), and the lock is released
//! when the last descriptor of that description closes, however its
//! processes end (`kill -9` too): once the server and every worker it forked
//! are gone. Two opens of one folder, even in one process, are two
//! descriptions, and their locks conflict.
//!
//! Advisory only: the lock keeps out those who ask for it, nobody else.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// The descriptors of the folder locks this process holds: forked workers keep them.
static HELD: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

fn held() -> MutexGuard<'static, Vec<RawFd>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// The descriptors of the folder locks this process holds now.
pub(super) fn held_fds() -> Vec<RawFd> {
    held().clone()
}

/// An exclusive lock on a folder, held until it is dropped, or until this
/// process and the workers it forked since have all ended.
#[derive(Debug)]
pub struct FolderLock {
    dir: File,
}

impl FolderLock {
    /// Opens the folder at `path` (close-on-exec, never through a symbolic
    /// link) and takes an exclusive lock on it without waiting: `None` when
    /// someone else holds it.
    pub fn try_lock(path: &Path) -> io::Result<Option<FolderLock>> {
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        loop {
            match syscall!(flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB)) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        held().push(dir.as_raw_fd());
        Ok(Some(FolderLock { dir }))
    }

    /// Whether `path` still names the locked folder: between the open and
    /// the lock, another process may have removed it (or put another in its
    /// place). The answer cannot change later: the folder is locked.
    pub fn is_at(&self, path: &Path) -> bool {
        match (self.dir.metadata(), std::fs::symlink_metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // The descriptor closes right after this (the lock goes with it,
        // unless a forked worker still holds a copy).
        let fd = self.dir.as_raw_fd();
        held().retain(|&f| f != fd);
    }
}

#[cfg(test)]
mod tests {
    use super::{held_fds, FolderLock};
    use std::os::fd::AsRawFd;

    #[test]
    fn a_held_lock_keeps_out_a_second_one_until_it_is_dropped() {
        let dir = std::env::temp_dir().join(format!("fsbench-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let first = FolderLock::try_lock(&dir)
            .unwrap()
            .expect("a free folder locks");
        assert!(first.is_at(&dir));
        assert!(held_fds().contains(&first.dir.as_raw_fd()));
        // Another open of the same folder, in the same process: refused.
        assert!(FolderLock::try_lock(&dir).unwrap().is_none());
        drop(first);
        let again = FolderLock::try_lock(&dir).unwrap().expect("free again");
        // Removed while locked: no longer at its path.
        std::fs::remove_dir(&dir).unwrap();
        assert!(!again.is_at(&dir));
        assert!(FolderLock::try_lock(&dir).is_err());
    }
}
