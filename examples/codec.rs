//! `make bench-codec`: single-core throughput of the pieces a transfer is
//! made of, each against the way it was done before, so the README's
//! dependency list can say what each crate saves. Prints GB/s (10^9 bytes
//! per second of wall time on one thread; best of 3 rounds).

use std::hint::black_box;
use std::time::Instant;

use base64::Engine as _;
use fsbench::load::content;
use fsbench::protocol::base64::{Engine, LineDecoder};
use sha2::Digest;

const MB: usize = 1 << 20;
/// Bytes of input per round.
const ROUND: usize = 256 * MB;

/// Best GB/s over 3 rounds of `f`, which processes `bytes` per call.
fn rate(bytes: usize, mut f: impl FnMut()) -> f64 {
    let calls = (ROUND / bytes).max(1);
    (0..3)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..calls {
                f();
            }
            (calls * bytes) as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

/// The content generator before wyrand: splitmix64 per 8-byte word.
fn splitmix_fill(seed: u64, out: &mut [u8]) {
    fn mix(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    for (w, c) in out.chunks_exact_mut(8).enumerate() {
        c.copy_from_slice(&mix(seed ^ w as u64).to_le_bytes());
    }
}

fn main() {
    let chunk = 3 * 64 * 1024; // 192 KiB: what one GET write or upload line carries
    let mut raw = vec![0u8; chunk];
    content::fill(1, 0, &mut raw);
    let text = base64::engine::general_purpose::STANDARD.encode(&raw);
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut dec = vec![0u8; chunk];

    println!("single core, GB/s (10^9 bytes/s), best of 3; base64 figures per byte of raw data");
    let a = rate(chunk, || {
        out.clear();
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(black_box(&raw), {
                out.resize(text.len(), 0);
                &mut out[..]
            })
            .unwrap();
        black_box(n);
    });
    let engines: Vec<Engine> = [Engine::Simd, Engine::Vbmi]
        .into_iter()
        .filter(|e| e.available())
        .collect();
    let mut line = format!("base64 encode:  base64 crate {a:6.2}");
    for &e in &engines {
        let b = rate(chunk, || {
            out.clear();
            e.encode(black_box(&raw), &mut out);
            black_box(&out);
        });
        line += &format!("   {} {b:6.2}", e.name());
    }
    println!("{line}");
    let a = rate(chunk, || {
        let n = base64::engine::general_purpose::STANDARD
            .decode_slice(black_box(text.as_bytes()), &mut dec)
            .unwrap();
        black_box(n);
    });
    let mut line = format!("base64 decode:  base64 crate {a:6.2}");
    for &e in &engines {
        let b = rate(chunk, || {
            out.clear();
            let mut d = LineDecoder::with_engine(e);
            d.feed(black_box(text.as_bytes()), &mut out).unwrap();
            d.finish_line().unwrap();
            black_box(&out);
        });
        line += &format!("   {} (LineDecoder) {b:6.2}", e.name());
    }
    println!("{line}");
    if !Engine::Vbmi.available() {
        println!("                (no AVX-512 VBMI on this CPU: base64-simd alone)");
    }
    let hay = text.as_bytes();
    let a = rate(hay.len(), || {
        black_box(black_box(hay).iter().position(|&c| c == b'\n'));
    });
    let b = rate(hay.len(), || {
        black_box(memchr::memchr(b'\n', black_box(hay)));
    });
    println!("line search:    iter().position {a:6.2}   memchr {b:6.2}   (per byte searched)");
    let a = rate(chunk, || splitmix_fill(7, black_box(&mut raw)));
    let b = rate(chunk, || content::fill(7, 0, black_box(&mut raw)));
    println!("content:        splitmix64 {a:6.2}   wyrand (content::fill) {b:6.2}");
    let a = rate(chunk, || {
        black_box(sha2::Sha256::digest(black_box(&raw)));
    });
    println!("sha-256 (sha2): {a:6.2}   (the floor of a plain UPLOAD: its name is the hash)");
}
