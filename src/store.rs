//! The file store: one flat folder of regular files.
//!
//! Every name is checked by [`check_name`] before
//! any system call; files are opened with `O_NOFOLLOW` and must be regular
//! files. Uploads go to a private temporary folder (`<root>/.tmp`, which no
//! valid name can reach) and are renamed into place once complete and synced.
//! With fsync on, success means the file and its folder entry are on disk;
//! every failure is an [`Error::Request`] with its reason (the client is
//! answered ERROR), even one after the rename, which says the file is in
//! place but may not survive a crash.
//! This module must never read, write or delete anything outside its root,
//! and never names a system constant (those live in [`crate::sys`]).

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::protocol::check_name;
use crate::sys::file::{create_new_nofollow, is_link_refused, is_not_found, open_read_nofollow};

/// Name of the private folder for uploads in progress.
pub const TMP_DIR: &str = ".tmp";

#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    tmp: PathBuf,
    fsync: bool,
    counter: AtomicU64,
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
    /// Opens (creating if needed) the store at `root`, and removes temp files
    /// left by an earlier crash.
    pub fn open(root: &Path, fsync: bool) -> io::Result<Store> {
        fs::create_dir_all(root)?;
        let tmp = root.join(TMP_DIR);
        match fs::symlink_metadata(&tmp) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} exists and is not a folder",
                    tmp.display()
                )));
            }
            Err(_) => fs::create_dir(&tmp)?,
        }
        let store = Store {
            root: root.to_path_buf(),
            tmp,
            fsync,
            counter: AtomicU64::new(0),
        };
        let removed = store.remove_temps(|_| true)?;
        if removed > 0 {
            crate::log::info(format_args!(
                "removed {removed} temp file(s) left by an earlier run"
            ));
        }
        Ok(store)
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

    /// Removes the temp files of a worker process that died (process mode).
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
