//! Passing a descriptor between processes: a UNIX socketpair, and
//! `sendmsg`/`recvmsg` carrying bytes plus at most one descriptor (`SCM_RIGHTS`).
//!
//! Every `recvmsg` is checked as nginx's `ngx_read_channel` does, and more
//! strictly: zero bytes means the peer is gone, ancillary data of any other
//! level or type, more than one descriptor, or `MSG_CTRUNC` is an error (and
//! whatever descriptors did arrive are closed, never leaked). Received
//! descriptors are close-on-exec (`MSG_CMSG_CLOEXEC`) and owned. `EAGAIN` is
//! returned as `WouldBlock` for the caller to wait out: it is never dropped
//! here. No framing and no policy: that is the caller's.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// A connected pair of UNIX stream sockets, close-on-exec on both ends.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as libc::c_int; 2];
    syscall!(socketpair(
        libc::AF_UNIX,
        libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
        0,
        fds.as_mut_ptr()
    ))?;
    // SAFETY: socketpair just returned these two fresh descriptors.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets or clears `O_NONBLOCK` on a descriptor.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = syscall!(fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        syscall!(fcntl(fd.as_raw_fd(), libc::F_SETFL, new))?;
    }
    Ok(())
}

/// Is `FD_CLOEXEC` set on a descriptor?
pub fn is_cloexec(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let flags = syscall!(fcntl(fd.as_raw_fd(), libc::F_GETFD))?;
    Ok(flags & libc::FD_CLOEXEC != 0)
}

/// Would a read on `fd` return at once (data, end of file or an error)? Never blocks.
pub fn readable_now(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        match syscall!(poll(&mut p, 1, 0)) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Blocks until `fd` can take a write (or has an error to report).
pub fn wait_writable(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    loop {
        match syscall!(poll(&mut p, 1, -1)) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Room for one `cmsghdr` with one descriptor, aligned as a `cmsghdr`.
#[repr(C)]
union OneFdSpace {
    hdr: libc::cmsghdr,
    // CMSG_SPACE(sizeof(int)) is 24 on 64-bit Linux, 16 on 32-bit; 32 covers both.
    bytes: [u8; 32],
}

fn cmsg_space_one_fd() -> usize {
    // SAFETY: CMSG_SPACE is pure arithmetic.
    unsafe { libc::CMSG_SPACE(size_of::<RawFd>() as libc::c_uint) as usize }
}

/// Sends `bytes` with `fd` attached to the first of them (`MSG_NOSIGNAL`).
/// Returns how many bytes went; when that is more than 0, the descriptor went
/// with them and the caller may close its copy. `WouldBlock` means nothing went.
pub fn send_with_fd(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<usize> {
    if bytes.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a descriptor needs at least one byte to travel with",
        ));
    }
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: all-zero is a valid msghdr and a valid union value.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    let mut space: OneFdSpace = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        let len = cmsg_space_one_fd();
        assert!(len <= size_of::<OneFdSpace>());
        msg.msg_control = &mut space as *mut OneFdSpace as *mut libc::c_void;
        msg.msg_controllen = len as _;
        // SAFETY: msg_control points at `len` writable, aligned bytes, enough for one header and one int.
        unsafe {
            let cm = libc::CMSG_FIRSTHDR(&msg);
            (*cm).cmsg_level = libc::SOL_SOCKET;
            (*cm).cmsg_type = libc::SCM_RIGHTS;
            (*cm).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as libc::c_uint) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cm) as *mut RawFd, fd.as_raw_fd());
        }
    }
    loop {
        match syscall!(sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)) {
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Receives bytes into `buf`, and the descriptor that came with them if any.
/// `Ok((0, None))` means the peer closed its end. Allocates only to build an
/// error (so the forked child in the tests may call it).
pub fn recv_with_fd(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr and a valid union value.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    let mut space: OneFdSpace = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = &mut space as *mut OneFdSpace as *mut libc::c_void;
    msg.msg_controllen = cmsg_space_one_fd() as _;
    let n = loop {
        match syscall!(recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC)) {
            Ok(n) => break n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    // Take ownership of every descriptor that arrived before judging, so that
    // an error path closes them instead of leaking them.
    let mut got: Option<OwnedFd> = None;
    let mut extra = 0usize;
    let mut bad: Option<(libc::c_int, libc::c_int)> = None;
    // SAFETY: the kernel filled msg_control up to msg_controllen; CMSG_FIRSTHDR
    // and CMSG_NXTHDR stay within it, and each SCM_RIGHTS payload holds
    // (cmsg_len - CMSG_LEN(0)) / sizeof(int) descriptors now owned by us.
    unsafe {
        let mut cm = libc::CMSG_FIRSTHDR(&msg);
        while !cm.is_null() {
            let level = (*cm).cmsg_level;
            let kind = (*cm).cmsg_type;
            if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cm) as *const RawFd;
                let payload = (*cm).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..payload / size_of::<RawFd>() {
                    let fd = OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i)));
                    if got.is_none() {
                        got = Some(fd);
                    } else {
                        extra += 1;
                        drop(fd);
                    }
                }
            } else {
                bad = Some((level, kind));
            }
            cm = libc::CMSG_NXTHDR(&msg, cm);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "recvmsg: ancillary data truncated (MSG_CTRUNC)",
        ));
    }
    if let Some((level, kind)) = bad {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            unexpected_cmsg(level, kind),
        ));
    }
    if extra > 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "recvmsg: more than one descriptor in one message",
        ));
    }
    if n == 0 && got.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "recvmsg: a descriptor without data",
        ));
    }
    Ok((n, got))
}

/// The error text for unexpected ancillary data (static: no allocation).
fn unexpected_cmsg(level: libc::c_int, kind: libc::c_int) -> &'static str {
    match (level, kind) {
        (libc::SOL_SOCKET, libc::SCM_CREDENTIALS) => "recvmsg: unexpected SCM_CREDENTIALS",
        (libc::SOL_SOCKET, _) => "recvmsg: ancillary data of an unexpected type",
        _ => "recvmsg: ancillary data of an unexpected level",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsFd;

    /// Sends `fds` (any number) with one byte: only to test the receiver's checks.
    fn send_many(sock: BorrowedFd<'_>, fds: &[RawFd]) {
        let byte = [b'x'];
        let mut iov = libc::iovec {
            iov_base: byte.as_ptr() as *mut libc::c_void,
            iov_len: 1,
        };
        let mut space = [0u64; 16];
        let data_len = std::mem::size_of_val(fds);
        // SAFETY: the control buffer (128 bytes, 8-aligned) holds one header and up to 16 ints.
        unsafe {
            let mut msg: libc::msghdr = zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = space.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = libc::CMSG_SPACE(data_len as u32) as _;
            let cm = libc::CMSG_FIRSTHDR(&msg);
            (*cm).cmsg_level = libc::SOL_SOCKET;
            (*cm).cmsg_type = libc::SCM_RIGHTS;
            (*cm).cmsg_len = libc::CMSG_LEN(data_len as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(cm) as *mut RawFd,
                fds.len(),
            );
            assert_eq!(libc::sendmsg(sock.as_raw_fd(), &msg, 0), 1);
        }
    }

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    /// The child reads a descriptor and a payload, writes the payload into that
    /// descriptor, and sends the descriptor back with an answer; the parent checks
    /// all of it, and the child's exit status, across a real `fork`.
    #[test]
    fn passes_a_descriptor_and_bytes_across_fork() {
        let (parent, child) = socketpair().unwrap();
        assert!(is_cloexec(parent.as_fd()).unwrap() && is_cloexec(child.as_fd()).unwrap());
        let (pipe_rd, pipe_wr) = crate::sys::pipe().unwrap();
        set_nonblocking(pipe_rd.as_fd(), false).unwrap();
        // SAFETY: the child calls only allocation-free functions and `_exit`
        // (the test harness has other threads).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            drop(parent);
            let code = (|| {
                let mut buf = [0u8; 256];
                let (n, fd) = match recv_with_fd(child.as_fd(), &mut buf) {
                    Ok((n, Some(fd))) if n > 0 => (n, fd),
                    _ => return 10,
                };
                match is_cloexec(fd.as_fd()) {
                    Ok(true) => {}
                    _ => return 11,
                }
                // SAFETY: buf[..n] is initialised; fd is the pipe's write end.
                let w =
                    unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr() as *const libc::c_void, n) };
                if w != n as isize {
                    return 12;
                }
                match send_with_fd(child.as_fd(), b"back", Some(fd.as_fd())) {
                    Ok(4) => 0,
                    _ => 13,
                }
            })();
            // SAFETY: _exit never returns and runs no destructors.
            unsafe { libc::_exit(code) }
        }
        drop(child);
        let payload = b"GET photo.jpg\n";
        assert_eq!(
            send_with_fd(parent.as_fd(), payload, Some(pipe_wr.as_fd())).unwrap(),
            payload.len()
        );
        drop(pipe_wr);
        let mut buf = [0u8; 64];
        let (n, back) = recv_with_fd(parent.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"back");
        let back = back.expect("the descriptor came back");
        assert!(is_cloexec(back.as_fd()).unwrap());
        drop(back);
        let mut got = Vec::new();
        std::fs::File::from(pipe_rd).read_to_end(&mut got).unwrap();
        assert_eq!(
            got, payload,
            "the child wrote the payload into the passed descriptor"
        );
        let (n, fd) = recv_with_fd(parent.as_fd(), &mut buf).unwrap();
        assert_eq!(
            (n, fd.is_none()),
            (0, true),
            "end of file once the child is gone"
        );
        let mut status = 0;
        // SAFETY: pid is our child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child status {status:#x}"
        );
    }

    #[test]
    fn plain_bytes_come_without_a_descriptor() {
        let (a, b) = socketpair().unwrap();
        assert_eq!(send_with_fd(a.as_fd(), b"hello", None).unwrap(), 5);
        let mut buf = [0u8; 16];
        let (n, fd) = recv_with_fd(b.as_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..n], fd.is_none()), (&b"hello"[..], true));
    }

    #[test]
    fn refuses_two_or_more_descriptors_and_leaks_none() {
        for count in [2usize, 3, 8] {
            let (a, b) = socketpair().unwrap();
            let files: Vec<std::fs::File> = (0..count)
                .map(|_| std::fs::File::open("/dev/null").unwrap())
                .collect();
            let raw: Vec<RawFd> = files.iter().map(|f| f.as_raw_fd()).collect();
            send_many(a.as_fd(), &raw);
            drop(files);
            let before = open_fds();
            let mut buf = [0u8; 16];
            let err = recv_with_fd(b.as_fd(), &mut buf).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{count} fds: {err}");
            // Other tests run in parallel and open descriptors too: allow for them, but
            // a leak of `count` descriptors would show.
            assert!(
                open_fds() < before + count,
                "{count} fds: descriptors leaked"
            );
        }
    }

    #[test]
    fn refuses_ancillary_data_of_another_type() {
        let (a, b) = socketpair().unwrap();
        let on: libc::c_int = 1;
        // SAFETY: SO_PASSCRED takes an int.
        let r = unsafe {
            libc::setsockopt(
                b.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PASSCRED,
                &on as *const libc::c_int as *const libc::c_void,
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
        send_with_fd(a.as_fd(), b"x", None).unwrap();
        let mut buf = [0u8; 16];
        let err = recv_with_fd(b.as_fd(), &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    #[test]
    fn would_block_is_reported_not_dropped() {
        let (a, b) = socketpair().unwrap();
        set_nonblocking(a.as_fd(), true).unwrap();
        set_nonblocking(b.as_fd(), true).unwrap();
        let mut buf = [0u8; 16];
        let err = recv_with_fd(b.as_fd(), &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(!readable_now(b.as_fd()).unwrap());
        // Fill the channel until the kernel says EAGAIN: nothing is lost before that.
        let chunk = [7u8; 64 * 1024];
        let mut sent = 0usize;
        loop {
            match send_with_fd(a.as_fd(), &chunk, None) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(readable_now(b.as_fd()).unwrap());
        let mut got = 0usize;
        let mut s = std::os::unix::net::UnixStream::from(b);
        let mut big = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut big) {
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, sent);
    }
}
