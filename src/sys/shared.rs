//! Counters in memory shared with forked children: one anonymous
//! `MAP_SHARED` mapping, made before the fork, that every process of the
//! server reads and writes as `AtomicU64`s (so a process-mode worker answers
//! STATS from the live counters instead of a copy sent with every job).

use std::io;
use std::sync::atomic::AtomicU64;

/// `len` zeroed `AtomicU64`s shared across `fork`.
pub struct SharedCounters {
    ptr: *mut AtomicU64,
    len: usize,
}

// SAFETY: the mapping holds only atomics, valid from any thread.
unsafe impl Send for SharedCounters {}
unsafe impl Sync for SharedCounters {}

impl SharedCounters {
    pub fn new(len: usize) -> io::Result<SharedCounters> {
        let bytes = len.max(1) * std::mem::size_of::<AtomicU64>();
        // SAFETY: a fresh anonymous mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedCounters { ptr: p.cast(), len })
    }
}

impl std::ops::Deref for SharedCounters {
    type Target = [AtomicU64];
    fn deref(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page-aligned, zero-filled (a valid AtomicU64
        // is any 8 bytes) and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for SharedCounters {
    fn drop(&mut self) {
        let bytes = self.len.max(1) * std::mem::size_of::<AtomicU64>();
        // SAFETY: unmaps exactly the mapping made in `new`, no longer borrowed.
        unsafe {
            libc::munmap(self.ptr.cast(), bytes);
        }
    }
}

impl std::fmt::Debug for SharedCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedCounters({})", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::SharedCounters;
    use std::sync::atomic::Ordering::Relaxed;

    #[test]
    fn counters_start_at_zero_and_count() {
        let c = SharedCounters::new(3).unwrap();
        assert!(c.iter().all(|x| x.load(Relaxed) == 0));
        c[2].fetch_add(5, Relaxed);
        assert_eq!(c[2].load(Relaxed), 5);
    }
}
