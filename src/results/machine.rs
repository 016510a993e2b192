//! The facts a result needs to be reproduced: the git commit it was built
//! from, the compiler, the build profile, and the machine (cores, memory,
//! kernel, host name). Read from git, rustc and `/proc`; a fact that cannot
//! be read is `None`, never a guess.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Git {
    pub commit: Option<String>,
    /// Uncommitted changes in the work tree.
    pub dirty: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cores: Option<usize>,
    pub memory_total_kib: Option<u64>,
    /// `ostype osrelease version`.
    pub kernel: String,
    pub hostname: Option<String>,
    /// `model name` of `/proc/cpuinfo` (absent in files from before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    /// The base64 engine this machine's processes use (`avx512-vbmi` or
    /// `base64-simd`; see `protocol::base64::Engine`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}

/// The commit of the repository in the current folder, else of the one
/// `exe` was built in (its folder's repository).
pub fn git(exe: &Path) -> Git {
    let exe_dir = exe
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    [".", exe_dir.as_str()]
        .iter()
        .find_map(|dir| {
            let c = command_output("git", &["-C", dir, "rev-parse", "HEAD"])?;
            let d =
                command_output("git", &["-C", dir, "status", "--porcelain"]).map(|s| !s.is_empty());
            Some(Git {
                commit: Some(c),
                dirty: d,
            })
        })
        .unwrap_or(Git {
            commit: None,
            dirty: None,
        })
}

/// `fsbench 0.1.0 (commit 9851efe1a2b3, clean)`: the version and the git
/// commit this binary was built from (recorded by `build.rs`), as
/// `fsbench --version` prints it and every results file records it.
pub fn version() -> &'static str {
    const DIRTY: &str = env!("FSBENCH_DIRTY");
    if DIRTY.is_empty() {
        concat!(
            "fsbench ",
            env!("CARGO_PKG_VERSION"),
            " (commit ",
            env!("FSBENCH_COMMIT"),
            ")"
        )
    } else {
        concat!(
            "fsbench ",
            env!("CARGO_PKG_VERSION"),
            " (commit ",
            env!("FSBENCH_COMMIT"),
            ", ",
            env!("FSBENCH_DIRTY"),
            ")"
        )
    }
}

/// `rustc -V`, if a compiler is on the PATH.
pub fn rustc() -> Option<String> {
    command_output("rustc", &["-V"])
}

/// `release` or `debug`: the profile this binary was built with.
pub fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

pub fn this_machine() -> Machine {
    Machine {
        cores: std::thread::available_parallelism().map(|n| n.get()).ok(),
        memory_total_kib: meminfo_kib("MemTotal:"),
        kernel: format!(
            "{} {} {}",
            proc_text("/proc/sys/kernel/ostype").unwrap_or_default(),
            proc_text("/proc/sys/kernel/osrelease").unwrap_or_default(),
            proc_text("/proc/sys/kernel/version").unwrap_or_default()
        ),
        hostname: proc_text("/proc/sys/kernel/hostname"),
        cpu_model: std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        }),
        base64: Some(crate::protocol::base64::Engine::best().name().to_string()),
    }
}

fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn meminfo_kib(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn proc_text(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// What one core of this machine does right now, measured: the context that
/// says whether a CPU-seconds figure was taken on a quiet host or a busy one
/// (a shared VM's CPU-second buys more or less work from hour to hour).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// `start` or `end` of the sweep.
    pub when: String,
    /// SHA-256 of a 1 MiB buffer (the server's floor on a plain UPLOAD), GB
    /// (10^9 bytes) per CPU-second of the measuring thread.
    pub sha256_gb_per_cpu_s: f64,
    /// The same per second of wall time.
    pub sha256_gb_per_s: f64,
    /// CPU-seconds the measuring took.
    pub cpu_s: f64,
}

/// `1.43 at the start, 1.44 at the end`: GB per CPU-second of each
/// calibration, for the sweep's last lines and the report; `None` if there
/// is none (metadata from before it was measured).
pub fn calibration_text(cal: &[Calibration]) -> Option<String> {
    if cal.is_empty() {
        return None;
    }
    let at: Vec<String> = cal
        .iter()
        .map(|c| format!("{:.2} at the {}", c.sha256_gb_per_cpu_s, c.when))
        .collect();
    Some(at.join(", "))
}

/// How long [`calibrate`] hashes.
pub const CALIBRATION_TIME: Duration = Duration::from_millis(200);

/// Hashes a 1 MiB buffer for [`CALIBRATION_TIME`] on this thread (after a
/// quarter of that to warm up); `None` if the thread's CPU time cannot be
/// read or none was counted.
pub fn calibrate(when: &str) -> Option<Calibration> {
    let buf: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    // Hashes the buffer until `time` has passed; returns the bytes hashed.
    let hash_for = |time: Duration| {
        let t = Instant::now();
        let mut bytes: u64 = 0;
        while t.elapsed() < time {
            std::hint::black_box(Sha256::digest(std::hint::black_box(&buf)));
            bytes += buf.len() as u64;
        }
        bytes
    };
    // A warm-up first, not counted: the core may be waking from idle.
    hash_for(CALIBRATION_TIME / 4);
    let cpu0 = crate::sys::thread_cpu_time().ok()?;
    let t0 = Instant::now();
    let bytes = hash_for(CALIBRATION_TIME);
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (crate::sys::thread_cpu_time().ok()? - cpu0).as_secs_f64();
    if cpu <= 0.0 {
        return None;
    }
    Some(Calibration {
        when: when.to_string(),
        sha256_gb_per_cpu_s: bytes as f64 / 1e9 / cpu,
        sha256_gb_per_s: bytes as f64 / 1e9 / wall,
        cpu_s: cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_names_the_package_and_the_commit() {
        let v = version();
        let rest = v
            .strip_prefix(concat!("fsbench ", env!("CARGO_PKG_VERSION"), " (commit "))
            .unwrap_or_else(|| panic!("{v}"));
        let commit = rest.split([',', ')']).next().unwrap();
        assert!(
            commit == "unknown"
                || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
            "{v}"
        );
        assert!(v.ends_with(", clean)") || v.ends_with(", dirty)") || v.ends_with(')'));
    }

    #[test]
    fn a_calibration_hashes_for_its_time_and_counts_its_cpu() {
        let c = calibrate("start").expect("this thread's CPU time");
        assert_eq!(c.when, "start");
        // At least one MiB hashed within the time, on this thread's CPU.
        assert!(c.cpu_s > 0.0 && c.cpu_s < 10.0, "{c:?}");
        assert!(
            c.sha256_gb_per_cpu_s > 0.0 && c.sha256_gb_per_s > 0.0,
            "{c:?}"
        );
        // CPU-seconds never exceed wall seconds on one thread (10 % of slack
        // for clocks read a moment apart).
        assert!(c.sha256_gb_per_cpu_s * 1.1 >= c.sha256_gb_per_s, "{c:?}");
    }

    #[test]
    fn this_machine_has_cores_memory_and_a_kernel() {
        let m = this_machine();
        assert!(m.cores.unwrap() >= 1);
        assert!(m.memory_total_kib.unwrap() > 0);
        assert!(m.kernel.starts_with("Linux "), "{}", m.kernel);
    }
}
