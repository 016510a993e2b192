//! The facts a result needs to be reproduced: the git commit it was built
//! from, the compiler, the build profile, and the machine (cores, memory,
//! kernel, host name). Read from git, rustc and `/proc`; a fact that cannot
//! be read is `None`, never a guess.

use std::path::Path;
use std::process::{Command, Stdio};

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
    fn this_machine_has_cores_memory_and_a_kernel() {
        let m = this_machine();
        assert!(m.cores.unwrap() >= 1);
        assert!(m.memory_total_kib.unwrap() > 0);
        assert!(m.kernel.starts_with("Linux "), "{}", m.kernel);
    }
}
