//! Which TCP congestion control our sockets use (`--tcp-congestion`).
//!
//! Over loopback nothing is lost and a round trip takes microseconds, so a
//! congestion control has nothing to control. An algorithm that paces
//! (BBR: the default on some kernels) still sends each packet from a timer,
//! and that costs the sender: on the 2-core machine this project is measured
//! on, the server used 0.24 CPU-seconds for five 100 MB downloads with BBR
//! and 0.15 with `reno` (README, Measured). `auto`, the default, sets `reno`
//! (built into every kernel, allowed to every user, never pacing) where the
//! connection is over loopback, and leaves the system's default elsewhere,
//! where pacing can matter. `system` never sets one; a name sets that one.
//!
//! A server sets it on its listening socket (every accepted connection
//! inherits it), a client before it connects: an algorithm that paces
//! starts doing so with the connection, and setting another afterwards does
//! not stop it. So `auto` decides by the server's listen address (a server
//! on 0.0.0.0 keeps the system's default, loopback clients included) and by
//! the address a client connects to. The sweep's own short connections
//! between measurements (readiness checks, STATS, the DELETEs of uploads)
//! always use `auto`.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::str::FromStr;
use std::time::Duration;

use crate::sys::tcp as sys;

/// What `auto` sets over loopback.
pub const LOOPBACK: &str = "reno";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Congestion {
    /// [`LOOPBACK`] over loopback, the system's default elsewhere.
    #[default]
    Auto,
    /// The system's default everywhere (`net.ipv4.tcp_congestion_control`).
    System,
    /// This algorithm on every connection.
    Named(String),
}

impl FromStr for Congestion {
    type Err = String;

    fn from_str(s: &str) -> Result<Congestion, String> {
        match s {
            "auto" => Ok(Congestion::Auto),
            "system" => Ok(Congestion::System),
            "" => Err("an empty name (auto, system or an algorithm such as reno)".into()),
            n if n.len() >= sys::CONGESTION_NAME_MAX => Err(format!(
                "'{n}' is longer than an algorithm's name can be ({} bytes)",
                sys::CONGESTION_NAME_MAX - 1
            )),
            n if !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                Err(format!(
                    "'{n}' is not an algorithm's name (letters, digits, _ and -)"
                ))
            }
            n => Ok(Congestion::Named(n.into())),
        }
    }
}

impl fmt::Display for Congestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Congestion::Auto => f.write_str("auto"),
            Congestion::System => f.write_str("system"),
            Congestion::Named(n) => f.write_str(n),
        }
    }
}

impl Congestion {
    /// The algorithm to set on a connection over `ip` (the server's listen
    /// address, or the address a client connects to); `None`: the system's.
    pub fn for_ip(&self, ip: IpAddr) -> Option<&str> {
        match self {
            Congestion::Auto => ip.is_loopback().then_some(LOOPBACK),
            Congestion::System => None,
            Congestion::Named(n) => Some(n),
        }
    }

    /// Sets on `fd` what a connection over `ip` uses (nothing for the
    /// system's). `auto` is a preference: where the kernel refuses it, the
    /// system's default stays and the connection goes on.
    pub fn apply(&self, fd: BorrowedFd<'_>, ip: IpAddr) -> io::Result<()> {
        match (self, self.for_ip(ip)) {
            (_, None) => Ok(()),
            (Congestion::Auto, Some(name)) => {
                let _ = sys::set_congestion(fd, name);
                Ok(())
            }
            (_, Some(name)) => sys::set_congestion(fd, name),
        }
    }

    /// Whether this process may set the algorithm named (`auto` and `system`
    /// always pass): the error says why not, and what can be set.
    pub fn check(&self) -> Result<(), String> {
        let Congestion::Named(name) = self else {
            return Ok(());
        };
        settable(name).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!(
                "'{name}' is not an algorithm this kernel has (it has: {})",
                sys::available_congestion().join(" ")
            ),
            io::ErrorKind::PermissionDenied => format!(
                "'{name}' is not allowed for this user (allowed: {}; root may set any of: {})",
                sys::allowed_congestion().join(" "),
                sys::available_congestion().join(" ")
            ),
            _ => format!("'{name}': {e}"),
        })
    }

    /// What a connection over `ip` uses, in words: `reno (auto, over
    /// loopback)`, `bbr (the system's default)`, `cubic`.
    pub fn describe(&self, ip: IpAddr) -> String {
        match (self, self.for_ip(ip)) {
            (Congestion::Named(n), _) => n.clone(),
            (_, Some(n)) => match settable(n) {
                Ok(()) => format!("{n} (auto, over loopback)"),
                Err(e) => format!(
                    "{} (the system's default: auto's {n} could not be set: {e})",
                    system_default()
                ),
            },
            (_, None) => format!("{} (the system's default)", system_default()),
        }
    }

    /// [`Congestion::describe`] of a connection made on another host
    /// (`whose`: `Some("the server host's")`), whose default is its own.
    pub fn describe_at(&self, ip: IpAddr, whose: Option<&str>) -> String {
        match (whose, self.for_ip(ip)) {
            (Some(whose), None) => format!("{whose} default"),
            _ => self.describe(ip),
        }
    }
}

/// Whether this process can set algorithm `name` (tried on a new socket).
fn settable(name: &str) -> io::Result<()> {
    let probe = SocketAddr::from(([127, 0, 0, 1], 0));
    let fd = sys::tcp_socket(&probe)?;
    sys::set_congestion(fd.as_fd(), name)
}

/// The system's default algorithm, or `unknown` where it cannot be read.
pub fn system_default() -> String {
    sys::system_congestion().unwrap_or_else(|| "unknown".into())
}

/// The algorithm a connected socket uses.
pub fn of(fd: BorrowedFd<'_>) -> io::Result<String> {
    sys::congestion(fd)
}

/// Connects to `addr` within `timeout` with the algorithm `cc` says for it.
pub fn connect(addr: &SocketAddr, timeout: Duration, cc: &Congestion) -> io::Result<TcpStream> {
    sys::connect_timeout_with(addr, timeout, |fd| cc.apply(fd, addr.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn names_are_read_and_written_back() {
        for s in [
            "auto", "system", "reno", "bbr", "cubic", "dctcp", "bpf_cc-1",
        ] {
            assert_eq!(s.parse::<Congestion>().unwrap().to_string(), s);
        }
        assert_eq!("auto".parse(), Ok(Congestion::Auto));
        assert_eq!(Congestion::default(), Congestion::Auto);
        for bad in [
            "",
            "re no",
            "reno;",
            "a/b",
            "sixteen-letters!",
            "abcdefghijklmnop",
        ] {
            assert!(bad.parse::<Congestion>().is_err(), "{bad:?}");
        }
        // Fifteen bytes is the longest name the kernel keeps.
        assert!("abcdefghijklmno".parse::<Congestion>().is_ok());
    }

    #[test]
    fn auto_sets_reno_over_loopback_only() {
        let lo4: IpAddr = "127.0.0.1".parse().unwrap();
        let lo8: IpAddr = "127.3.2.1".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        let net: IpAddr = "198.18.0.2".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let auto = Congestion::Auto;
        for ip in [lo4, lo8, lo6] {
            assert_eq!(auto.for_ip(ip), Some("reno"), "{ip}");
            assert_eq!(auto.describe(ip), "reno (auto, over loopback)");
        }
        for ip in [net, any] {
            assert_eq!(auto.for_ip(ip), None, "{ip}");
            assert!(auto.describe(ip).ends_with("(the system's default)"));
        }
        let sys = Congestion::System;
        assert_eq!(sys.for_ip(lo4), None);
        assert_eq!(
            sys.describe(lo4),
            format!("{} (the system's default)", system_default())
        );
        let named = Congestion::Named("bbr".into());
        assert_eq!(named.for_ip(lo4), Some("bbr"));
        assert_eq!(named.for_ip(net), Some("bbr"));
        assert_eq!(named.describe(net), "bbr");
    }

    #[test]
    fn a_client_connects_with_what_the_setting_says() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let s = connect(&addr, Duration::from_secs(5), &Congestion::Auto).unwrap();
        assert_eq!(of(s.as_fd()).unwrap(), "reno");
        let s = connect(&addr, Duration::from_secs(5), &Congestion::System).unwrap();
        assert_eq!(of(s.as_fd()).unwrap(), system_default());
    }

    #[test]
    fn check_passes_what_can_be_set_and_says_why_not_otherwise() {
        assert_eq!(Congestion::Auto.check(), Ok(()));
        assert_eq!(Congestion::System.check(), Ok(()));
        assert_eq!(Congestion::Named("reno".into()).check(), Ok(()));
        let e = Congestion::Named("no-such-cc".into()).check().unwrap_err();
        assert!(
            e.starts_with("'no-such-cc' is not an algorithm this kernel has (it has: "),
            "{e}"
        );
        assert!(e.contains("reno"), "{e}");
    }
}
