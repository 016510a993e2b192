//! Requests without a line end (PROTOCOL.md, "Unterminated requests"): what
//! becomes of the bytes a client sent without `\n` once it has been quiet for
//! the unterminated wait, and how those bytes arrived (in one burst of reads
//! or more), which decides whether a request that changes the store may be
//! taken that way.
//!
//! Pure logic: the event loop keeps the timer and the reads; this module never
//! touches a socket and never makes a half-sent line a request unless it
//! parses as a complete one.

use super::request::{parse_request, ParseError, Request};

/// The ERROR of an unterminated request that may not be served that way.
pub const REFUSED: &str = "unterminated request: end it with \\n";

/// What to do with a quiet connection's pending bytes (no `\n` among them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// They are a complete request: serve it as if it ended there.
    Serve,
    /// A complete request that changes the store, split over more than one
    /// burst: a stall may have cut it short, so answer [`REFUSED`] and drop it.
    Refuse,
    /// Not a complete request (yet): wait for more, under the request timeout.
    Wait,
}

/// The verdict on `pending`, a line without its `\n`; `one_burst` says whether
/// all of it arrived in one burst of reads (see [`Burst`]).
///
/// `LIST`, `STATS` and `GET` are served however they came: a cut name reads
/// nothing it should not. `DELETE` and an inline upload are served only when
/// they came in one burst; an upload that gives its length is complete when
/// the length matches, however many bursts it took, and is answered
/// `length mismatch` once more base64 came than it declared, or all of it in
/// one burst. A streamed `UPLOAD` needs its line ends.
pub fn judge(pending: &[u8], one_burst: bool) -> Verdict {
    let once = if one_burst {
        Verdict::Serve
    } else {
        Verdict::Refuse
    };
    match parse_request(pending) {
        Ok(Request::List | Request::Stats | Request::Get(_)) => Verdict::Serve,
        Ok(Request::UploadInline { sized: true, .. }) => Verdict::Serve,
        Ok(Request::Delete(_) | Request::UploadInline { sized: false, .. }) => once,
        Err(ParseError::LengthMismatch { declared, actual }) => {
            if actual > declared || one_burst {
                Verdict::Serve
            } else {
                Verdict::Wait
            }
        }
        Ok(Request::Upload(_) | Request::StrayEndUpload) | Err(_) => Verdict::Wait,
    }
}

/// How the last bytes read from a connection arrived: the size of the latest
/// burst, everything the socket held at once (as the old server's one
/// `recv()` with a large buffer took it). A read that fills all the room it
/// was given may have left more behind, so the next read goes on with the same
/// burst; a shorter read, or one that would block, ends it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Burst {
    bytes: usize,
    open: bool,
}

impl Burst {
    /// A burst of `bytes` that has ended (handed over with a connection).
    pub fn ended(bytes: usize) -> Burst {
        Burst { bytes, open: false }
    }

    /// `n` bytes came in one read that had room for `room`.
    pub fn read(&mut self, n: usize, room: usize) {
        self.bytes = if self.open { self.bytes + n } else { n };
        self.open = n >= room;
    }

    /// The socket had nothing more: the next read starts a new burst.
    pub fn drained(&mut self) {
        self.open = false;
    }

    /// The size of the latest burst.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Did the last `pending` bytes read all come in the latest burst?
    pub fn holds(&self, pending: usize) -> bool {
        pending <= self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    #[test]
    fn reads_only_lists_and_gets_are_served_however_they_came() {
        for line in [
            &b"LIST"[..],
            b"list\r",
            b"STATS",
            b"GET a.txt",
            b"GET \"a b\"",
        ] {
            assert_eq!(judge(line, true), Serve, "{line:?}");
            assert_eq!(judge(line, false), Serve, "{line:?}");
        }
    }

    #[test]
    fn deletes_and_inline_uploads_are_served_only_from_one_burst() {
        for line in [
            &b"DELETE a.txt"[..],
            b"UPLOAD a.bin QUJD",
            b"UPLOAD a.bin QUJ",
        ] {
            assert_eq!(judge(line, true), Serve, "{line:?}");
            assert_eq!(judge(line, false), Refuse, "{line:?}");
        }
    }

    #[test]
    fn a_sized_upload_is_complete_when_its_length_matches() {
        assert_eq!(judge(b"UPLOAD a.bin 8 aGVsbG8=", false), Serve);
        assert_eq!(judge(b"UPLOAD a.bin 8 aGVsbG8=", true), Serve);
        // Cut short: more may come, unless it all came at once.
        assert_eq!(judge(b"UPLOAD a.bin 8 aGVs", false), Wait);
        assert_eq!(judge(b"UPLOAD a.bin 8 aGVs", true), Serve);
        // Longer than it says: it cannot match any more.
        assert_eq!(judge(b"UPLOAD a.bin 4 aGVsbG8=", false), Serve);
    }

    #[test]
    fn anything_short_of_a_complete_request_waits() {
        for line in [
            &b""[..],
            b"LI",
            b"GET",
            b"GET ",
            b"GET \"a b",
            b"DELETE",
            b"UPLOAD",
            b"UPLOAD a.bin",
            b"UPLOAD a.bin ",
            b"ENDUPLOAD",
            b"LIST x",
            b"FOO",
            b"GET \xff",
        ] {
            assert_eq!(judge(line, true), Wait, "{line:?}");
            assert_eq!(judge(line, false), Wait, "{line:?}");
        }
    }

    #[test]
    fn a_burst_goes_on_while_reads_fill_their_room() {
        let mut b = Burst::default();
        b.read(16, 16);
        b.read(16, 16);
        b.read(3, 16);
        assert_eq!(b.bytes(), 35);
        assert!(b.holds(35) && !b.holds(36));
        // A short read ended it: the next read starts another.
        b.read(5, 16);
        assert_eq!(b.bytes(), 5);
        b.read(16, 16);
        b.drained();
        b.read(2, 16);
        assert_eq!(b.bytes(), 2);
        assert_eq!(Burst::ended(7).bytes(), 7);
        let mut c = Burst::ended(7);
        c.read(1, 16);
        assert_eq!(c.bytes(), 1, "an ended burst is not continued");
    }
}
