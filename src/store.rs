//! The file store: one flat folder of regular files.
//!
//! Every name is checked by [`check_name`] before
//! any system call; files are opened with `O_NOFOLLOW` and must be regular
//! files. Uploads go to a private temporary folder, which no valid name can
//! reach, and are renamed into place once complete and synced.
//! With fsync on, success means the file and its folder entry are on disk;
//! every failure is an [`Error::Request`] with its reason (the client is
//! answered ERROR), even one after the rename, which says the file is in
//! place but may not survive a crash.
//!
//! Several servers may share one store: each keeps its uploads in progress
//! in a folder of its own, `<root>/.tmp/<pid>-<start time>`, locked
//! ([`FolderLock`]) for as long as the server or one of its workers lives.
//! At start a server removes the folders under `.tmp` whose lock is free
//! (left by a server that was killed or crashed), never a locked one, and at
//! a clean exit it removes its own.
//! This module must never read, write or delete anything outside its root,
//! and never names a system constant (those live in [`crate::sys`]).

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::protocol::check_name;
use crate::sys::file::{create_new_nofollow, is_link_refused, is_not_found, open_read_nofollow};
use crate::sys::lock::FolderLock;

/// Name of the private folder for uploads in progress (each server's in a
/// folder of its own in it).
pub const TMP_DIR: &str = ".tmp";

#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    /// This server's temp folder, in `<root>/.tmp`.
    tmp: PathBuf,
    /// Held for the server's life, and shared by its forked workers: tells
    /// other servers that `tmp` is in use.
    _lock: FolderLock,
    fsync: bool,
    counter: AtomicU64,
}

/// What [`remove_abandoned_temps`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Temp files (an upload each).
    pub files: usize,
    /// Temp folders of servers that are no longer running.
    pub folders: usize,
}

/// Removes from `tmp_root` (a store's `.tmp`) the temp folders whose lock is
/// free, with the files in them, and any file lying loose there (as a server
/// of an earlier version kept its temp files); never a folder a running
/// server holds. An entry that cannot be removed is left and not counted.
pub fn remove_abandoned_temps(tmp_root: &Path) -> io::Result<Removed> {
    let mut removed = Removed::default();
    for entry in fs::read_dir(tmp_root)? {
        let entry = entry?;
        let path = entry.path();
        if !entry.file_type()?.is_dir() {
            if fs::remove_file(&path).is_ok() {
                removed.files += 1;
            }
            continue;
        }
        // Locked: a running server's. Gone or not ours to open: left alone.
        let Ok(Some(lock)) = FolderLock::try_lock(&path) else {
            continue;
        };
        // Another server's start may have removed it between the open and
        // the lock.
        if !lock.is_at(&path) {
            continue;
        }
        removed.files += empty_folder(&path);
        if fs::remove_dir(&path).is_ok() {
            removed.folders += 1;
        }
    }
    Ok(removed)
}

/// Removes what a temp folder holds; returns how many files that was.
fn empty_folder(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            // Never made by a server; removed all the same (without
            // following links: `remove_dir_all` does not).
            Ok(t) if t.is_dir() => {
                let _ = fs::remove_dir_all(&path);
            }
            _ => {
                if fs::remove_file(&path).is_ok() {
                    n += 1;
                }
            }
        }
    }
    n
}

/// Makes and locks this server's temp folder in `tmp_root`.
fn own_temp_folder(tmp_root: &Path) -> io::Result<(PathBuf, FolderLock)> {
    const TRIES: u32 = 100;
    for _ in 0..TRIES {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = tmp_root.join(format!("{}-{started}", std::process::id()));
        match fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        // Until it is locked, another server's start may take the new folder
        // for one left over, lock it and remove it: then it is not ours.
        match FolderLock::try_lock(&path) {
            Ok(Some(lock)) if lock.is_at(&path) => return Ok((path, lock)),
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "cannot make a temp folder of its own in {} ({TRIES} tries)",
        tmp_root.display()
    )))
}

/// An upload in progress. Dropped without [`Store::commit`], it is removed.
///
/// Decoded bytes gather in one buffer, appended to in place ([`room`](Self::room)),
/// and are written out a chunk at a time. With fsync on, the file is opened
/// for direct I/O: whole blocks go from the buffer to the device, skipping
/// the copy into the page cache (the bytes must reach the disk anyway). The
/// tail that is not a whole block, and everything after a direct write the
/// file system refuses or cuts short, goes through the page cache.
pub struct TempFile {
    file: File,
    path: PathBuf,
    done: bool,
    /// The bytes not written yet are `gathered[at..]`; `at` puts them on a
    /// block boundary. In direct mode the capacity never grows (a new
    /// allocation would lose the alignment).
    gathered: Vec<u8>,
    at: usize,
    direct: bool,
}

/// Alignment that every block device and file system here accepts.
const ALIGN: usize = 4096;
/// Bytes per write: direct writes are synchronous, so large ones.
const CHUNK: usize = 1 << 20;

impl TempFile {
    fn new(file: File, path: PathBuf, direct: bool) -> TempFile {
        let mut gathered: Vec<u8> = Vec::with_capacity(CHUNK + ALIGN);
        let at = gathered.as_ptr().align_offset(ALIGN);
        gathered.resize(at, 0);
        TempFile {
            file,
            path,
            done: false,
            gathered,
            at,
            direct,
        }
    }

    /// The buffer to append up to `n` bytes to (the upload's decoder writes
    /// straight into it), after writing out what is gathered if they would
    /// not fit.
    pub fn room(&mut self, n: usize) -> io::Result<&mut Vec<u8>> {
        if self.gathered.len() + n > self.gathered.capacity() {
            self.write_gathered(false)?;
            if self.gathered.len() + n > self.gathered.capacity() {
                // More than a chunk at once: the buffer must grow, which
                // direct I/O's alignment does not survive.
                self.write_gathered(true)?;
                self.gathered.reserve(n);
            }
        }
        Ok(&mut self.gathered)
    }

    /// Writes out the gathered bytes: whole blocks directly while that
    /// works, the rest (and everything after a refusal) buffered. Without
    /// `last`, a partial block stays gathered in direct mode.
    fn write_gathered(&mut self, last: bool) -> io::Result<()> {
        let len = self.gathered.len() - self.at;
        let mut done = 0;
        if self.direct {
            let whole = len / ALIGN * ALIGN;
            while done < whole && self.direct {
                match (&self.file).write(&self.gathered[self.at + done..self.at + whole]) {
                    Ok(n) if n > 0 && n % ALIGN == 0 => done += n,
                    // Refused (EINVAL: no direct I/O on this file system) or
                    // cut short (a size limit, a full disk): the buffered
                    // path writes what it can and reports the cause.
                    Ok(n) => {
                        done += n;
                        self.stop_direct()?;
                    }
                    Err(_) => self.stop_direct()?,
                }
            }
        }
        if !self.direct || last {
            if self.direct {
                // The tail is not a whole block.
                self.stop_direct()?;
            }
            (&self.file).write_all(&self.gathered[self.at + done..])?;
            done = len;
        }
        self.gathered.copy_within(self.at + done.., self.at);
        self.gathered.truncate(self.at + len - done);
        Ok(())
    }

    fn stop_direct(&mut self) -> io::Result<()> {
        self.direct = false;
        crate::sys::file::set_direct(self.file.as_fd(), false)
    }
}

impl Write for TempFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK);
        self.room(n)?.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_gathered(true)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn not_found(name: &str) -> Error {
    Error::request(format!("file not found: {name}"))
}

impl Store {
    /// Opens (creating if needed) the store at `root`, removes the temp
    /// folders left by servers that are no longer running, and makes this
    /// server's own.
    pub fn open(root: &Path, fsync: bool) -> io::Result<Store> {
        fs::create_dir_all(root)?;
        let tmp_root = root.join(TMP_DIR);
        // Another server starting at the same time may make it first.
        match fs::create_dir(&tmp_root) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        if !fs::symlink_metadata(&tmp_root)?.is_dir() {
            return Err(io::Error::other(format!(
                "{} exists and is not a folder",
                tmp_root.display()
            )));
        }
        let removed = remove_abandoned_temps(&tmp_root)?;
        if removed != Removed::default() {
            crate::log::info(format_args!(
                "removed {} temp file(s) and {} temp folder(s) left by servers no longer running",
                removed.files, removed.folders
            ));
        }
        let (tmp, lock) = own_temp_folder(&tmp_root)?;
        Ok(Store {
            root: root.to_path_buf(),
            tmp,
            _lock: lock,
            fsync,
            counter: AtomicU64::new(0),
        })
    }

    /// Removes this server's temp folder and the temp files left in it: at
    /// its exit, once no worker writes there any more. Returns how many
    /// files that was.
    pub fn remove_temp_folder(&self) -> usize {
        let n = empty_folder(&self.tmp);
        let _ = fs::remove_dir(&self.tmp);
        n
    }

    /// Removes temp files whose name matches; returns how many.
    fn remove_temps(&self, pred: impl Fn(&str) -> bool) -> io::Result<usize> {
        let mut n = 0;
        for entry in fs::read_dir(&self.tmp)? {
            let entry = entry?;
            if pred(&entry.file_name().to_string_lossy()) && fs::remove_file(entry.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Removes the temp files of a worker process that died (process mode):
    /// those in this server's folder whose name carries its pid.
    pub fn remove_temps_of(&self, pid: u32) -> usize {
        let prefix = format!("up-{pid}-");
        self.remove_temps(|n| n.starts_with(&prefix)).unwrap_or(0)
    }

    /// Names of the regular files, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        // An ERROR for the client, not a broken connection: a response is owed.
        let cannot = |e: io::Error| Error::request(format!("cannot list the store: {e}"));
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(cannot)? {
            let entry = entry.map_err(cannot)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if check_name(&name).is_err() {
                continue;
            }
            if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Opens a stored file for reading: never follows a symbolic link, never
    /// blocks on a FIFO, and refuses anything that is not a regular file.
    pub fn open_read(&self, name: &str) -> Result<(File, u64)> {
        check_name(name).map_err(Error::Request)?;
        let file = open_read_nofollow(&self.root.join(name)).map_err(|e| {
            if is_not_found(&e) {
                not_found(name)
            } else if is_link_refused(&e) {
                Error::request(format!("not a regular file: {name}"))
            } else {
                Error::request(format!("cannot open {name}: {e}"))
            }
        })?;
        let meta = file
            .metadata()
            .map_err(|e| Error::request(format!("cannot open {name}: {e}")))?;
        if !meta.is_file() {
            return Err(Error::request(format!("not a regular file: {name}")));
        }
        Ok((file, meta.len()))
    }

    /// Starts an upload: a new private temp file.
    pub fn begin_upload(&self) -> Result<TempFile> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.tmp.join(format!("up-{}-{n}", std::process::id()));
        let file = create_new_nofollow(&path, 0o644)
            .map_err(|e| Error::request(format!("cannot create temp file: {e}")))?;
        // Direct I/O where the file system takes it (see TempFile).
        let direct = self.fsync && crate::sys::file::set_direct(file.as_fd(), true).is_ok();
        Ok(TempFile::new(file, path, direct))
    }

    /// Makes a finished upload visible under `name` (replacing any file of that name).
    pub fn commit(&self, mut tmp: TempFile, name: &str) -> Result<()> {
        check_name(name).map_err(Error::Request)?;
        tmp.flush()
            .map_err(|e| Error::request(format!("write failed: {e}")))?;
        if self.fsync {
            tmp.file
                .sync_all()
                .map_err(|e| Error::request(format!("fsync failed: {e}")))?;
        }
        let dest = self.root.join(name);
        if let Ok(m) = fs::symlink_metadata(&dest) {
            if m.is_dir() {
                return Err(Error::request(format!("not a regular file: {name}")));
            }
        }
        fs::rename(&tmp.path, &dest)
            .map_err(|e| Error::request(format!("cannot store {name}: {e}")))?;
        tmp.done = true;
        // The file is in place, but until its folder is synced the rename may
        // be lost in a crash: an upload acknowledged with fsync on must be on
        // disk, so a failed sync is an ERROR that says what is true.
        if self.fsync {
            self.sync_root().map_err(|e| {
                Error::request(format!(
                    "{name} is stored but may not survive a crash: syncing the store's folder failed: {e}"
                ))
            })?;
        }
        Ok(())
    }

    /// Removes a stored file. A symbolic link is removed itself, never its target.
    pub fn delete(&self, name: &str) -> Result<()> {
        check_name(name).map_err(Error::Request)?;
        let path = self.root.join(name);
        let meta = fs::symlink_metadata(&path).map_err(|_| not_found(name))?;
        let t = meta.file_type();
        if !(t.is_file() || t.is_symlink()) || t.is_fifo() {
            return Err(Error::request(format!("not a regular file: {name}")));
        }
        fs::remove_file(&path).map_err(|e| {
            if is_not_found(&e) {
                not_found(name)
            } else {
                Error::request(format!("cannot delete {name}: {e}"))
            }
        })?;
        if self.fsync {
            self.sync_root().map_err(|e| {
                Error::request(format!(
                    "{name} is deleted but may come back after a crash: syncing the store's folder failed: {e}"
                ))
            })?;
        }
        Ok(())
    }

    /// Syncs the store's folder, so that a rename or a removal in it survives a crash.
    fn sync_root(&self) -> io::Result<()> {
        File::open(&self.root)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::{remove_abandoned_temps, Removed, Store, TMP_DIR};
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn fresh_root(tag: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("fsbench-store-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn entries(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn open_stores_keep_their_temp_files_apart_and_a_new_one_leaves_them_alone() {
        let root = fresh_root("apart");
        let (a, b) = (
            Store::open(&root, false).unwrap(),
            Store::open(&root, false).unwrap(),
        );
        assert_ne!(a.tmp, b.tmp);
        let mut ta = a.begin_upload().unwrap();
        let mut tb = b.begin_upload().unwrap();
        ta.write_all(b"first").unwrap();
        tb.write_all(b"second").unwrap();
        let c = Store::open(&root, false).unwrap();
        assert_eq!(entries(&root.join(TMP_DIR)), 3);
        assert!(ta.path.is_file() && tb.path.is_file());
        a.commit(ta, "a.txt").unwrap();
        b.commit(tb, "b.txt").unwrap();
        assert_eq!(c.list().unwrap(), ["a.txt", "b.txt"]);
        assert_eq!(std::fs::read(root.join("b.txt")).unwrap(), b"second");
        for s in [a, b, c] {
            assert_eq!(s.remove_temp_folder(), 0);
        }
        assert_eq!(entries(&root.join(TMP_DIR)), 0);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_folder_whose_lock_is_free_goes_at_the_next_open_with_loose_files() {
        let root = fresh_root("free");
        let gone = Store::open(&root, false).unwrap();
        let t = gone.begin_upload().unwrap();
        let left = (gone.tmp.clone(), t.path.clone());
        // A crash: the temp file is not removed, the lock goes with the store.
        std::mem::forget(t);
        drop(gone);
        // A temp file as servers of an earlier version left them.
        std::fs::write(root.join(TMP_DIR).join("up-1-1"), b"x").unwrap();
        let held = Store::open(&root, false).unwrap();
        let t = held.begin_upload().unwrap();
        assert!(!left.0.exists() && !left.1.exists());
        assert_eq!(entries(&root.join(TMP_DIR)), 1);
        // The folder of an open store is never taken for a left-over one.
        assert_eq!(
            remove_abandoned_temps(&root.join(TMP_DIR)).unwrap(),
            Removed::default()
        );
        assert!(t.path.is_file());
        assert_eq!(held.remove_temps_of(std::process::id()), 1);
        assert!(!t.path.exists());
        drop(t);
        assert_eq!(held.remove_temp_folder(), 0);
        assert!(!held.tmp.exists());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_clean_exit_removes_the_folder_with_what_is_left_in_it() {
        let root = fresh_root("exit");
        let s = Store::open(&root, false).unwrap();
        let t = s.begin_upload().unwrap();
        std::mem::forget(t);
        assert_eq!(s.remove_temp_folder(), 1);
        assert_eq!(entries(&root.join(TMP_DIR)), 0);
        let _ = std::fs::remove_dir_all(&root);
    }
}
