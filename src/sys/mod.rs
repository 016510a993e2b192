//! The one place for `unsafe` and `libc`: every raw call is wrapped so the
//! rest of the crate sees `io::Result` and `OwnedFd`.
//!
//! It also keeps the OS knowledge: which `errno` means what (see
//! [`out_of_descriptors`], [`file::is_not_found`]) and which flags an open
//! takes, behind small named functions, so that no other module names a
//! `libc` constant.
//!
//! This module must stay small: no protocol, no policy, only system calls.
//! It never calls up into the rest of the crate (no logging): it returns
//! errors and values, and the caller decides what they mean and logs them.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// Runs a libc call and turns `-1` into the current `io::Error` (as mio's `syscall!`).
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)* ) ) => {{
        #[allow(unused_unsafe)]
        let res = unsafe { libc::$fn($($arg, )*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

pub mod fdpass;
pub mod file;
pub mod lock;
pub mod process;
pub mod shared;
pub mod tcp;

/// A call failed for want of descriptors or kernel memory (`EMFILE`,
/// `ENFILE`, `ENOBUFS`, `ENOMEM`): trying again at once fails the same way,
/// until a descriptor is freed.
pub fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Sets the listen backlog of a listening socket (Linux lets `listen` be called again).
pub fn set_backlog(fd: RawFd, backlog: i32) -> io::Result<()> {
    syscall!(listen(fd, backlog)).map(drop)
}

/// Raises the soft limit on open descriptors to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut lim))?;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        syscall!(setrlimit(libc::RLIMIT_NOFILE, &lim))?;
    }
    Ok(lim.rlim_cur)
}

/// Write end of the signal pipe, for the handler (async-signal-safe: one `write`).
static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; a full pipe just drops the byte.
        // errno is saved and restored so the interrupted code never sees it change.
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(fd, &b as *const u8 as *const libc::c_void, 1);
            *libc::__errno_location() = errno;
        }
    }
}

/// A non-blocking close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    syscall!(pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC))?;
    // SAFETY: pipe2 just returned these two fresh descriptors.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Routes SIGINT and SIGTERM to a pipe; returns its read end (one byte per signal,
/// the signal number). The write end lives for the rest of the process.
pub fn signal_pipe() -> io::Result<OwnedFd> {
    let (rd, wr) = pipe()?;
    let old = SIGNAL_FD.swap(wr.as_raw_fd(), Ordering::SeqCst);
    std::mem::forget(wr);
    if old >= 0 {
        // SAFETY: `old` was the write end leaked by an earlier call; nothing else uses it now.
        unsafe {
            libc::close(old);
        }
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a plain handler is valid.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        syscall!(sigemptyset(&mut sa.sa_mask))?;
        syscall!(sigaction(sig, &sa, std::ptr::null_mut()))?;
    }
    Ok(rd)
}

/// Reads and discards whatever is in a non-blocking descriptor; returns the last byte seen.
pub fn drain_fd(fd: RawFd) -> Option<u8> {
    let mut buf = [0u8; 64];
    let mut last = None;
    loop {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n <= 0 {
            return last;
        }
        last = Some(buf[n as usize - 1]);
    }
}

pub const SIGINT: i32 = libc::SIGINT;
pub const SIGTERM: i32 = libc::SIGTERM;
pub const SIGKILL: i32 = libc::SIGKILL;

/// Sends `sig` to process `pid`.
pub fn kill(pid: u32, sig: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    syscall!(kill(pid, sig)).map(drop)
}

/// Sends `sig` to every process of the process group `pgid`.
pub fn kill_group(pgid: u32, sig: i32) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pgid out of range"))?;
    syscall!(kill(-pgid, sig)).map(drop)
}

/// Makes a child started from `cmd` receive `sig` when the thread that spawned
/// it dies (PR_SET_PDEATHSIG), so a killed parent leaves no process behind.
/// If the parent is already gone when the child starts, the spawn fails.
pub fn die_with_parent(cmd: &mut std::process::Command, sig: i32) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid is async-signal-safe; it runs in the parent.
    let parent = unsafe { libc::getpid() };
    // SAFETY: prctl and getppid are async-signal-safe and touch no memory of ours.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(io::Error::other("parent exited before the child started"));
            }
            Ok(())
        });
    }
}

/// Waits until `fd` is readable (or hung up); `None` waits forever.
/// Returns whether it became readable before the timeout.
pub fn wait_readable(fd: RawFd, timeout: Option<std::time::Duration>) -> io::Result<bool> {
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as libc::c_int);
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        match syscall!(poll(&mut p, 1, ms)) {
            Ok(n) => return Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Ignores SIGXFSZ, so that a write past the file-size limit (RLIMIT_FSIZE)
/// fails with `EFBIG` and becomes an ERROR answer instead of killing the server.
/// Forked workers inherit the disposition.
pub fn ignore_sigxfsz() -> io::Result<()> {
    // SAFETY: SIG_IGN is a valid disposition.
    if unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `close` on a TCP socket send a reset instead of a FIN (SO_LINGER with
/// a zero timeout): the robustness suite's "client resets mid-transfer".
pub fn reset_on_close(fd: RawFd) -> io::Result<()> {
    let lin = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    syscall!(setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_LINGER,
        &lin as *const libc::linger as *const libc::c_void,
        std::mem::size_of::<libc::linger>() as libc::socklen_t,
    ))
    .map(drop)
}

/// Clock ticks per second of the CPU times in `/proc/<pid>/stat`.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 {
        n as u64
    } else {
        100
    }
}

/// CPU time (user + system) the calling thread has used so far.
pub fn thread_cpu_time() -> io::Result<std::time::Duration> {
    rusage_cpu(libc::RUSAGE_THREAD)
}

/// CPU time (user + system) of this process, all its threads, so far (not
/// its children).
pub fn process_cpu_time() -> io::Result<std::time::Duration> {
    rusage_cpu(libc::RUSAGE_SELF)
}

fn rusage_cpu(who: libc::c_int) -> io::Result<std::time::Duration> {
    // SAFETY: a zeroed rusage is valid; getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    syscall!(getrusage(who, &mut ru))?;
    let d = |t: libc::timeval| {
        std::time::Duration::new(
            t.tv_sec.max(0) as u64,
            (t.tv_usec.clamp(0, 999_999) * 1000) as u32,
        )
    };
    Ok(d(ru.ru_utime) + d(ru.ru_stime))
}

/// Sets the nice value of the calling thread alone (Linux applies
/// `setpriority` to a thread id). Below 0 needs CAP_SYS_NICE or RLIMIT_NICE.
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    // SAFETY: gettid has no memory effects.
    let tid = unsafe { libc::gettid() };
    syscall!(setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)).map(drop)
}
