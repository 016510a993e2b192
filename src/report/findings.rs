//! What a reader of a run should not miss, worked out once for the HTML
//! report and the sweep's text summary: the scenarios that failed and why,
//! the scenarios where the client pool used more CPU than the server, and,
//! with repeats, the noisy ones.

use crate::report::runs::{Key, Metric, Run, Scenario};
use crate::report::stats::Estimate;

/// A scenario with a failed client or a failed server task.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    pub key: Key,
    /// Repeats that failed, of all.
    pub failed: usize,
    pub repeats: usize,
    /// Clients that failed and server tasks that failed, over its repeats.
    pub client_fails: usize,
    pub server_fails: u64,
    /// The CSV's `errors` of the failed repeats, `; ` between different ones.
    pub causes: String,
}

/// A scenario whose client pool used more CPU than its server.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuHeavyPool {
    pub key: Key,
    /// Means over its repeats.
    pub server_cpu_s: f64,
    pub client_cpu_s: f64,
}

/// A repeated scenario whose throughput or time varied by more than [`NOISY_CV`](crate::report::stats::NOISY_CV).
#[derive(Debug, Clone, PartialEq)]
pub struct Noisy {
    pub key: Key,
    pub throughput: Estimate,
    pub time: Estimate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    pub scenarios: usize,
    pub failed: Vec<Failed>,
    /// `None` when the CSV has no CPU columns.
    pub cpu_heavy_pool: Option<Vec<CpuHeavyPool>>,
    /// The server's CPU resolution, seconds: the pool counts as heavier only
    /// by more than this.
    pub cpu_tick_s: f64,
    /// `None` without repeats.
    pub noisy: Option<Vec<Noisy>>,
}

/// The server's CPU is read in clock ticks: 1/100 s unless the metadata says otherwise.
const DEFAULT_TICKS_PER_S: u64 = 100;

impl Findings {
    pub fn of(run: &Run) -> Findings {
        let scenarios = run.scenarios();
        let ticks = run
            .meta
            .as_ref()
            .map(|m| m.measurement.clock_ticks_per_s)
            .unwrap_or(DEFAULT_TICKS_PER_S)
            .max(1);
        let cpu_tick_s = 1.0 / ticks as f64;
        let cpu_heavy_pool = run.has_cpu().then(|| {
            scenarios
                .iter()
                .filter_map(|s| {
                    let server = s.estimate(Metric::ServerCpu).mean;
                    let client = s.estimate(Metric::ClientCpu).mean;
                    (client > server + cpu_tick_s).then_some(CpuHeavyPool {
                        key: s.key,
                        server_cpu_s: server,
                        client_cpu_s: client,
                    })
                })
                .collect()
        });
        let noisy = (run.repeats() >= 2).then(|| {
            scenarios
                .iter()
                .filter_map(|s| {
                    let throughput = s.estimate(Metric::AggregateBps);
                    let time = s.estimate(Metric::AvgTime);
                    (throughput.noisy() || time.noisy()).then_some(Noisy {
                        key: s.key,
                        throughput,
                        time,
                    })
                })
                .collect()
        });
        Findings {
            scenarios: scenarios.len(),
            failed: scenarios.iter().filter_map(failed).collect(),
            cpu_heavy_pool,
            cpu_tick_s,
            noisy,
        }
    }
}

fn failed(s: &Scenario<'_>) -> Option<Failed> {
    let bad: Vec<_> = s.rows.iter().filter(|r| !r.ok()).collect();
    if bad.is_empty() {
        return None;
    }
    let mut causes: Vec<&str> = Vec::new();
    for r in &bad {
        let c = r.errors.as_str();
        if !c.is_empty() && !causes.contains(&c) {
            causes.push(c);
        }
    }
    let client_fails: usize = bad.iter().map(|r| r.fail).sum();
    Some(Failed {
        key: s.key,
        failed: bad.len(),
        repeats: s.rows.len(),
        client_fails,
        server_fails: bad.iter().filter_map(|r| r.server_fail).sum(),
        causes: match (causes.is_empty(), client_fails) {
            (false, _) => causes.join("; "),
            (true, 0) => "every client succeeded; the server counted failed tasks".into(),
            (true, _) => "no cause in the CSV's errors column".into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::row::SweepCsv;
    use crate::results::Row;
    use crate::scenario::{Op, Volume};
    use crate::server::Mode;

    fn row(clients: usize, fail: usize, server_fail: u64, errors: &str, cpu: (f64, f64)) -> Row {
        Row {
            timestamp: "t".into(),
            mode: Mode::Thread,
            server_pool: 1,
            operation: Op::Download,
            volume: Volume::kb(10),
            client_pool: clients,
            avg_time_s: 0.01,
            throughput_bps: 1e6,
            success: clients - fail,
            fail,
            server_success: Some((clients - fail) as u64),
            server_fail: Some(server_fail),
            p50_s: 0.01,
            p90_s: 0.01,
            p99_s: 0.01,
            max_s: 0.01,
            wall_s: 0.01,
            aggregate_bps: 1e6,
            bytes_verified: 10240,
            errors: errors.into(),
            server_cpu_s: cpu.0,
            client_cpu_s: cpu.1,
            server_mem_mib: 1.0,
            client_mem_mib: 1.0,
            server: "fsbench".into(),
        }
    }

    fn run(rows: Vec<Row>, columns: &[&str]) -> Run {
        Run {
            label: "r".into(),
            path: "r.csv".into(),
            csv: SweepCsv {
                rows,
                columns: columns.iter().map(|c| c.to_string()).collect(),
            },
            meta: Err("none".into()),
        }
    }

    #[test]
    fn failures_cpu_and_noise_are_found_per_scenario() {
        let all = crate::results::CSV_HEADER;
        let r = run(
            vec![
                // Scenario x1: a timeout in one repeat of two.
                row(1, 1, 0, "timeout: 1", (0.0, 0.0)),
                row(1, 0, 0, "", (0.0, 0.0)),
                // x2: the server alone counted a failure; pool heavier by 20 ms.
                row(2, 0, 1, "", (0.10, 0.12)),
                // x3: the pool heavier by 5 ms only: within a 10 ms tick.
                row(3, 0, 0, "", (0.100, 0.105)),
            ],
            &all,
        );
        let f = Findings::of(&r);
        assert_eq!(f.scenarios, 3);
        assert_eq!(f.failed.len(), 2);
        assert_eq!(
            (
                f.failed[0].failed,
                f.failed[0].repeats,
                f.failed[0].client_fails
            ),
            (1, 2, 1)
        );
        assert_eq!(f.failed[0].causes, "timeout: 1");
        assert_eq!(
            f.failed[1].causes,
            "every client succeeded; the server counted failed tasks"
        );
        let heavy = f.cpu_heavy_pool.unwrap();
        assert_eq!(heavy.len(), 1);
        assert_eq!(heavy[0].key.client_pool, 2);
        // x1 is repeated, with no spread at all: not noisy.
        assert_eq!(f.noisy, Some(Vec::new()));
        // Without the CPU columns nothing is claimed about the CPU.
        let old = run(r.csv.rows.clone(), &all[..20]);
        assert_eq!(Findings::of(&old).cpu_heavy_pool, None);
    }
}
