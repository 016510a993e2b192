//! The runs a report or a comparison reads: a sweep's CSV with its label
//! and the metadata beside it, its rows grouped into scenarios (one group
//! per scenario, as many rows as the sweep repeated it), and the numbers a
//! report takes from a row.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::report::stats::Estimate;
use crate::results::row::{read_sweep_csv, ReadError, SweepCsv};
use crate::results::{Metadata, Row};
use crate::scenario::{Op, Volume};
use crate::server::Mode;

/// One sweep's results, as read back.
#[derive(Debug, Clone)]
pub struct Run {
    /// `--label`, or the CSV's file name without `.csv`.
    pub label: String,
    pub path: PathBuf,
    pub csv: SweepCsv,
    /// The JSON beside the CSV, or why it could not be read (a report still
    /// shows the CSV without it).
    pub meta: Result<Metadata, String>,
}

impl Run {
    pub fn read(path: &Path, label: Option<String>) -> Result<Run, ReadError> {
        let csv = read_sweep_csv(path)?;
        let meta_path = path.with_extension("json");
        let meta = if meta_path.is_file() {
            Metadata::read(&meta_path).map_err(|e| e.to_string())
        } else {
            Err(format!("no metadata file {}", meta_path.display()))
        };
        Ok(Run {
            label: label.unwrap_or_else(|| default_label(path)),
            path: path.to_path_buf(),
            csv,
            meta,
        })
    }

    pub fn rows(&self) -> &[Row] {
        &self.csv.rows
    }

    /// The CSV has both sides' CPU columns.
    pub fn has_cpu(&self) -> bool {
        self.csv.has("server_cpu_s") && self.csv.has("client_cpu_s")
    }

    /// The CSV has both sides' memory columns.
    pub fn has_mem(&self) -> bool {
        self.csv.has("server_mem_mib") && self.csv.has("client_mem_mib")
    }

    /// Its scenarios, in the order the CSV first names them.
    pub fn scenarios(&self) -> Vec<Scenario<'_>> {
        let mut out: Vec<Scenario<'_>> = Vec::new();
        for r in self.rows() {
            let key = Key::of(r);
            match out.iter_mut().find(|s| s.key == key) {
                Some(s) => s.rows.push(r),
                None => out.push(Scenario { key, rows: vec![r] }),
            }
        }
        out
    }

    /// The most times a scenario ran.
    pub fn repeats(&self) -> usize {
        self.scenarios()
            .iter()
            .map(|s| s.rows.len())
            .max()
            .unwrap_or(0)
    }
}

/// `results/stress_20261130T111937Z.csv` -> `stress_20261130T111937Z`.
pub fn default_label(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// What names a scenario: the columns a sweep varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub mode: Mode,
    pub server_pool: usize,
    pub operation: Op,
    pub volume: Volume,
    pub client_pool: usize,
}

impl Key {
    pub fn of(r: &Row) -> Key {
        Key {
            mode: r.mode,
            server_pool: r.server_pool,
            operation: r.operation,
            volume: r.volume,
            client_pool: r.client_pool,
        }
    }
}

/// `thread, server pool 5: download 10MB x 50 clients`.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, server pool {}: {} {} x {} client{}",
            self.mode,
            self.server_pool,
            self.operation,
            self.volume,
            self.client_pool,
            if self.client_pool == 1 { "" } else { "s" }
        )
    }
}

/// One scenario of a run and each of its repeats' rows.
#[derive(Debug, Clone)]
pub struct Scenario<'a> {
    pub key: Key,
    pub rows: Vec<&'a Row>,
}

impl Scenario<'_> {
    /// The metric over the repeats.
    pub fn estimate(&self, m: Metric) -> Estimate {
        let xs: Vec<f64> = self.rows.iter().map(|r| m.of(r)).collect();
        Estimate::of(&xs).expect("a scenario has at least one row")
    }

    /// Every repeat's clients succeeded and its server counted no failure.
    pub fn ok(&self) -> bool {
        self.rows.iter().all(|r| r.ok())
    }
}

/// A number a report takes from a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    AggregateBps,
    ThroughputBps,
    AvgTime,
    P50,
    P99,
    ServerCpu,
    ClientCpu,
    ServerMem,
    ClientMem,
}

impl Metric {
    pub fn of(self, r: &Row) -> f64 {
        match self {
            Metric::AggregateBps => r.aggregate_bps,
            Metric::ThroughputBps => r.throughput_bps,
            Metric::AvgTime => r.avg_time_s,
            Metric::P50 => r.p50_s,
            Metric::P99 => r.p99_s,
            Metric::ServerCpu => r.server_cpu_s,
            Metric::ClientCpu => r.client_cpu_s,
            Metric::ServerMem => r.server_mem_mib,
            Metric::ClientMem => r.client_mem_mib,
        }
    }

    /// Its CSV column.
    pub fn column(self) -> &'static str {
        match self {
            Metric::AggregateBps => "aggregate_Bps",
            Metric::ThroughputBps => "throughput_Bps",
            Metric::AvgTime => "avg_time_s",
            Metric::P50 => "p50_s",
            Metric::P99 => "p99_s",
            Metric::ServerCpu => "server_cpu_s",
            Metric::ClientCpu => "client_cpu_s",
            Metric::ServerMem => "server_mem_mib",
            Metric::ClientMem => "client_mem_mib",
        }
    }
}

/// The values of the matrix in the order they first appear in any of the runs.
pub fn distinct<T: PartialEq + Copy>(runs: &[Run], f: impl Fn(&Row) -> T) -> Vec<T> {
    let mut out = Vec::new();
    for r in runs.iter().flat_map(|r| r.rows()) {
        let v = f(r);
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Sorted by a key (server and client pools, volumes).
pub fn distinct_sorted<T: PartialEq + Copy + Ord>(runs: &[Run], f: impl Fn(&Row) -> T) -> Vec<T> {
    let mut v = distinct(runs, f);
    v.sort();
    v
}
