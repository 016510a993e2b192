//! One scenario's CSV row: numbers as numbers, written with a fixed number
//! of decimals (as the original tool's columns) and read back as written.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize, Serializer};

use crate::scenario::{Op, Volume};
use crate::server::Mode;

/// The sweep's CSV header, exactly (the original exercise's columns first).
pub const CSV_HEADER: [&str; 25] = [
    "timestamp",
    "mode",
    "server_pool",
    "operation",
    "volume",
    "client_pool",
    "avg_time_s",
    "throughput_Bps",
    "success",
    "fail",
    "server_success",
    "server_fail",
    "p50_s",
    "p90_s",
    "p99_s",
    "max_s",
    "wall_s",
    "aggregate_Bps",
    "bytes_verified",
    "errors",
    "server_cpu_s",
    "client_cpu_s",
    "server_mem_mib",
    "client_mem_mib",
    "server",
];

fn fixed<S: Serializer>(v: f64, decimals: usize, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:.decimals$}"))
}
fn f0<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    fixed(*v, 0, s)
}
fn f3<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    fixed(*v, 3, s)
}
fn f6<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    fixed(*v, 6, s)
}

/// One scenario: what it was, what the clients saw, what the server counted
/// and what each side cost. Times are seconds over the clients that
/// succeeded; `errors` is `cause: count; ...`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub timestamp: String,
    #[serde(with = "super::as_text")]
    pub mode: Mode,
    pub server_pool: usize,
    #[serde(with = "super::as_text")]
    pub operation: Op,
    #[serde(with = "super::as_text")]
    pub volume: Volume,
    pub client_pool: usize,
    #[serde(serialize_with = "f6")]
    pub avg_time_s: f64,
    /// Each client's bytes over its time, averaged over clients.
    #[serde(rename = "throughput_Bps", serialize_with = "f0")]
    pub throughput_bps: f64,
    pub success: usize,
    pub fail: usize,
    /// The server's own task counts (STATS); empty when it keeps none.
    pub server_success: Option<u64>,
    pub server_fail: Option<u64>,
    #[serde(serialize_with = "f6")]
    pub p50_s: f64,
    #[serde(serialize_with = "f6")]
    pub p90_s: f64,
    #[serde(serialize_with = "f6")]
    pub p99_s: f64,
    #[serde(serialize_with = "f6")]
    pub max_s: f64,
    /// From the start line's opening to the last client's end.
    #[serde(serialize_with = "f6")]
    pub wall_s: f64,
    /// Verified bytes over wall time.
    #[serde(rename = "aggregate_Bps", serialize_with = "f0")]
    pub aggregate_bps: f64,
    pub bytes_verified: u64,
    pub errors: String,
    /// CPU (user + system) of the server's process tree over the pool's run.
    #[serde(serialize_with = "f6")]
    pub server_cpu_s: f64,
    /// CPU of the client pool: its clients and its coordinating thread.
    #[serde(serialize_with = "f6")]
    pub client_cpu_s: f64,
    /// Peak PSS of the server's process tree over the pool's run, in MiB.
    #[serde(serialize_with = "f3")]
    pub server_mem_mib: f64,
    /// Peak PSS of the pool's process and its client processes, in MiB.
    #[serde(serialize_with = "f3")]
    pub client_mem_mib: f64,
    /// Which server: `fsbench`, or the label of a `--server-cmd` template.
    pub server: String,
}

impl Row {
    /// Every client succeeded, the server counted no failed task and
    /// nothing else went wrong (a server that had to be killed, say).
    pub fn ok(&self) -> bool {
        self.fail == 0 && self.server_fail.unwrap_or(0) == 0 && self.errors.is_empty()
    }
}

/// A CSV writer for rows: the header first, then one flushed line per row.
pub fn csv_writer<W: io::Write>(w: W) -> io::Result<csv::Writer<W>> {
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(w);
    w.write_record(CSV_HEADER)?;
    w.flush()?;
    Ok(w)
}

/// Appends one row and flushes it (a sweep stopped half-way keeps it).
pub fn write_row<W: io::Write>(w: &mut csv::Writer<W>, row: &Row) -> io::Result<()> {
    w.serialize(row).map_err(io::Error::other)?;
    w.flush()
}

/// Reads a sweep's CSV back; the error names the file and the record.
pub fn read_csv(path: &Path) -> io::Result<Vec<Row>> {
    let mut r = csv::Reader::from_path(path)
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
    r.deserialize()
        .map(|row| row.map_err(|e| io::Error::other(format!("{}: {e}", path.display()))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Row {
        Row {
            timestamp: "2026-11-30T10:00:00.000Z".into(),
            mode: Mode::Process,
            server_pool: 5,
            operation: Op::Upload,
            volume: Volume::kb(100),
            client_pool: 2,
            avg_time_s: 0.0123456789,
            throughput_bps: 1234567.89,
            success: 1,
            fail: 1,
            server_success: Some(1),
            server_fail: None,
            p50_s: 0.01,
            p90_s: 0.02,
            p99_s: 0.03,
            max_s: 0.04,
            wall_s: 0.05,
            aggregate_bps: 2e6,
            bytes_verified: 102400,
            errors: "timeout: 1".into(),
            server_cpu_s: 0.01,
            client_cpu_s: 0.02,
            server_mem_mib: 2.5,
            client_mem_mib: 3.25,
            server: "python3".into(),
        }
    }

    #[test]
    fn a_row_is_written_under_the_header_and_read_back_the_same() {
        let path = std::env::temp_dir().join(format!("fsbench-row-{}.csv", std::process::id()));
        let mut w = csv_writer(std::fs::File::create(&path).unwrap()).unwrap();
        let row = sample();
        write_row(&mut w, &row).unwrap();
        drop(w);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), CSV_HEADER.join(","));
        assert_eq!(
            lines.next().unwrap(),
            "2026-11-30T10:00:00.000Z,process,5,upload,100KB,2,0.012346,1234568,1,1,1,,\
             0.010000,0.020000,0.030000,0.040000,0.050000,2000000,102400,timeout: 1,\
             0.010000,0.020000,2.500,3.250,python3"
        );
        let back = read_csv(&path).unwrap();
        assert_eq!(back.len(), 1);
        // The numbers as written (rounded to the column's decimals).
        assert_eq!(back[0].avg_time_s, 0.012346);
        assert_eq!(back[0].throughput_bps, 1234568.0);
        assert_eq!(
            (back[0].mode, back[0].operation),
            (Mode::Process, Op::Upload)
        );
        assert_eq!(back[0].volume, Volume::kb(100));
        assert_eq!(back[0].errors, "timeout: 1");
        assert_eq!(
            (back[0].server_success, back[0].server_fail),
            (Some(1), None)
        );
        assert_eq!(back[0].server, "python3");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_bad_value_names_the_file_and_the_record() {
        let path = std::env::temp_dir().join(format!("fsbench-badrow-{}.csv", std::process::id()));
        let mut w = csv_writer(std::fs::File::create(&path).unwrap()).unwrap();
        write_row(&mut w, &sample()).unwrap();
        drop(w);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(",process,", ",proccess,");
        std::fs::write(&path, text).unwrap();
        let e = read_csv(&path).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("proccess"), "{e}");
        let _ = std::fs::remove_file(&path);
    }
}
