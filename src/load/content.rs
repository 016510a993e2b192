//! Deterministic content: any length of bytes from a 64-bit seed, generated
//! while it streams, and the sweep's test files (`file_10MB.bin`, ...) made
//! from it.
//!
//! Byte `i` of a content depends only on the seed and `i` (word `i / 8` of a
//! counter-based generator, wyrand, keyed by the seed through splitmix64), so the same seed always gives the same bytes and their
//! SHA-256 can be computed without any file. Nothing here holds a whole
//! content in memory; test files are written to a temporary name and renamed
//! into place once complete, with a `sha256sum`-style sidecar.

use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};

use crate::load::Volume;

/// Seeds of test files live apart from the seeds of uploads.
const TEST_FILE_SEED: u64 = 0x7E57_F11E_0000_0000;

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Word `w` of the stream `key`: wyrand's output function at counter `w`
/// (one 64x64->128 multiply: the generator runs at several GB/s, so that
/// checking a download against it costs less than receiving it).
fn word_at(key: u64, w: u64) -> u64 {
    let s = key.wrapping_add(w.wrapping_add(1).wrapping_mul(0xA076_1D64_78BD_642F));
    let r = u128::from(s ^ 0xE703_7ED1_A0B4_28DB) * u128::from(s);
    (r as u64) ^ ((r >> 64) as u64)
}

/// Fills `out` with the bytes at `pos..pos + out.len()` of the content of `seed`.
pub fn fill(seed: u64, pos: u64, out: &mut [u8]) {
    let key = splitmix64(seed);
    let word = |w: u64| word_at(key, w).to_le_bytes();
    // A start inside a word: its tail first, so the rest is whole words.
    let off = (pos % 8) as usize;
    let head = if off == 0 {
        0
    } else {
        (8 - off).min(out.len())
    };
    out[..head].copy_from_slice(&word(pos / 8)[off..off + head]);
    let mut w = (pos + head as u64) / 8;
    let mut words = out[head..].chunks_exact_mut(8);
    for c in &mut words {
        c.copy_from_slice(&word(w));
        w += 1;
    }
    let tail = words.into_remainder();
    let n = tail.len();
    tail.copy_from_slice(&word(w)[..n]);
}

/// A download's sink that checks every byte against the content it should
/// be, as it streams: no hash, and the offset of the first wrong byte.
pub struct Checker {
    seed: u64,
    len: u64,
    pos: u64,
    expected: Vec<u8>,
    /// Offset of the first byte that differs from the content.
    pub first_mismatch: Option<u64>,
}

impl Checker {
    pub fn new(seed: u64, len: u64) -> Checker {
        Checker {
            seed,
            len,
            pos: 0,
            expected: Vec::new(),
            first_mismatch: None,
        }
    }

    /// Ok when exactly the content arrived; the reason otherwise.
    pub fn verdict(&self) -> Result<(), String> {
        match self.first_mismatch {
            Some(at) => Err(format!("content differs from byte {at} on")),
            None if self.pos != self.len => {
                Err(format!("got {} bytes, expected {}", self.pos, self.len))
            }
            None => Ok(()),
        }
    }
}

impl io::Write for Checker {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Past the first wrong byte (or the end) only the count matters.
        if self.first_mismatch.is_none() && self.pos < self.len {
            let n = ((self.len - self.pos) as usize).min(buf.len());
            self.expected.resize(n, 0);
            fill(self.seed, self.pos, &mut self.expected);
            if self.expected[..] != buf[..n] {
                let i = self.expected.iter().zip(buf).position(|(a, b)| a != b);
                self.first_mismatch = Some(self.pos + i.unwrap_or(n) as u64);
            } else if n < buf.len() {
                self.first_mismatch = Some(self.len);
            }
        }
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The content of one seed, `len` bytes long, as a reader.
#[derive(Debug, Clone)]
pub struct Content {
    seed: u64,
    len: u64,
    pos: u64,
}

impl Content {
    pub fn new(seed: u64, len: u64) -> Content {
        Content { seed, len, pos: 0 }
    }
}

impl Read for Content {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.len - self.pos).min(buf.len() as u64) as usize;
        fill(self.seed, self.pos, &mut buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// Lowercase hex SHA-256 of the content of `seed`, `len` bytes long.
pub fn sha256_of(seed: u64, len: u64) -> String {
    // Reading generated content never fails.
    crate::protocol::sha256_hex(&mut Content::new(seed, len)).unwrap_or_default()
}

/// The seed of an upload by client `index` of a pool started with `base`:
/// distinct per client, and never a test file's seed.
pub fn upload_seed(base: u64, index: usize) -> u64 {
    splitmix64(base) ^ ((index as u64 + 1) << 1 | 1)
}

/// The SHA-256 of upload contents (seed, length), each computed once and
/// kept in a folder (`upload-<seed>-<len>.sha256`), so a sweep whose
/// scenarios upload the same contents hashes them once, not per scenario.
pub struct UploadHashes {
    dir: PathBuf,
    memo: std::collections::HashMap<(u64, u64), String>,
    /// Contents hashed here (not found in the folder), and the seconds it took.
    pub computed: usize,
    pub secs: f64,
}

impl UploadHashes {
    pub fn new(dir: &Path) -> UploadHashes {
        UploadHashes {
            dir: dir.to_path_buf(),
            memo: Default::default(),
            computed: 0,
            secs: 0.0,
        }
    }

    /// The SHA-256 of the content of `seed`, `len` bytes long.
    pub fn get(&mut self, seed: u64, len: u64) -> io::Result<String> {
        if let Some(h) = self.memo.get(&(seed, len)) {
            return Ok(h.clone());
        }
        let path = self.dir.join(format!("upload-{seed:016x}-{len}.sha256"));
        let kept = std::fs::read_to_string(&path).ok().filter(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        });
        let h = match kept {
            Some(h) => h,
            None => {
                let t = std::time::Instant::now();
                let h = sha256_of(seed, len);
                self.secs += t.elapsed().as_secs_f64();
                self.computed += 1;
                std::fs::create_dir_all(&self.dir)?;
                let tmp = path.with_extension("part");
                std::fs::write(&tmp, &h)?;
                std::fs::rename(&tmp, &path)?;
                h
            }
        };
        self.memo.insert((seed, len), h.clone());
        Ok(h)
    }

    /// The hashes of the uploads of clients `0..clients` of a pool with base seed `base`.
    pub fn for_pool(&mut self, base: u64, clients: usize, len: u64) -> io::Result<Vec<String>> {
        (0..clients)
            .map(|i| self.get(upload_seed(base, i), len))
            .collect()
    }
}

/// A test file of the sweep: its name, size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFile {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The seed of a test file of this size.
pub fn test_file_seed(v: Volume) -> u64 {
    TEST_FILE_SEED ^ v.bytes
}

/// `file_10MB.bin` and so on.
pub fn test_file_name(v: Volume) -> String {
    format!("file_{}.bin", v.label())
}

/// Whether `name` is the name of some volume's test file (`file_10MB.bin`, ...),
/// so that cleaning a store never removes one a later sweep would reuse.
pub fn is_test_file_name(name: &str) -> bool {
    name.strip_prefix("file_")
        .and_then(|n| n.strip_suffix(".bin"))
        .and_then(|label| label.parse::<Volume>().ok())
        .is_some_and(|v| test_file_name(v) == name)
}

/// The name, size and SHA-256 of a volume's test file (computed, no disk).
pub fn test_file(v: Volume) -> TestFile {
    TestFile {
        name: test_file_name(v),
        bytes: v.bytes,
        sha256: sha256_of(test_file_seed(v), v.bytes),
    }
}

fn sidecar(sums: &Path, name: &str) -> PathBuf {
    sums.join(format!("{name}.sha256"))
}

/// Makes sure `store` holds the test file of every volume, generating the
/// missing or wrong ones; the SHA-256 of each is kept in `sums` as
/// `<name>.sha256` (`sha256sum -c` format, relative to the store).
/// A file is reused when its size and its sidecar match.
pub fn ensure_test_files(
    store: &Path,
    sums: &Path,
    volumes: &[Volume],
) -> io::Result<Vec<TestFile>> {
    std::fs::create_dir_all(store)?;
    std::fs::create_dir_all(sums)?;
    let mut out = Vec::new();
    for &v in volumes {
        let tf = test_file(v);
        let path = store.join(&tf.name);
        let side = sidecar(sums, &tf.name);
        let want_side = format!("{}  {}\n", tf.sha256, tf.name);
        let size_ok = std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == tf.bytes);
        let side_ok = std::fs::read_to_string(&side).is_ok_and(|s| s == want_side);
        if !(size_ok && side_ok) {
            write_content(&path, test_file_seed(v), v.bytes)?;
            let tmp = side.with_extension("part");
            std::fs::write(&tmp, want_side)?;
            std::fs::rename(&tmp, &side)?;
        }
        if !out.contains(&tf) {
            out.push(tf);
        }
    }
    Ok(out)
}

/// Writes a content to `path` through a hidden temporary name, then renames it.
fn write_content(path: &Path, seed: u64, len: u64) -> io::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("content");
    let tmp = path.with_file_name(format!(".gen-{name}"));
    let mut w = BufWriter::with_capacity(256 * 1024, File::create(&tmp)?);
    io::copy(&mut Content::new(seed, len), &mut w)?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::hex;
    use sha2::{Digest, Sha256};

    #[test]
    fn any_slice_of_a_content_is_the_same_bytes() {
        let mut whole = vec![0u8; 1000];
        fill(7, 0, &mut whole);
        for (pos, len) in [(0, 1), (3, 5), (7, 9), (8, 8), (13, 400), (999, 1)] {
            let mut part = vec![0u8; len];
            fill(7, pos as u64, &mut part);
            assert_eq!(part, whole[pos..pos + len], "slice at {pos}");
        }
        let mut streamed = Vec::new();
        Content::new(7, 1000).read_to_end(&mut streamed).unwrap();
        assert_eq!(streamed, whole);
    }

    #[test]
    fn the_checker_finds_the_first_wrong_byte_in_any_pieces() {
        let mut data = vec![0u8; 5000];
        fill(9, 0, &mut data);
        for piece in [1, 7, 8, 4096, 5000] {
            let mut ok = Checker::new(9, 5000);
            for p in data.chunks(piece) {
                io::Write::write_all(&mut ok, p).unwrap();
            }
            assert_eq!(ok.verdict(), Ok(()), "pieces of {piece}");
        }
        let mut bad = data.clone();
        bad[3001] ^= 0x40;
        bad[4000] ^= 1;
        let mut c = Checker::new(9, 5000);
        for p in bad.chunks(999) {
            io::Write::write_all(&mut c, p).unwrap();
        }
        assert_eq!(c.first_mismatch, Some(3001));
        assert!(c.verdict().unwrap_err().contains("byte 3001"));
        let mut short = Checker::new(9, 5000);
        io::Write::write_all(&mut short, &data[..4999]).unwrap();
        assert_eq!(short.verdict(), Err("got 4999 bytes, expected 5000".into()));
        let mut long = Checker::new(9, 4999);
        io::Write::write_all(&mut long, &data).unwrap();
        assert_eq!(long.first_mismatch, Some(4999));
    }

    #[test]
    fn upload_hashes_are_computed_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("fsbench-uph-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut h = UploadHashes::new(&dir);
        let want: Vec<String> = (0..3).map(|i| sha256_of(upload_seed(5, i), 1000)).collect();
        assert_eq!(h.for_pool(5, 3, 1000).unwrap(), want);
        assert_eq!(h.for_pool(5, 2, 1000).unwrap(), want[..2]);
        assert_eq!(h.computed, 3, "each content hashed once");
        // A new cache over the same folder reads them back.
        let mut again = UploadHashes::new(&dir);
        assert_eq!(again.for_pool(5, 3, 1000).unwrap(), want);
        assert_eq!(again.computed, 0);
        // A damaged entry is computed again.
        let f = dir.join(format!("upload-{:016x}-1000.sha256", upload_seed(5, 0)));
        std::fs::write(&f, "not a hash").unwrap();
        let mut third = UploadHashes::new(&dir);
        assert_eq!(third.get(upload_seed(5, 0), 1000).unwrap(), want[0]);
        assert_eq!(third.computed, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn seeds_give_different_contents_and_hashes() {
        let a = sha256_of(upload_seed(1, 0), 4096);
        let b = sha256_of(upload_seed(1, 1), 4096);
        let t = sha256_of(test_file_seed(Volume::kb(4)), 4096);
        assert_ne!(a, b);
        assert_ne!(a, t);
        assert_eq!(a, sha256_of(upload_seed(1, 0), 4096));
        assert_eq!(a, hex(&Sha256::digest(vec_of(upload_seed(1, 0), 4096))));
    }

    fn vec_of(seed: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        fill(seed, 0, &mut v);
        v
    }

    #[test]
    fn test_files_are_generated_once_and_match_their_hash() {
        let dir = std::env::temp_dir().join(format!("fsbench-content-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (store, sums) = (dir.join("store"), dir.join("sums"));
        let v = Volume::kb(3);
        let files = ensure_test_files(&store, &sums, &[v, v]).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].name, "file_3KB.bin");
        let data = std::fs::read(store.join("file_3KB.bin")).unwrap();
        assert_eq!(data.len(), 3072);
        assert_eq!(hex(&Sha256::digest(&data)), files[0].sha256);
        let before = std::fs::metadata(store.join("file_3KB.bin"))
            .unwrap()
            .modified()
            .unwrap();
        ensure_test_files(&store, &sums, &[v]).unwrap();
        let after = std::fs::metadata(store.join("file_3KB.bin"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after, "a good test file is reused");
        // A truncated file is regenerated.
        std::fs::write(store.join("file_3KB.bin"), b"short").unwrap();
        ensure_test_files(&store, &sums, &[v]).unwrap();
        assert_eq!(std::fs::read(store.join("file_3KB.bin")).unwrap(), data);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
