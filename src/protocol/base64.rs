//! Streaming base64 (standard alphabet, padded), in bounded memory.
//!
//! [`LineDecoder`] decodes one base64 line fed in arbitrary pieces: it keeps at
//! most three pending characters, rejects any byte outside the alphabet,
//! padding anywhere but at the end of the line, and non-canonical trailing
//! bits. The bulk of a line goes through `base64-simd` (which picks its
//! code path at run time); the `base64` crate decodes the odd quad.
//! [`encode_chunk`] encodes a chunk whose length is a multiple of 3
//! (or the last chunk) so that chunks concatenate into one valid base64 text.
//!
//! On a CPU with AVX-512 VBMI the bulk goes through [`super::vbmi`] first
//! (faster than `base64-simd`'s AVX2 code), the rest through `base64-simd`:
//! [`Engine`] says which, chosen once per process (`FSBENCH_BASE64=simd`
//! turns the VBMI path off, for comparisons).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use base64_simd::STANDARD as SIMD;

use super::vbmi;

/// Which code does the bulk of the encoding and decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `base64-simd` alone (AVX2, SSE, NEON or scalar, picked at run time).
    Simd,
    /// AVX-512 VBMI blocks ([`super::vbmi`]), `base64-simd` for the rest.
    Vbmi,
}

impl Engine {
    /// The fastest engine this CPU runs, unless `FSBENCH_BASE64=simd` says
    /// otherwise; found once per process.
    pub fn best() -> Engine {
        static BEST: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            let off = std::env::var("FSBENCH_BASE64").is_ok_and(|v| v == "simd");
            if !off && vbmi::available() {
                Engine::Vbmi
            } else {
                Engine::Simd
            }
        })
    }

    /// Whether this CPU runs the engine.
    pub fn available(self) -> bool {
        match self {
            Engine::Simd => true,
            Engine::Vbmi => vbmi::available(),
        }
    }

    /// How the metadata and `--version`-like reports name it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Simd => "base64-simd",
            Engine::Vbmi => "avx512-vbmi",
        }
    }

    /// Appends the base64 of `chunk` to `out` (see [`encode_chunk`]).
    pub fn encode(self, chunk: &[u8], out: &mut Vec<u8>) {
        let done = match self {
            Engine::Simd => 0,
            Engine::Vbmi => vbmi::encode_blocks(chunk, out),
        };
        SIMD.encode_append(&chunk[done..], out);
    }

    /// Decodes whole quads without padding; on any fault `out` is left as
    /// it was and the error says nothing more (the byte path names it).
    fn decode_run(self, run: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
        let len = out.len();
        let done = match self {
            Engine::Simd => 0,
            Engine::Vbmi => vbmi::decode_blocks(run, out).ok_or(())?,
        };
        if SIMD.decode_append(&run[done..], out).is_err() {
            out.truncate(len);
            return Err(());
        }
        Ok(())
    }
}

/// Why a base64 line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum B64Error {
    BadChar(u8),
    PaddingMidLine,
    BadPadding,
    BadLength,
}

impl std::fmt::Display for B64Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            B64Error::BadChar(b) => {
                write!(f, "invalid base64: byte 0x{b:02x} is not in the alphabet")
            }
            B64Error::PaddingMidLine => {
                f.write_str("invalid base64: padding in the middle of a line")
            }
            B64Error::BadPadding => f.write_str("invalid base64: bad padding"),
            B64Error::BadLength => {
                f.write_str("invalid base64: line length is not a multiple of 4")
            }
        }
    }
}

/// `ALPHABET[b]`: whether byte `b` is a base64 character (a table: this test
/// runs once per byte of every transfer).
static ALPHABET: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
        b += 1;
    }
    t
};

fn in_alphabet(b: u8) -> bool {
    ALPHABET[b as usize]
}

/// Decodes one line of base64 given in pieces.
#[derive(Debug, Clone)]
pub struct LineDecoder {
    pending: [u8; 4],
    npending: usize,
    /// A padded quad was decoded: nothing may follow on this line.
    ended: bool,
    /// Decoded bytes of the whole line so far.
    pub decoded: u64,
    engine: Engine,
}

impl Default for LineDecoder {
    fn default() -> LineDecoder {
        LineDecoder::with_engine(Engine::best())
    }
}

impl LineDecoder {
    pub fn new() -> LineDecoder {
        LineDecoder::default()
    }

    /// A decoder whose bulk goes through `engine` (which the CPU must run).
    pub fn with_engine(engine: Engine) -> LineDecoder {
        LineDecoder {
            pending: [0; 4],
            npending: 0,
            ended: false,
            decoded: 0,
            engine,
        }
    }

    /// Decodes `input`, appending the bytes to `out` (which grows by at most `input.len()`).
    ///
    /// Whole quads without padding go through the SIMD decoder in one call;
    /// a quad split across pieces, the padded last quad and any run the SIMD
    /// decoder refuses go byte by byte, which names the exact fault. Both
    /// paths accept exactly the same texts (see `tests/properties.rs`).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), B64Error> {
        let mut i = 0;
        // Complete a quad left over from the previous piece.
        while self.npending != 0 && i < input.len() {
            self.push(input[i], out)?;
            i += 1;
        }
        if self.npending == 0 && !self.ended {
            // The SIMD decoder takes padding at the end of its input as the
            // end of the text: it never gets a quad that holds any (the byte
            // path judges those, in the middle of a line or at its end).
            let mut run = (input.len() - i) / 4 * 4;
            while run > 0 && input[i + run - 4..i + run].contains(&b'=') {
                run -= 4;
            }
            // Refused (`out` unchanged): the byte path below finds and names the fault.
            if run > 0 && self.engine.decode_run(&input[i..i + run], out).is_ok() {
                self.decoded += (run / 4 * 3) as u64;
                i += run;
            }
        }
        for &b in &input[i..] {
            self.push(b, out)?;
        }
        Ok(())
    }

    /// One byte of the byte-by-byte path.
    fn push(&mut self, b: u8, out: &mut Vec<u8>) -> Result<(), B64Error> {
        if self.ended {
            return Err(B64Error::PaddingMidLine);
        }
        if !in_alphabet(b) && b != b'=' {
            return Err(B64Error::BadChar(b));
        }
        self.pending[self.npending] = b;
        self.npending += 1;
        if self.npending == 4 {
            self.flush_quad(out)?;
        }
        Ok(())
    }

    fn flush_quad(&mut self, out: &mut Vec<u8>) -> Result<(), B64Error> {
        let q = self.pending;
        self.npending = 0;
        let pad = match (q[2] == b'=', q[3] == b'=') {
            (false, false) => 0,
            (false, true) => 1,
            (true, true) => 2,
            (true, false) => return Err(B64Error::PaddingMidLine),
        };
        if q[0] == b'=' || q[1] == b'=' {
            return Err(B64Error::BadPadding);
        }
        let mut buf = [0u8; 3];
        let n = STANDARD
            .decode_slice(q, &mut buf)
            .map_err(|_| B64Error::BadPadding)?;
        out.extend_from_slice(&buf[..n]);
        self.decoded += n as u64;
        if pad > 0 {
            self.ended = true;
        }
        Ok(())
    }

    /// The line is over: it must have ended on a whole quad. Resets for the next line.
    pub fn finish_line(&mut self) -> Result<u64, B64Error> {
        let pending = self.npending;
        let decoded = self.decoded;
        *self = LineDecoder::with_engine(self.engine);
        if pending != 0 {
            return Err(B64Error::BadLength);
        }
        Ok(decoded)
    }
}

/// Appends the base64 of `chunk` to `out`. Chunks concatenate correctly when
/// every chunk but the last has a length that is a multiple of 3.
pub fn encode_chunk(chunk: &[u8], out: &mut Vec<u8>) {
    Engine::best().encode(chunk, out);
}

/// Whole-buffer helpers for small payloads (inline uploads, tests).
pub fn encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

pub fn decode(text: &[u8]) -> Result<Vec<u8>, B64Error> {
    let mut d = LineDecoder::new();
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    d.feed(text, &mut out)?;
    d.finish_line()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_in_any_pieces() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for len in [0usize, 1, 2, 3, 4, 5, 998, 999, 1000] {
            let text = encode(&data[..len]);
            for piece in [1usize, 2, 3, 5, 7, 64, 4096] {
                let mut d = LineDecoder::new();
                let mut out = Vec::new();
                for p in text.as_bytes().chunks(piece) {
                    d.feed(p, &mut out).unwrap();
                }
                assert_eq!(d.finish_line().unwrap(), len as u64);
                assert_eq!(out, &data[..len]);
            }
        }
    }

    #[test]
    fn strict() {
        assert_eq!(decode(b"aGVsbG8"), Err(B64Error::BadLength));
        assert_eq!(decode(b"aGV!bG8="), Err(B64Error::BadChar(b'!')));
        assert_eq!(decode(b"aG=sbG8="), Err(B64Error::PaddingMidLine));
        assert_eq!(decode(b"aGk=aGk="), Err(B64Error::PaddingMidLine));
        assert_eq!(decode(b"a==="), Err(B64Error::BadPadding));
        assert_eq!(decode(b"===="), Err(B64Error::BadPadding));
        assert_eq!(decode(b"aGl="), Err(B64Error::BadPadding)); // non-canonical trailing bits
        assert_eq!(decode(b"aGk\n"), Err(B64Error::BadChar(b'\n')));
        assert_eq!(decode(b"aGk=").unwrap(), b"hi");
    }

    #[test]
    fn chunked_encoding_concatenates() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        for c in data.chunks(3 * 1000) {
            encode_chunk(c, &mut out);
        }
        assert_eq!(out, encode(&data).into_bytes());
    }
}
