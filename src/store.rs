//! The file store: one flat folder of regular files.
//!
//! Every name is checked by [`check_name`](crate::protocol::check_name) before
//! any system call; files are opened with `O_NOFOLLOW` and must be regular
//! files. Uploads go to a private temporary folder (`<root>/.tmp`, which no
//! valid name can reach) and are renamed into place once complete and synced.
//! This module must never read, write or delete anything outside its root.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::protocol::check_name;

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
pub struct TempFile {
    file: io::BufWriter<File>,
    path: PathBuf,
    done: bool,
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
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

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn fsync(&self) -> bool {
        self.fsync
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

    /// How many temp files exist now (tests and the robustness suite read this).
    pub fn temp_count(&self) -> usize {
        fs::read_dir(&self.tmp).map(|d| d.count()).unwrap_or(0)
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
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(self.root.join(name))
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) => not_found(name),
                Some(libc::ELOOP) => Error::request(format!("not a regular file: {name}")),
                _ => Error::request(format!("cannot open {name}: {e}")),
            })?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(Error::request(format!("not a regular file: {name}")));
        }
        Ok((file, meta.len()))
    }

    /// Starts an upload: a new private temp file.
    pub fn begin_upload(&self) -> Result<TempFile> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.tmp.join(format!("up-{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::request(format!("cannot create temp file: {e}")))?;
        Ok(TempFile {
            file: io::BufWriter::with_capacity(64 * 1024, file),
            path,
            done: false,
        })
    }

    /// Makes a finished upload visible under `name` (replacing any file of that name).
    pub fn commit(&self, mut tmp: TempFile, name: &str) -> Result<()> {
        check_name(name).map_err(Error::Request)?;
        tmp.file
            .flush()
            .map_err(|e| Error::request(format!("write failed: {e}")))?;
        if self.fsync {
            tmp.file
                .get_ref()
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
        if self.fsync {
            File::open(&self.root)?.sync_all()?;
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
        fs::remove_file(&path).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => not_found(name),
            _ => Error::request(format!("cannot delete {name}: {e}")),
        })?;
        if self.fsync {
            File::open(&self.root)?.sync_all()?;
        }
        Ok(())
    }
}
