//! What the load generator measures of the processes on both sides of a run:
//! CPU time and memory, read from `/proc` (the sys layer adds `getrusage`).
//!
//! - CPU of a process tree: utime + stime + cutime + cstime of
//!   `/proc/<pid>/stat` over the root and every descendant, so that children
//!   already reaped (a replaced server worker) still count, through their
//!   parent's cutime/cstime;
//! - memory as PSS (proportional set size, `/proc/<pid>/smaps_rollup`): a page
//!   shared by n processes counts 1/n in each, so a sum over processes counts
//!   every page once (VmHWM sums count pages shared after `fork` once per
//!   process); a [`PssSampler`] thread follows the peak of such a sum;
//! - `/proc/<pid>/status` fields (VmHWM, VmRSS) and child pids.
//!
//! Readers return 0 or `None` for a process that is gone: a process may exit
//! between being listed and being read. This module only reads: it never
//! signals nor waits for a process.

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The fields of `/proc/<pid>/stat` this module uses; CPU times in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub state: char,
    /// The process group.
    pub pgrp: u32,
    pub utime: u64,
    pub stime: u64,
    /// Of the children this process has waited for.
    pub cutime: u64,
    pub cstime: u64,
}

impl Stat {
    /// The process's own CPU and that of its reaped children.
    pub fn cpu_ticks(&self) -> u64 {
        self.utime + self.stime + self.cutime + self.cstime
    }

    /// Running or sleeping: neither a zombie nor dead.
    pub fn running(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) sits in
/// parentheses and may hold spaces and `)` itself, so the fields are counted
/// from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')', [0] is field 3 of proc(5) (state); utime, stime, cutime and
    // cstime (fields 14 to 17) are [11] to [14]; the children's are signed.
    let ticks = |i: usize| f.get(i)?.parse::<u64>().ok();
    let child_ticks = |i: usize| f.get(i)?.parse::<i64>().ok().map(|v| v.max(0) as u64);
    Some(Stat {
        state: f.first()?.chars().next()?,
        pgrp: f.get(2)?.parse().ok()?,
        utime: ticks(11)?,
        stime: ticks(12)?,
        cutime: child_ticks(13)?,
        cstime: child_ticks(14)?,
    })
}

/// The processes still running (not zombies) in the process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|s| s.pgrp == pgid && s.running()))
        .collect()
}

/// `/proc/<pid>/stat` of a process; `None` when it is gone.
pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The `Pss:` line of `/proc/<pid>/smaps_rollup`, in KiB (not `Pss_Anon:` and the like).
pub fn parse_pss_kib(smaps_rollup: &str) -> Option<u64> {
    smaps_rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// PSS of one process, in KiB; `None` when it is gone (or a zombie, which
/// has no memory left). `buf` is reused between calls.
fn pss_kib_into(pid: u32, buf: &mut String) -> Option<u64> {
    buf.clear();
    std::fs::File::open(format!("/proc/{pid}/smaps_rollup"))
        .and_then(|mut f| f.read_to_string(buf))
        .ok()?;
    parse_pss_kib(buf)
}

/// PSS of one process, in KiB; `None` when it is gone.
pub fn pss_kib(pid: u32) -> Option<u64> {
    pss_kib_into(pid, &mut String::new())
}

/// A KiB field (`VmRSS:`, `VmHWM:`, ...) of a `/proc/<pid>/status` text.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// A KiB field (`VmRSS:`, `VmHWM:`, ...) of `/proc/<pid>/status` (this process
/// for `None`); 0 when unknown.
pub fn proc_status_kib(pid: Option<u32>, field: &str) -> u64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_string(),
    };
    parse_status_kib(&std::fs::read_to_string(path).unwrap_or_default(), field).unwrap_or(0)
}

/// Peak resident set size (VmHWM) of a process, in KiB; 0 when unknown.
pub fn peak_rss_kib(pid: Option<u32>) -> u64 {
    proc_status_kib(pid, "VmHWM:")
}

/// Pids of the direct children of a process (from every thread's `children`:
/// a child is listed under the thread that forked it).
pub fn child_pids(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let s = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            out.extend(s.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
        }
    }
    out
}

/// A process and all its descendants, each once, the root first.
pub fn tree(root: u32) -> Vec<u32> {
    let mut seen = HashSet::from([root]);
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        for c in child_pids(out[i]) {
            if seen.insert(c) {
                out.push(c);
            }
        }
        i += 1;
    }
    out
}

/// CPU ticks (user + system, reaped children included) of a process tree.
///
/// A child reaped between the reading of its parent and its own reading is
/// missed by that one snapshot (its time moved to the parent's cutime after
/// the parent was read): a rare undercount, never a double count.
pub fn tree_cpu_ticks(root: u32) -> u64 {
    tree(root)
        .into_iter()
        .filter_map(stat)
        .map(|s| s.cpu_ticks())
        .sum()
}

/// Clock ticks (of `/proc/<pid>/stat`) as seconds.
pub fn ticks_to_secs(ticks: u64) -> f64 {
    ticks as f64 / crate::sys::clock_ticks_per_sec() as f64
}

/// PSS of a process tree, summed, in KiB.
pub fn tree_pss_kib(root: u32) -> u64 {
    let mut buf = String::new();
    tree(root)
        .into_iter()
        .filter_map(|p| pss_kib_into(p, &mut buf))
        .sum()
}

/// VmHWM of a process tree, summed, in KiB.
pub fn tree_peak_rss_kib(root: u32) -> u64 {
    tree(root).into_iter().map(|p| peak_rss_kib(Some(p))).sum()
}

/// What a [`PssSampler`] sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// A process and its descendants, listed anew at every sample.
    Tree(u32),
    /// One process alone.
    Process(u32),
}

/// How often a [`PssSampler`] samples, besides at its start and its end.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(100);

/// The sampler thread's nice value, when it may raise its priority.
pub const SAMPLER_NICE: i32 = -10;

/// What a [`PssSampler`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PssPeak {
    /// The largest sum of PSS over the watched processes, in KiB.
    pub peak_kib: u64,
    pub samples: u64,
    /// The sampler thread's own CPU time: what the sampling cost.
    pub cpu_s: f64,
    /// From the first sample to the last.
    pub secs: f64,
    /// The longest time between two samples: how well the peak is covered
    /// (a thread competing for busy cores may wake up late).
    pub max_gap_s: f64,
    /// Whether the sampler could run at nice [`SAMPLER_NICE`].
    pub raised_priority: bool,
}

struct Control {
    watch: Vec<Watch>,
    stop: bool,
    soon: bool,
    /// The start sample is taken.
    started: bool,
}

/// A background thread that sums the PSS of a set of processes at its start
/// (before [`PssSampler::start`] returns), every [`SAMPLE_PERIOD`], when asked
/// ([`PssSampler::sample_soon`]) and at its end, and keeps the largest sum.
///
/// It runs as a thread of its own so that its CPU can be told apart (the
/// pool counts its client threads' CPU, not the process's).
pub struct PssSampler {
    shared: Arc<(Mutex<Control>, Condvar)>,
    handle: JoinHandle<PssPeak>,
}

impl PssSampler {
    pub fn start(watch: Vec<Watch>) -> io::Result<PssSampler> {
        let shared = Arc::new((
            Mutex::new(Control {
                watch,
                stop: false,
                soon: false,
                started: false,
            }),
            Condvar::new(),
        ));
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("pss-sampler".into())
            .stack_size(128 * 1024)
            .spawn(move || sample_loop(&s))?;
        let me = PssSampler { shared, handle };
        // The first sample is the one at the start: taken before the caller
        // starts what is measured, however late the thread gets to run.
        let mut c = me.control();
        while !c.started && !me.handle.is_finished() {
            // Bounded, so that a sampler thread that died cannot hold us.
            c = me
                .shared
                .1
                .wait_timeout(c, SAMPLE_PERIOD)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(c);
        Ok(me)
    }

    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds processes to the sum from the next sample on.
    pub fn add(&self, w: Watch) {
        self.control().watch.push(w);
    }

    /// Takes a sample now instead of at the next period (e.g. once every
    /// client is up, which a run shorter than the period would miss).
    pub fn sample_soon(&self) {
        self.control().soon = true;
        self.shared.1.notify_all();
    }

    /// Takes the last sample and returns what was seen.
    pub fn finish(self) -> PssPeak {
        self.control().stop = true;
        self.shared.1.notify_all();
        self.handle.join().unwrap_or_default()
    }
}

fn sample_loop(shared: &(Mutex<Control>, Condvar)) -> PssPeak {
    let lock = || shared.0.lock().unwrap_or_else(|e| e.into_inner());
    // Among a hundred busy processes on two cores, a thread of normal
    // priority woke up to 0.4 s late (measured): the samples would thin out
    // exactly when memory peaks. Needs privileges; without, it runs as is.
    let raised_priority = crate::sys::set_thread_nice(SAMPLER_NICE).is_ok();
    let cpu0 = crate::sys::thread_cpu_time().unwrap_or_default();
    let t0 = Instant::now();
    let mut next = t0;
    let (mut peak_kib, mut samples) = (0, 0);
    let mut last: Option<Instant> = None;
    let mut max_gap = Duration::ZERO;
    let mut buf = String::new();
    loop {
        let now = Instant::now();
        if let Some(l) = last {
            max_gap = max_gap.max(now - l);
        }
        last = Some(now);
        // Copied so that `add` never waits for a sample to finish.
        let (watch, stop) = {
            let mut c = lock();
            c.soon = false;
            (c.watch.clone(), c.stop)
        };
        let mut pids = Vec::new();
        for w in watch {
            match w {
                Watch::Tree(root) => pids.extend(tree(root)),
                Watch::Process(p) => pids.push(p),
            }
        }
        let sum: u64 = pids
            .into_iter()
            .filter_map(|p| pss_kib_into(p, &mut buf))
            .sum();
        peak_kib = peak_kib.max(sum);
        samples += 1;
        if stop {
            break;
        }
        if samples == 1 {
            lock().started = true;
            shared.1.notify_all();
        }
        // On a fixed grid: a slow sample does not push the later ones back
        // (a point already past is skipped, and shows in `max_gap_s`).
        let now = Instant::now();
        while next <= now {
            next += SAMPLE_PERIOD;
        }
        let mut c = lock();
        while !c.stop && !c.soon {
            let now = Instant::now();
            if now >= next {
                break;
            }
            c = shared
                .1
                .wait_timeout(c, next - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
    let cpu = crate::sys::thread_cpu_time().unwrap_or_default();
    PssPeak {
        peak_kib,
        samples,
        cpu_s: cpu.saturating_sub(cpu0).as_secs_f64(),
        secs: t0.elapsed().as_secs_f64(),
        max_gap_s: max_gap.as_secs_f64(),
        raised_priority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        // A command name may hold spaces and ')' (it is whatever the program set).
        let line = "4242 (a) b ) (c) S 1 4242 4242 0 -1 4194560 1234 0 5 0 \
                    731 129 17 -3 20 0 1 0 16570 3133440 406 18446744073709551615 \
                    1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            Stat {
                state: 'S',
                pgrp: 4242,
                utime: 731,
                stime: 129,
                cutime: 17,
                cstime: 0,
            }
        );
        assert_eq!(s.cpu_ticks(), 731 + 129 + 17);
        assert!(s.running());
        let zombie = line.replace(") S 1", ") Z 1");
        assert!(!parse_stat(&zombie).unwrap().running());
        assert_eq!(parse_stat("4242 (cut short) S 1 2 3"), None);
        assert_eq!(parse_stat("no parenthesis at all"), None);
    }

    #[test]
    fn pss_is_the_pss_line_of_smaps_rollup() {
        let text =
            "556bdfd81000-7ffe2a883000 ---p 00000000 00:00 0                          [rollup]\n\
                    Rss:                1640 kB\n\
                    Pss_Dirty:           116 kB\n\
                    Pss:                 595 kB\n\
                    Pss_Anon:            116 kB\n\
                    Pss_File:            479 kB\n\
                    Shared_Clean:       1444 kB\n";
        assert_eq!(parse_pss_kib(text), Some(595));
        assert_eq!(parse_pss_kib("Rss: 10 kB\nPss_Anon: 3 kB\n"), None);
        assert_eq!(parse_pss_kib(""), None);
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let text =
            "Name:\tfsbench\nVmPeak:\t  20000 kB\nVmHWM:\t    1772 kB\nVmRSS:\t    1700 kB\n";
        assert_eq!(parse_status_kib(text, "VmHWM:"), Some(1772));
        assert_eq!(parse_status_kib(text, "VmRSS:"), Some(1700));
        assert_eq!(parse_status_kib(text, "VmSwap:"), None);
    }

    /// A `cat` that has echoed a line back: past its exec, waiting on stdin,
    /// alive until its stdin closes.
    fn running_cat() -> std::process::Child {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.as_mut().unwrap().write_all(b"up\n").unwrap();
        let mut line = [0u8; 3];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut line)
            .unwrap();
        assert_eq!(&line, b"up\n");
        child
    }

    fn end(mut child: std::process::Child) {
        drop(child.stdin.take());
        child.wait().unwrap();
    }

    #[test]
    fn a_child_is_in_its_parents_tree_and_counted_once() {
        let me = std::process::id();
        let child = running_cat();
        let t = tree(me);
        assert_eq!(t[0], me);
        assert!(t.contains(&child.id()), "{t:?}");
        let unique: HashSet<u32> = t.iter().copied().collect();
        assert_eq!(unique.len(), t.len(), "{t:?}");
        assert_eq!(tree(child.id()), vec![child.id()]);
        assert!(pss_kib(child.id()).unwrap() > 0);
        assert!(tree_pss_kib(me) > 0);
        let pid = child.id();
        end(child);
        assert_eq!(pss_kib(pid), None);
    }

    #[test]
    fn this_threads_cpu_grows_with_work_and_shows_in_the_tree() {
        let before = crate::sys::thread_cpu_time().unwrap();
        let ticks_before = tree_cpu_ticks(std::process::id());
        // Work until the thread's own clock moves by three ticks' worth.
        let tick = Duration::from_secs(1) / crate::sys::clock_ticks_per_sec() as u32;
        let mut x = 1u64;
        while crate::sys::thread_cpu_time().unwrap() < before + 3 * tick {
            for i in 0..10_000u64 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
            }
            std::hint::black_box(x);
        }
        assert!(
            crate::sys::process_cpu_time().unwrap()
                >= crate::sys::thread_cpu_time().unwrap() - before
        );
        assert!(tree_cpu_ticks(std::process::id()) > ticks_before);
    }

    #[test]
    fn the_sampler_sees_memory_alive_at_its_end() {
        let me = std::process::id();
        let s = PssSampler::start(vec![Watch::Process(me)]).unwrap();
        // 48 MiB touched page by page, alive until the last sample.
        let mut big = vec![0u8; 48 << 20];
        for i in (0..big.len()).step_by(4096) {
            big[i] = 1;
        }
        s.sample_soon();
        let p = s.finish();
        std::hint::black_box(&big);
        assert!(p.peak_kib >= 48 << 10, "{p:?}");
        assert!(p.samples >= 2, "{p:?}");
        assert!(p.cpu_s >= 0.0 && p.secs >= 0.0);
    }

    #[test]
    fn the_sampler_sums_processes_added_later() {
        let child = running_cat();
        let own = pss_kib(child.id()).unwrap();
        // Only the child, from the second sample on (the first, of nothing,
        // is taken before `start` returns): the peak is the child's PSS.
        let s = PssSampler::start(Vec::new()).unwrap();
        s.add(Watch::Process(child.id()));
        let p = s.finish();
        end(child);
        assert!(p.samples >= 2, "{p:?}");
        assert!(
            p.peak_kib > 0 && p.peak_kib < own * 4,
            "{p:?}, cat alone {own} KiB"
        );
        assert!(p.peak_kib < pss_kib(std::process::id()).unwrap());
    }
}
