//! Worker processes: `fork` (refused once the process has threads), `waitpid`,
//! `kill`, `_exit`.
//!
//! A forked worker ignores SIGINT and SIGTERM (those are the acceptor's: a
//! Ctrl-C reaches the whole process group, and the acceptor alone decides
//! how the server stops) and keeps no descriptor but stdin/stdout/stderr,
//! the one it is given and the folder locks the acceptor holds (the server's
//! temp folder is the worker's too, and stays locked while a worker lives):
//! not the listener (so the port is freed with the acceptor), not another
//! worker's channel (so each worker sees end of file when the acceptor goes),
//! not a client connection the acceptor holds.
//!
//! This module never logs: in the child, a failed set-up comes back as
//! [`Forked::ChildSetupFailed`] for the caller to report.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Which side of a `fork` we are on.
#[derive(Debug)]
pub enum Forked {
    /// In the new worker: only its kept descriptor (and 0, 1, 2) is open.
    Child,
    /// In the new worker, but setting it up (its signals, its descriptors)
    /// failed: the caller says why, then leaves at once through [`exit_now`].
    ChildSetupFailed(io::Error),
    Parent {
        pid: u32,
    },
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    Code(i32),
    Signal(i32),
}

impl fmt::Display for ChildExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildExit::Code(c) => write!(f, "exit code {c}"),
            ChildExit::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// Threads of this process, from /proc (None if /proc cannot tell).
fn thread_count() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

fn signal_set(sigs: &[libc::c_int]) -> io::Result<libc::sigset_t> {
    // SAFETY: sigemptyset initialises the set before any use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    syscall!(sigemptyset(&mut set))?;
    for &s in sigs {
        syscall!(sigaddset(&mut set, s))?;
    }
    Ok(set)
}

fn set_mask(
    how: libc::c_int,
    set: &libc::sigset_t,
    old: Option<&mut libc::sigset_t>,
) -> io::Result<()> {
    let old = old.map_or(std::ptr::null_mut(), |o| o as *mut libc::sigset_t);
    // SAFETY: both pointers are valid or null.
    match unsafe { libc::pthread_sigmask(how, set, old) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Closes every descriptor from 3 up except those in `keep`.
fn close_all_but(keep: &[libc::c_int]) -> io::Result<()> {
    let mut keep = keep.to_vec();
    keep.sort_unstable();
    let mut ranges = Vec::with_capacity(keep.len() + 1);
    let mut first = 3;
    for k in keep {
        ranges.push((first, k - 1));
        first = first.max(k + 1);
    }
    ranges.push((first, libc::c_int::MAX));
    for (first, last) in ranges {
        if first > last {
            continue;
        }
        // SAFETY: close_range only closes descriptors; the caller owns none of them any more.
        let r = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first as libc::c_uint,
                last as libc::c_uint,
                0,
            )
        };
        if r == -1 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOSYS) {
                return Err(e);
            }
            // Kernels before 5.9: list /proc/self/fd (its own descriptor closes too, harmlessly).
            let fds: Vec<libc::c_int> = std::fs::read_dir("/proc/self/fd")?
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|&fd| fd >= first && fd <= last)
                .collect();
            for fd in fds {
                // SAFETY: as above.
                unsafe {
                    libc::close(fd);
                }
            }
        }
    }
    Ok(())
}

/// Forks a worker process that keeps only `keep`, the folder locks this
/// process holds (see [`super::lock`]: the worker shares them) and 0, 1, 2
/// open, and ignores SIGINT/SIGTERM. Refused when this process has more than
/// one thread (a forked copy of a multi-threaded process may find a lock held
/// forever).
///
/// In the child, every `OwnedFd` inherited from the parent's memory now names
/// a closed descriptor: the child must never drop them (it runs its own loop
/// and leaves through [`exit_now`], never returning to the parent's code).
pub fn fork_worker(keep: BorrowedFd<'_>) -> io::Result<Forked> {
    if let Some(n) = thread_count() {
        if n > 1 {
            return Err(io::Error::other(format!(
                "refusing to fork: the process has {n} threads"
            )));
        }
    }
    // Block the acceptor's signals across fork, so the child cannot run the
    // acceptor's handler (which writes to the acceptor's signal pipe) before it
    // has set them to SIG_IGN.
    let sigs = signal_set(&[libc::SIGINT, libc::SIGTERM])?;
    let mut kept = super::lock::held_fds();
    kept.push(keep.as_raw_fd());
    // SAFETY: zeroed is a valid sigset_t to be overwritten.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    set_mask(libc::SIG_BLOCK, &sigs, Some(&mut old))?;
    // SAFETY: single-threaded (checked above); the child only resets signals,
    // closes descriptors and returns to a caller that never goes back to the parent's code.
    let pid = unsafe { libc::fork() };
    if pid == -1 {
        let e = io::Error::last_os_error();
        let _ = set_mask(libc::SIG_SETMASK, &old, None);
        return Err(e);
    }
    if pid > 0 {
        set_mask(libc::SIG_SETMASK, &old, None)?;
        return Ok(Forked::Parent { pid: pid as u32 });
    }
    let child = || -> io::Result<()> {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: SIG_IGN is a valid disposition.
            if unsafe { libc::signal(sig, libc::SIG_IGN) } == libc::SIG_ERR {
                return Err(io::Error::last_os_error());
            }
        }
        close_all_but(&kept)?;
        set_mask(libc::SIG_SETMASK, &old, None)
    };
    Ok(match child() {
        Ok(()) => Forked::Child,
        Err(e) => Forked::ChildSetupFailed(e),
    })
}

/// Reaps `pid` if it has ended; `None` if it is still running.
pub fn try_wait(pid: u32) -> io::Result<Option<ChildExit>> {
    wait(pid, libc::WNOHANG)
}

/// Waits for `pid` to end and reaps it.
pub fn wait_blocking(pid: u32) -> io::Result<ChildExit> {
    loop {
        if let Some(st) = wait(pid, 0)? {
            return Ok(st);
        }
    }
}

fn wait(pid: u32, flags: libc::c_int) -> io::Result<Option<ChildExit>> {
    let mut status = 0;
    loop {
        match syscall!(waitpid(pid as libc::pid_t, &mut status, flags)) {
            Ok(0) => return Ok(None),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Some(if libc::WIFSIGNALED(status) {
        ChildExit::Signal(libc::WTERMSIG(status))
    } else {
        ChildExit::Code(libc::WEXITSTATUS(status))
    }))
}

/// SIGKILL to a child (one not reaped yet, so its pid cannot have been reused).
pub fn kill_hard(pid: u32) -> io::Result<()> {
    syscall!(kill(pid as libc::pid_t, libc::SIGKILL)).map(drop)
}

/// Ends this process at once: no destructors, no atexit handlers, no unwinding
/// (what a forked worker must do: it shares the parent's memory image).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns.
    unsafe { libc::_exit(code) }
}
