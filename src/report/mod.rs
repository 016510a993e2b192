//! Reading a sweep's results back for a person: `fsbench report` (one HTML
//! page with charts, findings and the full table, each chart also an SVG
//! file) and `fsbench compare` (two runs, scenario by scenario, with
//! intervals and verdicts), and the repeats' summary at a sweep's end.
//!
//! - [`runs`]: a CSV with its label and metadata, its rows grouped into scenarios;
//! - [`stats`]: mean, sd, Student's t interval, CV, Welch's test, a ratio's interval;
//! - [`findings`]: failed scenarios, a client pool heavier than its server, noisy scenarios;
//! - [`charts`]: the charts' model and its SVG (plotters);
//! - [`html`]: the page;
//! - [`compare`]: two runs compared, as text or JSON;
//! - [`text`]: the repeats as the sweep's text summary prints them.
//!
//! It reads results and never measures: every number it shows comes from a
//! CSV row, and a column a CSV lacks is shown as absent, never as 0. It
//! never replaces a file unless told to ([`write`]'s `replace`).

pub mod charts;
pub mod compare;
pub mod findings;
pub mod html;
pub mod runs;
pub mod stats;
pub mod text;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use compare::{compare, Comparison};
pub use runs::Run;

/// What [`write`] left on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub html: PathBuf,
    pub charts_dir: PathBuf,
    /// The SVG files, in the page's order.
    pub charts: Vec<PathBuf>,
    pub html_bytes: u64,
}

/// The folder of a report's SVG files, beside it: `a.html` -> `a-charts/`.
pub fn charts_dir(html: &Path) -> PathBuf {
    let stem = html
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    html.with_file_name(format!("{stem}-charts"))
}

/// Where a report of these CSVs goes unless told: beside the first, named
/// after it (`a.html`), or after the first two (`a_vs_b.html`).
pub fn default_output(csvs: &[PathBuf]) -> PathBuf {
    let first = csvs
        .first()
        .map(PathBuf::as_path)
        .unwrap_or(Path::new("report.csv"));
    let name = match csvs {
        [_] | [] => runs::default_label(first),
        [_, second, ..] => format!(
            "{}_vs_{}",
            runs::default_label(first),
            runs::default_label(second)
        ),
    };
    first.with_file_name(format!("{name}.html"))
}

/// Writes the report of `runs` to `html` and its charts to [`charts_dir`].
/// An existing page or charts folder is an `AlreadyExists` error unless
/// `replace`; when replacing, the folder's old SVG files go first.
pub fn write(runs: &[Run], html: &Path, replace: bool) -> io::Result<Written> {
    if runs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no run to report",
        ));
    }
    let dir = charts_dir(html);
    if !replace {
        for p in [html, dir.as_path()] {
            if p.exists() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists; name it with -o to replace it", p.display()),
                ));
            }
        }
    }
    let charts = charts::all(runs);
    let mut drawn = Vec::with_capacity(charts.len());
    for c in charts {
        let svg = c.svg()?;
        drawn.push((c, svg));
    }
    if dir.is_dir() {
        for e in std::fs::read_dir(&dir)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "svg") {
                std::fs::remove_file(&p)?;
            }
        }
    }
    std::fs::create_dir_all(&dir)?;
    let mut files = Vec::with_capacity(drawn.len());
    for (c, svg) in &drawn {
        let p = dir.join(&c.file);
        std::fs::write(&p, svg)?;
        files.push(p);
    }
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let page = html::page(runs, &drawn, &dir_name, crate::results::machine::version());
    let tmp = html.with_extension("html.part");
    std::fs::write(&tmp, &page)?;
    std::fs::rename(&tmp, html)?;
    Ok(Written {
        html: html.to_path_buf(),
        charts_dir: dir,
        charts: files,
        html_bytes: page.len() as u64,
    })
}

/// The end of a sweep: the repeats' table when it repeated its scenarios,
/// then the report beside its CSV and the report's path, on `progress`.
/// The report is an addition: a failure to write it is printed, and is no
/// failure of the sweep.
pub fn at_sweep_end(progress: &mut dyn Write, csv: &Path) -> io::Result<()> {
    let run = match Run::read(csv, None) {
        Ok(r) => r,
        Err(e) => return writeln!(progress, "no report: {e}"),
    };
    if run.repeats() >= 2 {
        writeln!(progress)?;
        text::write_repeats(progress, &run)?;
    }
    let html = default_output(&[csv.to_path_buf()]);
    match write(std::slice::from_ref(&run), &html, false) {
        Ok(w) => writeln!(progress, "report: {}", w.html.display()),
        Err(e) => writeln!(progress, "no report: {e}"),
    }
}
