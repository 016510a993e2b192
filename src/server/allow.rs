//! Who may connect: the networks of `serve --allow`, and the test of a
//! peer's address against them.
//!
//! A server that listens beyond loopback is reachable by everyone on that
//! network, and the protocol deletes files; the acceptor closes a connection
//! from outside these networks before reading a byte of it. This module only
//! parses and matches addresses: it never resolves a name, and a text that is
//! not exactly an address or a network is refused, never guessed at.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One network: an address with no bit set past its prefix, and the prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// `ip` with every bit past `prefix` cleared.
fn network(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(prefix))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(prefix))),
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

impl Cidr {
    /// `ADDR/PREFIX`, or a plain address (a network of one: /32 or /128).
    /// The error names the text.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?}: not an IPv4 or IPv6 address"))?;
        let max = max_prefix(ip);
        let prefix = match prefix {
            None => max,
            // Digits only: `u8::from_str` would also take "+8".
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                match p.parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => return Err(format!("{s:?}: the prefix must be 0 to {max}")),
                }
            }
            Some(_) => return Err(format!("{s:?}: the prefix must be 0 to {max}")),
        };
        let net = network(ip, prefix);
        if net != ip {
            // 198.18.0.5/24 may mean the host or the network: say which is meant.
            return Err(format!(
                "{s:?}: bits are set past the prefix (the network is {net}/{prefix}, the host {ip})"
            ));
        }
        Ok(Cidr { net, prefix })
    }

    /// Whether `ip` is in this network (only an address of its own family is).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.net.is_ipv4() && network(ip, self.prefix) == self.net
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The networks whose clients a server accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList(Vec<Cidr>);

impl AllowList {
    /// Loopback only (127.0.0.0/8 and ::1): the default of a server on loopback.
    pub fn loopback() -> AllowList {
        AllowList(vec![
            Cidr {
                net: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                prefix: 8,
            },
            Cidr {
                net: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ])
    }

    /// `CIDR[,CIDR...]` (spaces around each allowed). The error names the
    /// faulty part.
    pub fn parse(list: &str) -> Result<AllowList, String> {
        list.split(',')
            .map(|part| Cidr::parse(part.trim()))
            .collect::<Result<Vec<Cidr>, String>>()
            .map(AllowList)
    }

    /// Whether a client at `peer` may connect. A listener on `::` sees an
    /// IPv4 client as `::ffff:a.b.c.d`: an IPv4 address and its mapped IPv6
    /// form are one client, matched alike by a network written either way.
    pub fn allows(&self, peer: IpAddr) -> bool {
        let plain = peer.to_canonical();
        let mapped = match plain {
            IpAddr::V4(a) => IpAddr::V6(a.to_ipv6_mapped()),
            v6 => v6,
        };
        self.0
            .iter()
            .any(|c| c.contains(plain) || c.contains(mapped))
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn allows(list: &str, peer: &str) -> bool {
        AllowList::parse(list).unwrap().allows(ip(peer))
    }

    #[test]
    fn a_plain_address_is_a_network_of_one() {
        assert_eq!(
            Cidr::parse("198.18.0.2").unwrap().to_string(),
            "198.18.0.2/32"
        );
        assert_eq!(Cidr::parse("fd00::7").unwrap().to_string(), "fd00::7/128");
        assert!(allows("198.18.0.2", "198.18.0.2"));
        assert!(!allows("198.18.0.2", "198.18.0.3"));
        assert!(allows("fd00::7", "fd00::7"));
        assert!(!allows("fd00::7", "fd00::6"));
    }

    #[test]
    fn v4_networks_match_their_addresses_only_up_to_their_edges() {
        let l = "198.18.0.0/24";
        for inside in ["198.18.0.0", "198.18.0.1", "198.18.0.255"] {
            assert!(allows(l, inside), "{inside}");
        }
        for outside in ["198.18.1.0", "198.17.255.255", "198.19.0.1", "10.0.0.1"] {
            assert!(!allows(l, outside), "{outside}");
        }
        // /31 and /1: the bit just past the prefix is not looked at, the last one in it is.
        assert!(allows("10.0.0.2/31", "10.0.0.3"));
        assert!(!allows("10.0.0.2/31", "10.0.0.4"));
        assert!(allows("128.0.0.0/1", "255.255.255.255"));
        assert!(!allows("128.0.0.0/1", "127.255.255.255"));
        assert!(allows("198.18.0.2/32", "198.18.0.2"));
        assert!(!allows("198.18.0.2/32", "198.18.0.3"));
    }

    #[test]
    fn v6_networks_match_their_addresses_only_up_to_their_edges() {
        let l = "2001:db8::/32";
        assert!(allows(l, "2001:db8::"));
        assert!(allows(l, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
        assert!(!allows(l, "2001:db9::"));
        assert!(!allows(l, "2001:db7:ffff::1"));
        assert!(allows("fe80::/64", "fe80::1:2:3:4"));
        assert!(!allows("fe80::/64", "fe80:0:0:1::"));
        assert!(allows("::1/128", "::1"));
        assert!(!allows("::1/128", "::2"));
        assert!(allows("fd00::/127", "fd00::1"));
        assert!(!allows("fd00::/127", "fd00::2"));
    }

    #[test]
    fn zero_prefixes_take_their_whole_family() {
        assert!(allows("0.0.0.0/0", "255.255.255.255"));
        assert!(allows("0.0.0.0/0", "0.0.0.0"));
        assert!(allows("0.0.0.0/0", "::ffff:10.1.2.3"));
        assert!(!allows("0.0.0.0/0", "::1"));
        assert!(!allows("0.0.0.0/0", "2001:db8::1"));
        assert!(allows("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
        assert!(allows("::/0", "::"));
        // Every IPv4 address has its mapped IPv6 form, so ::/0 is everyone.
        assert!(allows("::/0", "127.0.0.1"));
    }

    #[test]
    fn a_mapped_v4_peer_is_matched_as_its_v4_address_and_as_itself() {
        // What a listener on `::` sees of a client at 198.18.0.2.
        let mapped = "::ffff:198.18.0.2";
        assert!(allows("198.18.0.2/32", mapped));
        assert!(allows("198.18.0.0/24", mapped));
        assert!(!allows("198.18.0.3/32", mapped));
        assert!(!allows("198.18.1.0/24", mapped));
        assert!(allows("::ffff:198.18.0.0/120", mapped));
        assert!(allows("::ffff:198.18.0.0/120", "198.18.0.9"));
        assert!(!allows("::ffff:198.18.0.0/120", "198.18.1.9"));
        // A v6 network that is not the mapped range takes no v4 client.
        assert!(!allows("::/96", "198.18.0.2"));
        assert!(!allows("2001:db8::/32", mapped));
        // The loopback default takes a mapped 127.0.0.1 (a client of `::`).
        assert!(AllowList::loopback().allows(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn the_loopback_default_is_127_slash_8_and_the_v6_loopback() {
        let l = AllowList::loopback();
        assert_eq!(l.to_string(), "127.0.0.0/8,::1/128");
        for yes in ["127.0.0.1", "127.255.0.9", "::1"] {
            assert!(l.allows(ip(yes)), "{yes}");
        }
        for no in ["128.0.0.1", "126.255.255.255", "198.18.0.2", "::2", "::"] {
            assert!(!l.allows(ip(no)), "{no}");
        }
    }

    #[test]
    fn a_list_takes_any_of_its_networks_and_writes_back_as_given() {
        let l = AllowList::parse("198.18.0.2/32, 10.0.0.0/8 ,fd00::/8").unwrap();
        assert_eq!(l.to_string(), "198.18.0.2/32,10.0.0.0/8,fd00::/8");
        for yes in ["198.18.0.2", "10.9.8.7", "fd12::1", "::ffff:10.0.0.1"] {
            assert!(l.allows(ip(yes)), "{yes}");
        }
        for no in ["198.18.0.3", "11.0.0.1", "fe80::1", "127.0.0.1", "::1"] {
            assert!(!l.allows(ip(no)), "{no}");
        }
    }

    #[test]
    fn a_bad_network_is_refused_naming_it() {
        for (bad, why) in [
            ("", "\"\": not an IPv4 or IPv6 address"),
            ("localhost", "\"localhost\": not an IPv4 or IPv6 address"),
            ("198.18.0", "\"198.18.0\": not an IPv4 or IPv6 address"),
            ("198.18.0.256/32", "\"198.18.0.256/32\": not an IPv4 or IPv6 address"),
            ("[::1]", "\"[::1]\": not an IPv4 or IPv6 address"),
            ("198.18.0.0/33", "\"198.18.0.0/33\": the prefix must be 0 to 32"),
            ("::/129", "\"::/129\": the prefix must be 0 to 128"),
            ("10.0.0.0/", "\"10.0.0.0/\": the prefix must be 0 to 32"),
            ("10.0.0.0/+8", "\"10.0.0.0/+8\": the prefix must be 0 to 32"),
            ("10.0.0.0/-1", "\"10.0.0.0/-1\": the prefix must be 0 to 32"),
            ("10.0.0.0/0008", "\"10.0.0.0/0008\": the prefix must be 0 to 32"),
            ("10.0.0.0/8/8", "\"10.0.0.0/8/8\": the prefix must be 0 to 32"),
            (
                "198.18.0.5/24",
                "\"198.18.0.5/24\": bits are set past the prefix (the network is 198.18.0.0/24, the host 198.18.0.5)",
            ),
            (
                "fd00::1/64",
                "\"fd00::1/64\": bits are set past the prefix (the network is fd00::/64, the host fd00::1)",
            ),
        ] {
            assert_eq!(Cidr::parse(bad).unwrap_err(), why, "{bad:?}");
        }
        assert_eq!(
            AllowList::parse("198.18.0.2/32,,10.0.0.0/8").unwrap_err(),
            "\"\": not an IPv4 or IPv6 address"
        );
        assert_eq!(
            AllowList::parse("198.18.0.2/32,10.0.0.1/8").unwrap_err(),
            "\"10.0.0.1/8\": bits are set past the prefix (the network is 10.0.0.0/8, the host 10.0.0.1)"
        );
        // Leading zeros that still read as a prefix are fine.
        assert_eq!(
            Cidr::parse("10.0.0.0/08").unwrap().to_string(),
            "10.0.0.0/8"
        );
    }
}
