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
    Some(Failed {
        key: s.key,
        failed: bad.len(),
        repeats: s.rows.len(),
        client_fails: bad.iter().map(|r| r.fail).sum(),
        server_fails: bad.iter().map(|r| r.server_fail).sum(),
        causes: if causes.is_empty() {
            "no client error recorded: the server counted failed tasks".to_string()
        } else {
            causes.join("; ")
        },
    })
}
