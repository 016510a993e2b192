//! A download's sink that compares what arrives with what was expected, read
//! from any `Read` as it streams (the content that was uploaded, a local
//! file): the offset of the first wrong byte, or both lengths, and no hash.
//! It holds one piece of the expected content at a time, never the whole.

use std::io::{self, Read, Write};

use crate::protocol::read_full;

pub(super) struct Comparer<'a> {
    expected: &'a mut dyn Read,
    /// Bytes received so far.
    pos: u64,
    /// The expected bytes for the piece being compared.
    want: Vec<u8>,
    /// Offset of the first received byte that differs from the expected one.
    first_mismatch: Option<u64>,
    /// The expected content's length, when it ended before the download did.
    expected_len: Option<u64>,
    /// Reading the expected content failed (not the download's fault).
    source_error: Option<io::Error>,
}

impl<'a> Comparer<'a> {
    pub(super) fn new(expected: &'a mut dyn Read) -> Comparer<'a> {
        Comparer {
            expected,
            pos: 0,
            want: Vec::new(),
            first_mismatch: None,
            expected_len: None,
            source_error: None,
        }
    }

    /// The error met reading the expected content, if any.
    pub(super) fn take_source_error(&mut self) -> Option<io::Error> {
        self.source_error.take()
    }

    /// Once the download is complete: Ok when it is exactly the expected
    /// content, the difference otherwise. Reads what is left of the expected
    /// content to tell its length when the download was shorter.
    pub(super) fn verdict(&mut self) -> io::Result<Result<(), String>> {
        let got = self.pos;
        Ok(match (self.first_mismatch, self.expected_len) {
            (Some(_), Some(len)) => Err(format!("got {got} bytes, expected {len}")),
            (Some(at), None) => Err(format!("content differs from byte {at} on")),
            (None, _) => match io::copy(&mut self.expected, &mut io::sink())? {
                0 => Ok(()),
                more => Err(format!("got {got} bytes, expected {}", got + more)),
            },
        })
    }
}

impl Write for Comparer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Past the first difference only the count matters.
        if self.first_mismatch.is_none() {
            self.want.resize(buf.len(), 0);
            let n = match read_full(self.expected, &mut self.want) {
                Ok(n) => n,
                Err(e) => {
                    let kind = e.kind();
                    self.source_error = Some(e);
                    return Err(io::Error::new(kind, "reading the expected content failed"));
                }
            };
            if self.want[..n] != buf[..n] {
                let i = self.want.iter().zip(buf).position(|(a, b)| a != b);
                self.first_mismatch = Some(self.pos + i.unwrap_or(n) as u64);
            } else if n < buf.len() {
                self.first_mismatch = Some(self.pos + n as u64);
                self.expected_len = Some(self.pos + n as u64);
            }
        }
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `got` in pieces of `piece` bytes and returns the verdict.
    fn compare(expected: &[u8], got: &[u8], piece: usize) -> Result<(), String> {
        let mut src = expected;
        let mut c = Comparer::new(&mut src);
        for p in got.chunks(piece) {
            c.write_all(p).unwrap();
        }
        c.verdict().unwrap()
    }

    #[test]
    fn the_first_wrong_byte_or_both_lengths() {
        let expected: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        for piece in [1, 7, 64, 1000] {
            assert_eq!(compare(&expected, &expected, piece), Ok(()));
            let mut wrong = expected.clone();
            wrong[500] ^= 1;
            wrong[900] ^= 1;
            assert_eq!(
                compare(&expected, &wrong, piece),
                Err("content differs from byte 500 on".into())
            );
            assert_eq!(
                compare(&expected, &expected[..999], piece),
                Err("got 999 bytes, expected 1000".into())
            );
            let mut longer = expected.clone();
            longer.extend_from_slice(b"xy");
            assert_eq!(
                compare(&expected, &longer, piece),
                Err("got 1002 bytes, expected 1000".into())
            );
        }
        assert_eq!(compare(b"", b"", 1), Ok(()));
        assert_eq!(compare(b"", b"a", 1), Err("got 1 bytes, expected 0".into()));
    }
}
