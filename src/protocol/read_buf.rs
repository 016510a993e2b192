//! The read buffer both ends of a connection parse from: bytes read but not
//! yet consumed, refilled from any `Read`.
//!
//! It only moves bytes; what to do when it is full (grow, or refuse) is the
//! caller's choice, so it never grows by itself.

use std::io::{self, Read};

/// `buf[start..end]` has been read and not yet consumed.
pub struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// `pending()[..scanned]` is known to hold no `scanned_for` byte: a
    /// search resumes there instead of reading those bytes again.
    scanned: usize,
    scanned_for: u8,
}

impl ReadBuf {
    /// An empty buffer of `capacity` bytes.
    pub fn new(capacity: usize) -> ReadBuf {
        ReadBuf::with_pending(Vec::new(), capacity)
    }

    /// A buffer that starts with `pending` (bytes already read elsewhere),
    /// with room for at least `capacity` bytes in all.
    pub fn with_pending(pending: Vec<u8>, capacity: usize) -> ReadBuf {
        let mut buf = pending;
        let end = buf.len();
        if buf.len() < capacity {
            buf.resize(capacity, 0);
        }
        ReadBuf {
            buf,
            start: 0,
            end,
            scanned: 0,
            scanned_for: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Grows the capacity to at least `capacity` bytes (the caller's choice,
    /// like [`grow`](Self::grow)).
    pub fn grow_to(&mut self, capacity: usize) {
        if self.buf.len() < capacity {
            self.buf.resize(capacity, 0);
        }
    }

    /// The bytes read and not yet consumed.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Offset in [`pending`](Self::pending) of the first `byte`, scanning each
    /// pending byte at most once across calls (for the same `byte`).
    pub fn find_byte(&mut self, byte: u8) -> Option<usize> {
        if byte != self.scanned_for {
            self.scanned_for = byte;
            self.scanned = 0;
        }
        let p = &self.buf[self.start..self.end];
        match memchr::memchr(byte, &p[self.scanned..]) {
            Some(i) => {
                self.scanned += i;
                Some(self.scanned)
            }
            None => {
                self.scanned = p.len();
                None
            }
        }
    }

    pub fn consume(&mut self, n: usize) {
        self.scanned = self.scanned.saturating_sub(n);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Makes room after the pending bytes, moving them to the front if the
    /// tail is full; false if the pending bytes fill the whole buffer.
    pub fn make_room(&mut self) -> bool {
        if self.start > 0 && self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.end < self.buf.len()
    }

    /// Room after the pending bytes: the most the next read can take.
    pub fn room(&self) -> usize {
        self.buf.len() - self.end
    }

    /// Doubles the capacity.
    pub fn grow(&mut self) {
        let len = self.buf.len();
        self.buf.resize(len * 2, 0);
    }

    /// One read from `src` into the room after the pending bytes (call
    /// [`make_room`](Self::make_room) first), retried if interrupted. Returns
    /// the bytes read: 0 is the end of the stream.
    pub fn fill_from(&mut self, src: &mut impl Read) -> io::Result<usize> {
        debug_assert!(self.end < self.buf.len(), "fill_from without room");
        loop {
            match src.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReadBuf;

    #[test]
    fn growing_keeps_the_pending_bytes_and_never_shrinks() {
        let mut b = ReadBuf::with_pending(b"ab\ncd".to_vec(), 8);
        b.consume(1);
        assert_eq!(b.find_byte(b'\n'), Some(1));
        b.grow_to(64);
        assert_eq!(b.capacity(), 64);
        assert_eq!(b.pending(), b"b\ncd");
        assert_eq!(
            b.room(),
            64 - 5,
            "room after the bytes read, where they are"
        );
        assert_eq!(b.find_byte(b'\n'), Some(1));
        b.grow_to(16);
        assert_eq!(b.capacity(), 64, "a smaller size is no change");
        assert_eq!(b.pending(), b"b\ncd");
    }

    #[test]
    fn a_search_resumes_where_the_last_one_stopped() {
        let mut b = ReadBuf::with_pending(b"abc".to_vec(), 16);
        assert_eq!(b.find_byte(b'\n'), None);
        assert_eq!(b.fill_from(&mut &b"d\nef\n"[..]).unwrap(), 5);
        assert_eq!(b.find_byte(b'\n'), Some(4));
        assert_eq!(b.find_byte(b'\n'), Some(4), "found again, not skipped");
        b.consume(5);
        assert_eq!(b.find_byte(b'\n'), Some(2));
        assert_eq!(b.find_byte(b'e'), Some(0), "another byte starts afresh");
    }

    #[test]
    fn pending_bytes_move_to_the_front_only_when_the_tail_is_full() {
        let mut b = ReadBuf::with_pending(b"abcd".to_vec(), 4);
        assert!(!b.make_room(), "full from the start");
        b.consume(3);
        assert!(b.make_room());
        assert_eq!(b.pending(), b"d");
        assert_eq!(b.fill_from(&mut &b"efgh"[..]).unwrap(), 3);
        assert_eq!(b.pending(), b"defg");
        b.grow();
        assert_eq!(b.capacity(), 8);
        assert_eq!(b.fill_from(&mut &b"h"[..]).unwrap(), 1);
        assert_eq!(b.pending(), b"defgh");
        assert_eq!(b.fill_from(&mut &b""[..]).unwrap(), 0, "end of stream");
        b.consume(5);
        assert!(b.pending().is_empty());
    }
}
