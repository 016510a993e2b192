//! The wire format of `../shared/PROTOCOL.md`: request lines, JSON responses,
//! the base64 codec used for file contents, and what becomes of a request
//! sent without its line end.
//!
//! This module only turns bytes into values and values into bytes; it never
//! touches a socket or the file system.

pub mod base64;
pub mod json;
pub mod read_buf;
pub mod request;
pub mod unterminated;
mod vbmi;

pub use read_buf::ReadBuf;
pub use request::{parse_request, Request};

/// Every response ends with this.
pub const TERMINATOR: &[u8] = b"\r\n\r\n";
/// What the server sends before a streamed upload body (compat: clients look for `READY`).
pub const READY: &[u8] = b"READY TO RECEIVE FILE\r\n\r\n";
/// The line that ends a streamed upload body.
pub const END_UPLOAD: &[u8] = b"ENDUPLOAD";
/// The old server's answer to an unknown command (compat).
pub const UNKNOWN_REQUEST: &str = "request tidak dikenali";

/// Limits a server enforces; each one is a `serve` flag.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest request line, in bytes (without the newline).
    pub max_line: usize,
    /// Longest base64 line inside a streamed upload body.
    pub max_upload_line: usize,
    /// Largest decoded upload.
    pub max_upload: u64,
    /// A connection is closed after this long without a byte read or written.
    pub idle_timeout: std::time::Duration,
    /// A request line must arrive whole within this long of its first byte.
    pub request_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_line: 64 * 1024,
            max_upload_line: 16 * 1024 * 1024,
            max_upload: 1 << 30,
            idle_timeout: std::time::Duration::from_secs(60),
            request_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// The extension a plain `UPLOAD` gets, from the content's first bytes.
pub fn detect_extension(head: &[u8]) -> &'static str {
    if head.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        ".png"
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        ".jpeg"
    } else if head.starts_with(b"%PDF") {
        ".pdf"
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        ".gif"
    } else if head.starts_with(&[b'P', b'K', 0x03, 0x04]) {
        ".zip"
    } else if head.starts_with(b"ID3") || head.starts_with(&[0xFF, 0xFB]) {
        ".mpeg"
    } else {
        ""
    }
}

/// Length of the empty lines (`\n` or `\r\n`) at the front of `buf`: they are ignored.
pub fn empty_lines_len(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        if buf[i..].starts_with(b"\n") {
            i += 1;
        } else if buf[i..].starts_with(b"\r\n") {
            i += 2;
        } else {
            return i;
        }
    }
}

/// Reads until `buf` is full or the source ends (the chunking of both ends of a
/// transfer relies on full chunks: every chunk but the last is a multiple of 3).
pub fn read_full(src: &mut dyn std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Lowercase hex SHA-256 of everything `r` yields.
pub fn sha256_hex(r: &mut dyn std::io::Read) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Lowercase hex of a byte string (SHA-256 digests).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Is this name allowed in the store? (PROTOCOL.md, "Names".) Checked before any system call.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("invalid name: empty".into());
    }
    if name.len() > 255 {
        return Err(format!("invalid name: {} bytes, at most 255", name.len()));
    }
    if name.starts_with('.') {
        return Err("invalid name: must not start with '.'".into());
    }
    if name.contains('/') || name.contains('\\') {
        return Err("invalid name: must not contain '/' or '\\'".into());
    }
    if name.chars().any(|c| c == '\0' || c.is_control()) {
        return Err("invalid name: must not contain NUL or control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "/etc/passwd",
            "..\\x",
            "a\0b",
            "a\nb",
            "a\x7fb",
            "a\u{85}b",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_name(&"x".repeat(256)).is_err());
        for good in [
            "a",
            "Photo.JPG",
            "file_10MB.bin",
            "with space",
            "日本.txt",
            &"x".repeat(255),
        ] {
            assert!(check_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn extensions() {
        assert_eq!(
            detect_extension(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0]),
            ".png"
        );
        assert_eq!(detect_extension(&[0xFF, 0xD8, 0xFF, 0xE0]), ".jpeg");
        assert_eq!(detect_extension(b"%PDF-1.4"), ".pdf");
        assert_eq!(detect_extension(b"GIF89a.."), ".gif");
        assert_eq!(detect_extension(b"GIF87a.."), ".gif");
        assert_eq!(detect_extension(b"PK\x03\x04"), ".zip");
        assert_eq!(detect_extension(b"ID3\x04"), ".mpeg");
        assert_eq!(detect_extension(&[0xFF, 0xFB, 0x90]), ".mpeg");
        assert_eq!(detect_extension(b"hello"), "");
        assert_eq!(detect_extension(b""), "");
    }
}
