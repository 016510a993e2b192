//! Files: opening without following links, telling the errors of those
//! opens apart, direct I/O for writes (the flag, and the switch back to
//! buffered writes for a tail that is not a whole block or after a refused
//! write), and read-only maps for reads without a copy.
//!
//! Only the system's side: which names may be opened, and what an error
//! means for a client, is the store's business, never this module's.
//!
//! A map of a file that another program truncates in place faults
//! (SIGBUS) on the pages past the new end. [`Window::read`] guards the
//! reads it runs: such a fault maps a page of zeros over the missing one,
//! the read goes on, and `read` says the file was cut short, so the zeros
//! are never sent. A SIGBUS anywhere else keeps its default action.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Once;

/// Opens an existing file read-only, close-on-exec, without following a
/// symbolic link as its last component ([`is_link_refused`] then) and without
/// blocking on a FIFO.
pub fn open_read_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

/// Creates a new file for writing with permissions `mode`, close-on-exec:
/// never an existing file, never through a symbolic link.
pub fn create_new_nofollow(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// The name does not exist (`ENOENT`).
pub fn is_not_found(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

/// A `_nofollow` open met a symbolic link as the last component (`ELOOP`).
pub fn is_link_refused(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// Turns `O_DIRECT` on or off for an open file: with it, writes go from the
/// caller's buffer to the device, not through the page cache (buffer, length
/// and offset must be block-aligned).
pub fn set_direct(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
    let flags = if on {
        flags | libc::O_DIRECT
    } else {
        flags & !libc::O_DIRECT
    };
    syscall!(fcntl(fd, libc::F_SETFL, flags)).map(drop)
}

/// A read-only, private map of `len` bytes of a file from `offset` (a
/// multiple of the page size), its pages read in when it is made.
pub struct Window<'f> {
    file: &'f File,
    /// Where the window ends in the file.
    end: u64,
    ptr: *mut u8,
    len: usize,
}

thread_local! {
    /// The address range this thread is reading under the guard (0, 0: none).
    static GUARDED: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    /// A page of the guarded range was missing (the file shrank).
    static CUT: Cell<bool> = const { Cell::new(false) };
}

static HANDLER: Once = Once::new();

fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    // Const-initialised thread locals without destructors are plain TLS
    // reads and writes: safe in a signal handler.
    let (start, len) = GUARDED.with(Cell::get);
    if len > 0 && addr >= start && addr < start + len {
        let page = addr & !(page_size() - 1);
        // SAFETY: replaces one page of the guarded map (which this thread is
        // reading) with zeros; mmap is a plain system call.
        let p = unsafe {
            libc::mmap(
                page as *mut libc::c_void,
                page_size(),
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            CUT.with(|c| c.set(true));
            return;
        }
    }
    // Not a guarded read: the default action, when the access faults again.
    // SAFETY: SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
    }
}

fn install_handler() -> io::Result<()> {
    let mut result = Ok(());
    HANDLER.call_once(|| {
        // SAFETY: a zeroed sigaction with a valid SA_SIGINFO handler.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                on_sigbus;
            sa.sa_sigaction = handler as libc::sighandler_t;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()) != 0 {
                result = Err(io::Error::last_os_error());
            }
        }
    });
    result
}

impl<'f> Window<'f> {
    pub fn new(file: &'f File, offset: u64, len: usize) -> io::Result<Window<'f>> {
        install_handler()?;
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty window"));
        }
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        // SAFETY: a new read-only private map of an open file; no existing
        // memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_POPULATE,
                file.as_fd().as_raw_fd(),
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Window {
            file,
            end: offset + len as u64,
            ptr: p.cast(),
            len,
        })
    }

    /// Runs `f` over the window's bytes. An error if the file turned out
    /// shorter than the window (truncated since it was opened): what `f`
    /// saw past its end were zeros, not the file. Two signs of that: a page
    /// past the end faults (caught here), and, where the page cache holds
    /// the file in folios larger than a page and a cut inside one leaves the
    /// rest of it mapped as zeros, the file's size afterwards.
    pub fn read<R>(&self, f: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
        GUARDED.with(|g| g.set((self.ptr as usize, self.len)));
        CUT.with(|c| c.set(false));
        // SAFETY: the map is `len` readable bytes for as long as `self`
        // lives; a missing page is replaced by zeros by the handler.
        let r = f(unsafe { std::slice::from_raw_parts(self.ptr, self.len) });
        GUARDED.with(|g| g.set((0, 0)));
        if CUT.with(Cell::get) || self.file.metadata()?.len() < self.end {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file was cut short while it was read",
            ));
        }
        Ok(r)
    }
}

impl Drop for Window<'_> {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the map made in `new`, no longer borrowed.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Window;
    use std::io::Write;

    #[test]
    fn a_window_reads_the_file_and_a_cut_file_is_an_error_not_a_crash() {
        let path = std::env::temp_dir().join(format!("fsbench-window-{}", std::process::id()));
        let data: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&data)
            .unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let w = Window::new(&f, 4096, 2 * 4096).unwrap();
        assert_eq!(w.read(|b| b.to_vec()).unwrap(), data[4096..]);
        // Cut in place to one and a half pages: the second half of the
        // window's first page is zeros, its second page is gone.
        let w = Window::new(&f, 0, 3 * 4096).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(6000)
            .unwrap();
        let e = w
            .read(|b| b.iter().map(|&x| x as u64).sum::<u64>())
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        // The guard is off again: a later read of what is left works.
        let w = Window::new(&f, 0, 4096).unwrap();
        assert_eq!(w.read(|b| b.to_vec()).unwrap(), data[..4096]);
        let _ = std::fs::remove_file(&path);
    }
}
