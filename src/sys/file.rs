//! Direct I/O on a file: the flag to open it with and the switch back to
//! buffered writes (for a tail that is not a whole block, or after a write
//! the device refused).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `O_DIRECT`: writes go from the caller's buffer to the device, not
/// through the page cache (buffer, length and offset must be block-aligned).
pub const O_DIRECT: i32 = libc::O_DIRECT;

/// Turns `O_DIRECT` on or off for an open file.
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
