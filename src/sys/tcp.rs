//! TCP's congestion control (`TCP_CONGESTION`) on a socket, and a connect
//! that lets the caller set options on the socket before the handshake
//! (what the congestion control needs: an algorithm that paces starts with
//! the connection and does not stop when another is set later).

use std::io;
use std::mem::size_of;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// The longest algorithm name the kernel knows (`TCP_CA_NAME_MAX`, with its NUL).
pub const CONGESTION_NAME_MAX: usize = 16;

/// Sets the congestion control algorithm of a TCP socket. On a listening
/// socket, every connection it accepts later inherits it.
pub fn set_congestion(fd: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    syscall!(setsockopt(
        fd.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_CONGESTION,
        name.as_ptr() as *const libc::c_void,
        name.len() as libc::socklen_t,
    ))
    .map(drop)
}

/// The congestion control algorithm a TCP socket uses.
pub fn congestion(fd: BorrowedFd<'_>) -> io::Result<String> {
    let mut buf = [0u8; CONGESTION_NAME_MAX];
    let mut len = buf.len() as libc::socklen_t;
    syscall!(getsockopt(
        fd.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_CONGESTION,
        buf.as_mut_ptr() as *mut libc::c_void,
        &mut len,
    ))?;
    let got = &buf[..(len as usize).min(buf.len())];
    let end = got.iter().position(|&b| b == 0).unwrap_or(got.len());
    Ok(String::from_utf8_lossy(&got[..end]).into_owned())
}

/// A new TCP socket for `addr`'s family, not connected (close-on-exec).
pub fn tcp_socket(addr: &SocketAddr) -> io::Result<OwnedFd> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let fd = syscall!(socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0))?;
    // SAFETY: socket just returned this descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Connects to `addr` within `timeout` (which must not be zero), calling
/// `before` on the socket first; the stream returned is blocking.
pub fn connect_timeout_with(
    addr: &SocketAddr,
    timeout: Duration,
    before: impl FnOnce(BorrowedFd<'_>) -> io::Result<()>,
) -> io::Result<TcpStream> {
    if timeout.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot connect with a zero timeout",
        ));
    }
    let fd = tcp_socket(addr)?;
    before(fd.as_fd())?;
    set_nonblocking(&fd, true)?;
    let (storage, len) = sockaddr(addr);
    let started = syscall!(connect(
        fd.as_raw_fd(),
        &storage as *const libc::sockaddr_storage as *const libc::sockaddr,
        len,
    ));
    match started {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
            wait_connected(&fd, Instant::now().checked_add(timeout))?
        }
        Err(e) => return Err(e),
    }
    set_nonblocking(&fd, false)?;
    Ok(TcpStream::from(fd))
}

/// Waits for a non-blocking connect to finish (`None`: no deadline), then
/// reports its outcome.
fn wait_connected(fd: &OwnedFd, deadline: Option<Instant>) -> io::Result<()> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection timed out",
                    ));
                }
                // Rounded up, so that a wait never ends before the deadline.
                left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
            }
        };
        match syscall!(poll(&mut p, 1, ms)) {
            Ok(0) => continue,
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let mut err: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    syscall!(getsockopt(
        fd.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_ERROR,
        &mut err as *mut libc::c_int as *mut libc::c_void,
        &mut len,
    ))?;
    match err {
        // Hung up with no error set: not connected (as std says it).
        0 if p.revents & (libc::POLLHUP | libc::POLLERR) != 0 => {
            Err(io::Error::other("no error set after POLLHUP"))
        }
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

fn set_nonblocking(fd: &OwnedFd, on: bool) -> io::Result<()> {
    let flags = syscall!(fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    syscall!(fcntl(fd.as_raw_fd(), libc::F_SETFL, flags)).map(drop)
}

/// `addr` as the C structure `connect` takes, and its length.
fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all zeros is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe {
                std::ptr::write(
                    &mut storage as *mut libc::sockaddr_storage as *mut libc::sockaddr_in,
                    sin,
                )
            };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe {
                std::ptr::write(
                    &mut storage as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6,
                    sin6,
                )
            };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// The system's default congestion control for new connections.
pub fn system_congestion() -> Option<String> {
    proc_words("tcp_congestion_control").and_then(|w| w.into_iter().next())
}

/// The algorithms any user may set (root may set any available one).
pub fn allowed_congestion() -> Vec<String> {
    proc_words("tcp_allowed_congestion_control").unwrap_or_default()
}

/// The algorithms the kernel has loaded.
pub fn available_congestion() -> Vec<String> {
    proc_words("tcp_available_congestion_control").unwrap_or_default()
}

fn proc_words(name: &str) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}")).ok()?;
    Some(s.split_whitespace().map(String::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// The names any user may set, and reno.
    fn settable() -> Vec<String> {
        let mut names = allowed_congestion();
        if !names.contains(&"reno".to_string()) {
            names.push("reno".into());
        }
        names
    }

    #[test]
    fn a_connect_sets_the_algorithm_before_the_handshake() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        for name in settable() {
            let s = connect_timeout_with(&addr, Duration::from_secs(5), |fd| {
                // Before the handshake: not connected yet.
                // SAFETY: a zeroed sockaddr_storage of its own length.
                let mut peer: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
                let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                // SAFETY: peer and len are valid for writes of len bytes.
                let r = unsafe {
                    libc::getpeername(
                        fd.as_raw_fd(),
                        &mut peer as *mut libc::sockaddr_storage as *mut libc::sockaddr,
                        &mut len,
                    )
                };
                assert_eq!(r, -1);
                assert_eq!(
                    io::Error::last_os_error().raw_os_error(),
                    Some(libc::ENOTCONN)
                );
                set_congestion(fd, &name)
            })
            .unwrap();
            assert_eq!(congestion(s.as_fd()).unwrap(), name);
            let (_peer, _) = listener.accept().unwrap();
        }
    }

    #[test]
    fn an_accepted_connection_inherits_the_listeners_algorithm() {
        // Every settable name, so at least one differs from the system's
        // default wherever more than one may be set.
        for name in settable() {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            set_congestion(listener.as_fd(), &name).unwrap();
            let _c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (accepted, _) = listener.accept().unwrap();
            assert_eq!(congestion(accepted.as_fd()).unwrap(), name, "inherited");
        }
    }

    #[test]
    fn an_unknown_algorithm_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let e = set_congestion(listener.as_fd(), "no-such-cc").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
    }

    #[test]
    fn a_connect_reports_a_refusal_and_the_error_of_before() {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let e = connect_timeout_with(&addr, Duration::from_secs(5), |_| Ok(())).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        let e = connect_timeout_with(&addr, Duration::from_secs(5), |_| {
            Err(io::Error::other("before failed"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "before failed");
        let e = connect_timeout_with(&addr, Duration::ZERO, |_| Ok(())).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_connect_over_ipv6_loopback_works_where_it_exists() {
        let Ok(listener) = TcpListener::bind("[::1]:0") else {
            return; // no IPv6 on this machine
        };
        let addr = listener.local_addr().unwrap();
        let s = connect_timeout_with(&addr, Duration::from_secs(5), |fd| {
            set_congestion(fd, "reno")
        })
        .unwrap();
        assert_eq!(s.peer_addr().unwrap(), addr);
        assert_eq!(congestion(s.as_fd()).unwrap(), "reno");
    }

    #[test]
    fn the_system_default_is_one_of_the_available() {
        let def = system_congestion().expect("tcp_congestion_control");
        assert!(available_congestion().contains(&def), "{def}");
    }
}
