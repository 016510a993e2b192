//! Records the git commit this binary is built from, for `fsbench --version`
//! and every results file: `FSBENCH_COMMIT` (12 hex digits, or `unknown`
//! outside a git work tree) and `FSBENCH_DIRTY` (`dirty` when the work tree
//! had uncommitted changes, `clean`, or empty when unknown).
//!
//! It runs again when HEAD moves (a commit, a checkout), when the index
//! changes (`git add`) and when the sources change, so the flag follows the
//! code the binary is made of; changes outside the sources (results/, the
//! README) do not rebuild anything.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) if s.is_empty() => "clean",
        Some(_) => "dirty",
        None => "",
    };
    println!("cargo:rustc-env=FSBENCH_COMMIT={commit}");
    println!("cargo:rustc-env=FSBENCH_DIRTY={dirty}");
    for p in ["src", "Cargo.toml", "Cargo.lock", "build.rs"] {
        println!("cargo:rerun-if-changed={p}");
    }
    // HEAD, the branch it names, and the index, wherever this work tree keeps them.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let dir = Path::new(&dir);
        for f in ["HEAD", "index"] {
            println!("cargo:rerun-if-changed={}", dir.join(f).display());
        }
        if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
            let common = if Path::new(&common).is_absolute() {
                Path::new(&common).to_path_buf()
            } else {
                Path::new(&common).canonicalize().unwrap_or_default()
            };
            println!(
                "cargo:rerun-if-changed={}",
                common.join("packed-refs").display()
            );
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                println!("cargo:rerun-if-changed={}", common.join(branch).display());
            }
        }
    }
}
