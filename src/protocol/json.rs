//! JSON responses, written by hand so that key order is the protocol's and the
//! output is ASCII only (non-ASCII as `\uXXXX`, as Python's `json.dumps` does).
//! Separators are Python's too (`", "` and `": "`).

use std::fmt::Write as _;

/// Appends `s` as a JSON string literal, ASCII only.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) >= 0x7f => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON object under construction; keys keep their insertion order.
pub struct Obj {
    buf: String,
    empty: bool,
}

impl Default for Obj {
    fn default() -> Self {
        Self::new()
    }
}

impl Obj {
    pub fn new() -> Obj {
        Obj {
            buf: String::from("{"),
            empty: true,
        }
    }
    fn key(&mut self, k: &str) {
        if !self.empty {
            self.buf.push_str(", ");
        }
        self.empty = false;
        push_str(&mut self.buf, k);
        self.buf.push_str(": ");
    }
    pub fn str(mut self, k: &str, v: &str) -> Obj {
        self.key(k);
        push_str(&mut self.buf, v);
        self
    }
    pub fn num(mut self, k: &str, v: u64) -> Obj {
        self.key(k);
        let _ = write!(self.buf, "{v}");
        self
    }
    /// `v` must already be valid ASCII JSON.
    pub fn raw(mut self, k: &str, v: &str) -> Obj {
        self.key(k);
        self.buf.push_str(v);
        self
    }
    pub fn finish(mut self) -> String {
        self.buf.push('}');
        self.buf
    }
}

/// A JSON array of strings.
pub fn str_array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut s = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        push_str(&mut s, item);
    }
    s.push(']');
    s
}

/// `{"status": "ERROR", "data": reason}` with its terminator.
pub fn error_response(reason: &str) -> Vec<u8> {
    let mut v = Obj::new()
        .str("status", "ERROR")
        .str("data", reason)
        .finish()
        .into_bytes();
    v.extend_from_slice(super::TERMINATOR);
    v
}

/// A finished OK object with its terminator.
pub fn response(obj: Obj) -> Vec<u8> {
    let mut v = obj.finish().into_bytes();
    v.extend_from_slice(super::TERMINATOR);
    v
}

/// The head of a GET response, up to the opening quote of the base64.
pub fn get_head(name: &str) -> String {
    let mut s = String::from("{\"status\": \"OK\", \"data_namafile\": ");
    push_str(&mut s, name);
    s.push_str(", \"data_file\": \"");
    s
}

/// What follows the base64 of a GET response.
pub const GET_TAIL: &[u8] = b"\"}\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_only_and_valid() {
        let mut s = String::new();
        push_str(&mut s, "é日\u{1F600}\"\\\n\x01\x7f");
        assert!(s.is_ascii());
        assert_eq!(s, r#""\u00e9\u65e5\ud83d\ude00\"\\\n\u0001\u007f""#);
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "é日\u{1F600}\"\\\n\x01\x7f");
    }

    #[test]
    fn objects_keep_order() {
        let o = Obj::new()
            .str("status", "OK")
            .num("n", 3)
            .raw("data", &str_array(["b", "a"]))
            .finish();
        assert_eq!(o, r#"{"status": "OK", "n": 3, "data": ["b", "a"]}"#);
        let head = get_head("x\"y");
        let mut full = head.into_bytes();
        full.extend_from_slice(b"aGk=");
        full.extend_from_slice(GET_TAIL);
        let v: serde_json::Value = serde_json::from_slice(&full[..full.len() - 4]).unwrap();
        assert_eq!(v["data_namafile"], "x\"y");
        assert_eq!(v["data_file"], "aGk=");
    }
}
