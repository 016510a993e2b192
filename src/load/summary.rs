//! Summaries of pool runs and their printers, generic over `W: Write`: the
//! human text and one JSON object of a pool run, and the sweep's tables of
//! its rows (the rows themselves are written by [`crate::results`]).
//!
//! Every number printed here was measured by the pool; none is a placeholder.
//! Times are over the clients that succeeded; a run with no success prints
//! zeros beside its failure count.

use std::collections::BTreeMap;
use std::io::{self, Write};

use crate::load::pool::PoolReport;
use crate::results::machine::{self, Calibration};
use crate::results::Row;
use crate::scenario::{scenario_columns, scenario_heads, Op, MIB};

/// The numbers of one pool run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub success: usize,
    pub fail: usize,
    pub avg_time_s: f64,
    /// Each client's bytes over its time, averaged over clients.
    pub throughput_bps: f64,
    pub p50_s: f64,
    pub p90_s: f64,
    pub p99_s: f64,
    pub max_s: f64,
    pub wall_s: f64,
    /// Verified bytes over wall time.
    pub aggregate_bps: f64,
    pub bytes_verified: u64,
    /// Failure cause -> (count, one example message).
    pub failures: BTreeMap<String, (usize, String)>,
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Summary {
    pub fn of(r: &PoolReport) -> Summary {
        let ok: Vec<_> = r.results.iter().filter(|c| c.ok).collect();
        let mut times: Vec<f64> = ok.iter().map(|c| c.secs).collect();
        times.sort_by(f64::total_cmp);
        let n = ok.len().max(1) as f64;
        let bytes_verified: u64 = ok.iter().map(|c| c.bytes).sum();
        let mut failures: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for c in r.results.iter().filter(|c| !c.ok) {
            let cause = c.cause.clone().unwrap_or_else(|| "unknown".into());
            let e = failures
                .entry(cause)
                .or_insert((0, c.message.clone().unwrap_or_default()));
            e.0 += 1;
        }
        // Folded from +0.0: `sum()` of no f64 is -0.0, printed "-0.000000".
        Summary {
            success: ok.len(),
            fail: r.results.len() - ok.len(),
            avg_time_s: times.iter().fold(0.0, |a, t| a + t) / n,
            throughput_bps: ok
                .iter()
                .map(|c| c.bytes as f64 / c.secs.max(1e-9))
                .fold(0.0, |a, b| a + b)
                / n,
            p50_s: percentile(&times, 50.0),
            p90_s: percentile(&times, 90.0),
            p99_s: percentile(&times, 99.0),
            max_s: times.last().copied().unwrap_or(0.0),
            wall_s: r.wall_s,
            aggregate_bps: if r.wall_s > 0.0 {
                bytes_verified as f64 / r.wall_s
            } else {
                0.0
            },
            bytes_verified,
            failures,
        }
    }

    /// `cause: count; cause: count` (the CSV's errors column).
    pub fn errors_text(&self) -> String {
        self.failures
            .iter()
            .map(|(c, (n, _))| format!("{c}: {n}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Bytes per second as MB/s (1 MB = 1048576 bytes).
pub fn mbps(bps: f64) -> String {
    format!("{:.2} MB/s", bps / MIB as f64)
}

/// The human summary of one pool run.
pub fn write_text<W: Write + ?Sized>(w: &mut W, r: &PoolReport) -> io::Result<()> {
    let s = Summary::of(r);
    writeln!(w, "mode:                    {}", r.mode.name())?;
    writeln!(w, "operation:               {}", r.op)?;
    writeln!(w, "clients:                 {}", r.clients)?;
    writeln!(
        w,
        "volume:                  {} ({} bytes)",
        r.volume, r.volume.bytes
    )?;
    writeln!(w, "server:                  {}", r.addr)?;
    if !r.tcp_congestion.is_empty() {
        writeln!(w, "TCP congestion control:  {}", r.tcp_congestion)?;
    }
    writeln!(w, "average time per client: {:.6} s", s.avg_time_s)?;
    writeln!(w, "throughput per client:   {}", mbps(s.throughput_bps))?;
    writeln!(w, "success / failure:       {} / {}", s.success, s.fail)?;
    writeln!(w, "total duration:          {:.6} s", s.wall_s)?;
    writeln!(
        w,
        "time per client:         p50 {:.6} s, p90 {:.6} s, p99 {:.6} s, max {:.6} s",
        s.p50_s, s.p90_s, s.p99_s, s.max_s
    )?;
    writeln!(
        w,
        "aggregate throughput:    {} ({} verified bytes in {:.6} s)",
        mbps(s.aggregate_bps),
        s.bytes_verified,
        s.wall_s
    )?;
    writeln!(
        w,
        "peak memory of the pool: {:.1} MB (VmHWM summed over its processes; budget {:.0} MB)",
        r.peak_rss_kib as f64 / 1024.0,
        r.memory_budget_kib as f64 / 1024.0
    )?;
    writeln!(
        w,
        "peak PSS of the pool:    {:.1} MB (proportional set size summed over its processes, {} samples)",
        r.pss.peak_kib as f64 / 1024.0,
        r.pss.samples
    )?;
    writeln!(
        w,
        "CPU of the pool:         {:.3} s (user + system of the clients and the coordinating thread)",
        r.cpu_s
    )?;
    if !r.hosts.is_empty() {
        writeln!(
            w,
            "client hosts:            {} (memory and CPU above: summed over them; wall time from the common start)",
            r.hosts.len()
        )?;
        for h in &r.hosts {
            write!(
                w,
                "  {} ({}): clients {}..{}, {} ok, {} over {:.6} s, CPU {:.3} s, PSS {:.1} MB",
                h.host,
                h.address,
                h.first_index,
                h.first_index + h.clients - 1,
                h.success,
                mbps(h.aggregate_bps),
                h.wall_s,
                h.cpu_s,
                h.mem_mib
            )?;
            match &h.lost {
                Some(why) => writeln!(w, "; LOST: {why}")?,
                None => writeln!(w)?,
            }
        }
    }
    if s.failures.is_empty() {
        writeln!(w, "failures:                none")?;
    } else {
        writeln!(w, "failures:")?;
        for (cause, (n, example)) in &s.failures {
            writeln!(w, "  {cause}: {n} (e.g. {example})")?;
        }
    }
    Ok(())
}

/// The same as one JSON object.
pub fn to_json(r: &PoolReport) -> serde_json::Value {
    let s = Summary::of(r);
    let failures: serde_json::Map<String, serde_json::Value> = s
        .failures
        .iter()
        .map(|(c, (n, ex))| (c.clone(), serde_json::json!({"count": n, "example": ex})))
        .collect();
    serde_json::json!({
        "mode": r.mode.name(),
        "operation": r.op.name(),
        "clients": r.clients,
        "volume": r.volume.label(),
        "volume_bytes": r.volume.bytes,
        "server": r.addr,
        "tcp_congestion": r.tcp_congestion,
        "avg_time_s": s.avg_time_s,
        "throughput_Bps": s.throughput_bps,
        "success": s.success,
        "fail": s.fail,
        "wall_s": s.wall_s,
        "p50_s": s.p50_s,
        "p90_s": s.p90_s,
        "p99_s": s.p99_s,
        "max_s": s.max_s,
        "aggregate_Bps": s.aggregate_bps,
        "bytes_verified": s.bytes_verified,
        "failures": failures,
        "peak_rss_kib": r.peak_rss_kib,
        "memory_budget_kib": r.memory_budget_kib,
        "peak_pss_kib": r.pss.peak_kib,
        "pss": r.pss,
        "cpu_s": r.cpu_s,
        "first_index": r.results.first().map_or(0, |c| c.index),
        "results": r.results.iter().map(|c| c.to_value()).collect::<Vec<_>>(),
        "hosts": r.hosts,
    })
}

pub fn write_json<W: Write + ?Sized>(w: &mut W, r: &PoolReport) -> io::Result<()> {
    writeln!(w, "{}", to_json(r))
}

/// The final table of a sweep, as the old tool printed it.
pub fn write_table<W: Write + ?Sized>(w: &mut W, rows: &[Row]) -> io::Result<()> {
    writeln!(
        w,
        "{} {:>11} {:>14} {:>14} {:>8} {:>5} {:>7} {:>8}",
        scenario_heads(),
        "avg time s",
        "per client",
        "aggregate",
        "success",
        "fail",
        "srv ok",
        "srv fail"
    )?;
    for r in rows {
        writeln!(
            w,
            "{} {:>11.6} {:>14} {:>14} {:>8} {:>5} {:>7} {:>8}",
            scenario_columns(
                r.mode.name(),
                r.server_pool,
                r.operation,
                r.volume,
                r.client_pool
            ),
            r.avg_time_s,
            mbps(r.throughput_bps),
            mbps(r.aggregate_bps),
            r.success,
            r.fail,
            count(r.server_success),
            count(r.server_fail)
        )?;
    }
    Ok(())
}

/// A server's task count, or `-` for a server that keeps none.
pub fn count(n: Option<u64>) -> String {
    n.map_or_else(|| "-".into(), |n| n.to_string())
}

/// Rows grouped by a key, in order of first appearance.
fn groups<K: PartialEq>(rows: &[Row], key: impl Fn(&Row) -> K) -> Vec<(K, Vec<&Row>)> {
    let mut out: Vec<(K, Vec<&Row>)> = Vec::new();
    for r in rows {
        let k = key(r);
        match out.iter_mut().find(|(g, _)| *g == k) {
            Some((_, v)) => v.push(r),
            None => out.push((k, vec![r])),
        }
    }
    out
}

/// `mean (min-max)` of values, or `-` when there are none.
fn mean_range(v: &[f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let mean = v.iter().fold(0.0, |a, x| a + x) / v.len() as f64;
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{mean:.3} ({min:.3}-{max:.3})")
}

/// The client pool's share of the CPU both sides used, in percent (`-` when
/// neither used any the clock could see).
fn pool_share(rows: &[&Row]) -> String {
    let (srv, pool) = rows.iter().fold((0.0, 0.0), |(s, c), r| {
        (s + r.server_cpu_s, c + r.client_cpu_s)
    });
    if srv + pool > 0.0 {
        format!("{:.1} %", 100.0 * pool / (srv + pool))
    } else {
        "-".into()
    }
}

/// Where the CPU went, after the sweep's table: per operation, the client
/// pool's share of the CPU of both sides, with a warning when the generator
/// used more than the server in most scenarios; per (mode, operation), the
/// CPU-seconds each side spent per GB of verified file data.
/// `clients_elsewhere`: the clients ran on other hosts than the server (then
/// a pool heavier than the server took none of its cores: no warning, a note).
pub fn write_cpu_table<W: Write + ?Sized>(
    w: &mut W,
    rows: &[Row],
    clients_elsewhere: bool,
) -> io::Result<()> {
    writeln!(
        w,
        "CPU, user + system (server: its process tree; pool: its clients and coordinating thread):"
    )?;
    writeln!(
        w,
        "{:<9} {:>9} {:>13} {:>11} {:>10} {:>14}",
        "operation", "scenarios", "server CPU s", "pool CPU s", "pool share", "pool > server"
    )?;
    // The server's CPU is read in clock ticks (a difference of two readings
    // is off by less than one tick), the pool's to the microsecond: the pool
    // is heavier only when it is by more than that.
    let tick = 1.0 / crate::sys::clock_ticks_per_sec() as f64;
    let mut warnings = Vec::new();
    for (op, g) in groups(rows, |r| r.operation) {
        let srv = g.iter().fold(0.0, |a, r| a + r.server_cpu_s);
        let pool = g.iter().fold(0.0, |a, r| a + r.client_cpu_s);
        let heavier = g
            .iter()
            .filter(|r| r.client_cpu_s > r.server_cpu_s + tick)
            .count();
        writeln!(
            w,
            "{:<9} {:>9} {:>13.3} {:>11.3} {:>10} {:>14}",
            op.name(),
            g.len(),
            srv,
            pool,
            pool_share(&g),
            format!("{heavier} of {}", g.len())
        )?;
        if 2 * heavier > g.len() && clients_elsewhere {
            warnings.push(format!(
                "note: {op}: the client pool used more CPU than the server in {heavier} of {} \
                 scenarios; its clients ran on other hosts, so they took none of the server's cores.",
                g.len()
            ));
        } else if 2 * heavier > g.len() {
            warnings.push(format!(
                "WARNING: {op}: the client pool used more CPU than the server in {heavier} of {} \
                 scenarios: the results then describe the generator as much as the server.",
                g.len()
            ));
        }
    }
    writeln!(
        w,
        "(pool > server: by more than the server's clock resolution, {:.0} ms)",
        tick * 1000.0
    )?;
    for m in &warnings {
        writeln!(w, "{m}")?;
    }
    let per_gb = |r: &Row, cpu: f64| cpu / (r.bytes_verified as f64 / 1e9);
    writeln!(
        w,
        "\nCPU-seconds per GB of verified file data (GB = 10^9 bytes), mean (min-max) over scenarios:"
    )?;
    writeln!(
        w,
        "{:<8} {:<9} {:>9} {:>8} {:>12} {:>27} {:>27} {:>10}",
        "mode",
        "operation",
        "scenarios",
        "GB",
        "server CPU s",
        "server CPU-s/GB",
        "pool CPU-s/GB",
        "pool share"
    )?;
    let data = |r: &&Row| r.operation != Op::List && r.bytes_verified > 0;
    let mut coarse = false;
    for ((mode, op), g) in groups(rows, |r| (r.mode, r.operation)) {
        let g: Vec<&Row> = g.into_iter().filter(data).collect();
        if g.is_empty() {
            continue;
        }
        let srv: Vec<f64> = g.iter().map(|r| per_gb(r, r.server_cpu_s)).collect();
        let pool: Vec<f64> = g.iter().map(|r| per_gb(r, r.client_cpu_s)).collect();
        let gb = g.iter().fold(0.0, |a, r| a + r.bytes_verified as f64 / 1e9);
        let srv_total = g.iter().fold(0.0, |a, r| a + r.server_cpu_s);
        coarse |= srv_total < 100.0 * tick;
        writeln!(
            w,
            "{:<8} {:<9} {:>9} {:>8.3} {:>12.2} {:>27} {:>27} {:>10}",
            mode.name(),
            op.name(),
            g.len(),
            gb,
            srv_total,
            mean_range(&srv),
            mean_range(&pool),
            pool_share(&g)
        )?;
    }
    if coarse {
        writeln!(
            w,
            "(the server's CPU is counted in clock ticks of {:.0} ms: a line whose server CPU s \
             is under 100 ticks is coarse)",
            tick * 1000.0
        )?;
    }
    if rows.iter().any(|r| r.operation == Op::List) {
        writeln!(w, "(list moves no file data: it has no per-GB line)")?;
    }
    Ok(())
}

/// One line on one core's speed at the start and the end of the sweep
/// (`machine::calibrate`): the context of every CPU-seconds figure above.
pub fn write_calibration(w: &mut dyn Write, cal: &[Calibration]) -> io::Result<()> {
    match machine::calibration_text(cal) {
        Some(at) => writeln!(
            w,
            "one core's SHA-256 now, GB per CPU-second: {at} (a busier host lowers it, and raises every CPU-s/GB above)"
        ),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::pool::ClientResult;
    use crate::scenario::Volume;
    use crate::server::Mode;

    fn report(results: Vec<ClientResult>, wall_s: f64) -> PoolReport {
        PoolReport {
            mode: Mode::Thread,
            op: Op::Download,
            volume: Volume::kb(1),
            clients: results.len(),
            addr: "127.0.0.1:1".into(),
            results,
            wall_s,
            peak_rss_kib: 1000,
            memory_budget_kib: 2000,
            cpu_s: 0.5,
            pss: crate::launch::measure::PssPeak {
                peak_kib: 800,
                samples: 2,
                cpu_s: 0.001,
                secs: 0.1,
                max_gap_s: 0.1,
                raised_priority: false,
            },
            hosts: Vec::new(),
            tcp_congestion: "reno (auto, over loopback)".into(),
        }
    }

    fn ok(i: usize, secs: f64) -> ClientResult {
        ClientResult {
            index: i,
            ok: true,
            connected: true,
            secs,
            bytes: 1024,
            ..Default::default()
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v[..3], 50.0), 2.0);
        assert_eq!(percentile(&v[..1], 99.0), 1.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn a_run_without_success_prints_zero_times_not_negative_zero() {
        let refused = ClientResult {
            index: 0,
            cause: Some("connect refused".into()),
            message: Some("refused".into()),
            ..Default::default()
        };
        let s = Summary::of(&report(vec![refused], 0.001));
        assert_eq!((s.avg_time_s, s.throughput_bps), (0.0, 0.0));
        let row = row_of(&s, Mode::Thread, Op::Download, 0.0, 0.0);
        let mut csv = crate::results::row::csv_writer(Vec::new()).unwrap();
        crate::results::row::write_row(&mut csv, &row).unwrap();
        let text = String::from_utf8(csv.into_inner().unwrap()).unwrap();
        let f: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
        assert_eq!((f[6], f[7]), ("0.000000", "0"), "{f:?}");
        assert_eq!(f.len(), crate::results::CSV_HEADER.len());
        assert_eq!(
            &f[20..24],
            ["0.000000", "0.000000", "10.000", "20.000"],
            "the four measurement columns, after the first 20"
        );
        assert_eq!(f[24], "", "the server's label, last (empty here)");
        assert_eq!(
            to_json(&report(vec![], 0.001))["avg_time_s"].to_string(),
            "0.0"
        );
        assert!(s.avg_time_s.is_sign_positive() && s.throughput_bps.is_sign_positive());
    }

    #[test]
    fn summary_counts_only_verified_bytes_and_groups_failures() {
        let bad = ClientResult {
            index: 2,
            cause: Some("verification mismatch".into()),
            message: Some("sha differs".into()),
            ..Default::default()
        };
        let r = report(vec![ok(0, 1.0), ok(1, 3.0), bad], 4.0);
        let s = Summary::of(&r);
        assert_eq!((s.success, s.fail), (2, 1));
        assert_eq!(s.avg_time_s, 2.0);
        assert_eq!(s.bytes_verified, 2048);
        assert_eq!(s.aggregate_bps, 512.0);
        assert!((s.throughput_bps - (1024.0 + 1024.0 / 3.0) / 2.0).abs() < 1e-6);
        assert_eq!(s.errors_text(), "verification mismatch: 1");
        let mut text = Vec::new();
        write_text(&mut text, &r).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("success / failure:       2 / 1"), "{text}");
        assert!(
            text.contains("verification mismatch: 1 (e.g. sha differs)"),
            "{text}"
        );
        assert!(text.contains("CPU of the pool:         0.500 s"), "{text}");
        assert!(
            text.contains("TCP congestion control:  reno (auto, over loopback)\n"),
            "{text}"
        );
        assert!(text.contains("peak PSS of the pool:    0.8 MB"), "{text}");
        let j = to_json(&r);
        assert_eq!(j["failures"]["verification mismatch"]["count"], 1);
        assert_eq!(j["fail"], 1);
        assert_eq!(
            (j["cpu_s"].as_f64(), j["peak_pss_kib"].as_u64()),
            (Some(0.5), Some(800))
        );
    }

    /// The row of a scenario that gave `s`, with the given CPU on each side.
    fn row_of(s: &Summary, mode: Mode, op: Op, server_cpu_s: f64, client_cpu_s: f64) -> Row {
        let sc = crate::load::sweep::Scenario {
            mode,
            server_pool: 5,
            op,
            volume: Volume::mb(100),
            clients: 5,
        };
        let sides = crate::load::sweep::Sides {
            server_success: Some(5),
            server_fail: Some(0),
            server_cpu_s,
            client_cpu_s,
            server_mem_mib: 10.0,
            client_mem_mib: 20.0,
            ..Default::default()
        };
        sc.row("t".into(), s, sides)
    }

    /// A row of `bytes` verified bytes with the given CPU on each side.
    fn cpu_row(mode: &str, op: &str, bytes: u64, server_cpu_s: f64, client_cpu_s: f64) -> Row {
        let mut s = Summary::of(&report(vec![ok(0, 1.0)], 1.0));
        s.bytes_verified = bytes;
        row_of(
            &s,
            mode.parse().unwrap(),
            op.parse().unwrap(),
            server_cpu_s,
            client_cpu_s,
        )
    }

    #[test]
    fn the_cpu_table_gives_shares_per_gb_and_warns_when_the_pool_outworks_the_server() {
        let rows = vec![
            // download: the pool heavier in 2 of 3 scenarios -> a warning.
            cpu_row("thread", "download", 2_000_000_000, 1.0, 3.0),
            cpu_row("thread", "download", 2_000_000_000, 2.0, 3.0),
            cpu_row("process", "download", 1_000_000_000, 3.0, 1.0),
            // upload: heavier in 1 of 2 only -> no warning.
            cpu_row("thread", "upload", 1_000_000_000, 2.0, 1.0),
            cpu_row("thread", "upload", 1_000_000_000, 1.0, 2.0),
            cpu_row("thread", "list", 5_000, 0.01, 0.03),
            // Within the server clock's resolution (a tick is at most 10 ms
            // with USER_HZ >= 100): not heavier.
            cpu_row("process", "list", 5_000, 0.0, 0.004),
            cpu_row("process", "list", 5_000, 0.0, 0.002),
        ];
        let mut out = Vec::new();
        write_cpu_table(&mut out, &rows, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let line = |start: &str| {
            text.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no line {start:?} in\n{text}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        // 7 s of pool CPU out of 13 s.
        assert_eq!(line("download "), "download 3 6.000 7.000 53.8 % 2 of 3");
        assert_eq!(line("upload "), "upload 2 3.000 3.000 50.0 % 1 of 2");
        assert_eq!(line("list "), "list 3 0.010 0.036 78.3 % 1 of 3");
        assert!(text.contains("WARNING: download: the client pool used more CPU than the server in 2 of 3 scenarios"), "{text}");
        assert!(!text.contains("WARNING: list"), "{text}");
        assert!(!text.contains("WARNING: upload"), "{text}");
        assert!(text.contains("GB = 10^9 bytes"), "{text}");
        // Per GB: 0.5 and 1.0 s/GB on the server, 1.5 and 1.5 in the pool.
        assert_eq!(
            line("thread   download"),
            "thread download 2 4.000 3.00 0.750 (0.500-1.000) 1.500 (1.500-1.500) 66.7 %"
        );
        assert_eq!(
            line("process  download"),
            "process download 1 1.000 3.00 3.000 (3.000-3.000) 1.000 (1.000-1.000) 25.0 %"
        );
        assert_eq!(
            line("thread   upload"),
            "thread upload 2 2.000 3.00 1.500 (1.000-2.000) 1.500 (1.000-2.000) 50.0 %"
        );
        assert!(!text.contains("is coarse"), "{text}");
        // Clients on hosts of their own: a note, not a warning.
        let mut out = Vec::new();
        write_cpu_table(&mut out, &rows, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("WARNING"), "{text}");
        assert!(
            text.contains("note: download: the client pool used more CPU than the server in 2 of 3 scenarios; its clients ran on other hosts"),
            "{text}"
        );
        let mut out = Vec::new();
        let small = [cpu_row("thread", "upload", 10_000_000, 0.05, 0.1)];
        write_cpu_table(&mut out, &small, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("is coarse"), "{text}");
        assert!(!text.contains("thread   list"), "{text}");
    }
}
