//! `fsbench report` and `fsbench compare`: a sweep's CSVs read back into an
//! HTML report, or two of them compared. Each reads its flags into a plain
//! struct, checks them, then calls [`crate::report`].
//!
//! Exit codes: 0 done; 1 the report could not be written, or `compare
//! --fail-slower` found a scenario slower by more than its limit; 2 a usage
//! error, a CSV that cannot be read as a sweep's (the file, line and column
//! named), or a report that would replace a file no `-o` named.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::{opt, path, Argv, Failure, Stdout};
use crate::report::{self, Run};

pub(super) const FLAGS: &str = "\
report flags: fsbench report RUN.csv [RUN2.csv ...] [-o FILE.html] [--label NAME ...]
  -o, --output FILE            the page (default: beside the first CSV, named after it;
                               never replaces a file unless named here); its charts go
                               to FILE's name + -charts/, one SVG each
  --label NAME                 a run's name in legends and tables, once per CSV, in order
                               (default: the CSV's file name)

compare flags: fsbench compare BASE.csv NEW.csv [--fail-slower PCT] [--json]
  --fail-slower PCT            exit 1 when a scenario is significantly slower (Welch's
                               t-test, 5 %) by more than PCT percent (for CI)
  --json                       one JSON object instead of the text table
";

fn usage(msg: String) -> Failure {
    Failure::usage(msg, Some(FLAGS))
}

fn csv_paths(operands: Vec<OsString>) -> Vec<PathBuf> {
    operands.into_iter().map(PathBuf::from).collect()
}

/// `report`'s flags as given.
#[derive(Debug, Default, PartialEq)]
struct ReportArgs {
    csvs: Vec<PathBuf>,
    output: Option<PathBuf>,
    labels: Vec<String>,
}

/// What to report and where.
#[derive(Debug, PartialEq)]
struct ReportJob {
    csvs: Vec<(PathBuf, Option<String>)>,
    output: PathBuf,
    /// `-o` named the output: it may replace a file.
    replace: bool,
}

impl ReportArgs {
    fn parse(mut argv: Argv) -> Result<ReportArgs, String> {
        let a = &mut argv.flags;
        let output = a
            .opt_value_from_os_str(["-o", "--output"], path)
            .map_err(|e| super::flag_err("-o", e))?;
        let labels = a
            .values_from_str("--label")
            .map_err(|e| super::flag_err("--label", e))?;
        let csvs = csv_paths(argv.operands()?);
        Ok(ReportArgs {
            csvs,
            output,
            labels,
        })
    }

    fn validate(self) -> Result<ReportJob, String> {
        if self.csvs.is_empty() {
            return Err("report: name at least one CSV".into());
        }
        if !self.labels.is_empty() && self.labels.len() != self.csvs.len() {
            return Err(format!(
                "--label: {} label(s) for {} CSV(s): give one per CSV, or none",
                self.labels.len(),
                self.csvs.len()
            ));
        }
        let replace = self.output.is_some();
        let output = self
            .output
            .unwrap_or_else(|| report::default_output(&self.csvs));
        if self.csvs.iter().any(|c| same_file(c, &output)) {
            return Err(format!(
                "-o {} is one of the CSVs to read",
                output.display()
            ));
        }
        let mut labels = self.labels.into_iter().map(Some);
        let csvs = self
            .csvs
            .into_iter()
            .map(|c| (c, labels.next().flatten()))
            .collect();
        Ok(ReportJob {
            csvs,
            output,
            replace,
        })
    }
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Reads every CSV; the first that cannot be read ends the command with 2.
fn read_runs(
    csvs: Vec<(PathBuf, Option<String>)>,
    command: &'static str,
) -> Result<Vec<Run>, Failure> {
    csvs.into_iter()
        .map(|(p, label)| Run::read(&p, label).map_err(|e| Failure::input(command, e)))
        .collect()
}

pub(super) fn report<W: Write>(argv: Argv, out: &mut Stdout<W>) -> Result<ExitCode, Failure> {
    let job = ReportArgs::parse(argv)
        .and_then(ReportArgs::validate)
        .map_err(usage)?;
    let runs = read_runs(job.csvs, "report")?;
    let written = report::write(&runs, &job.output, job.replace).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            Failure::input("report", e)
        } else {
            Failure::failed("report", e)
        }
    })?;
    writeln!(
        out,
        "{} ({} KB; {} charts, each also an SVG in {})",
        written.html.display(),
        written.html_bytes.div_ceil(1024),
        written.charts.len(),
        written.charts_dir.display()
    )
    .map_err(|e| Failure::failed("report", e))?;
    Ok(ExitCode::SUCCESS)
}

/// `compare`'s flags as given.
#[derive(Debug, Default, PartialEq)]
struct CompareArgs {
    csvs: Vec<PathBuf>,
    fail_slower: Option<f64>,
    json: bool,
}

impl CompareArgs {
    fn parse(mut argv: Argv) -> Result<CompareArgs, String> {
        let a = &mut argv.flags;
        let fail_slower = opt(a, "--fail-slower")?;
        let json = a.contains("--json");
        Ok(CompareArgs {
            csvs: csv_paths(argv.operands()?),
            fail_slower,
            json,
        })
    }

    fn validate(self) -> Result<CompareArgs, String> {
        if self.csvs.len() != 2 {
            return Err(format!(
                "compare takes two CSVs, BASE and NEW ({} given)",
                self.csvs.len()
            ));
        }
        if let Some(p) = self.fail_slower {
            if !(p.is_finite() && p >= 0.0) {
                return Err(format!(
                    "--fail-slower: {p} is not a percentage of 0 or more"
                ));
            }
        }
        Ok(self)
    }
}

pub(super) fn compare<W: Write>(argv: Argv, out: &mut Stdout<W>) -> Result<ExitCode, Failure> {
    let args = CompareArgs::parse(argv)
        .and_then(CompareArgs::validate)
        .map_err(usage)?;
    let runs = read_runs(
        args.csvs.into_iter().map(|p| (p, None)).collect(),
        "compare",
    )?;
    let c = report::compare(&runs[0], &runs[1]);
    let printed = if args.json {
        writeln!(out, "{:#}", c.to_json(args.fail_slower))
    } else {
        c.write_text(out, args.fail_slower)
    };
    printed.map_err(|e| Failure::failed("compare", e))?;
    let Some(pct) = args.fail_slower else {
        return Ok(ExitCode::SUCCESS);
    };
    if !c.any_verdict() {
        super::note(format_args!(
            "fsbench compare: no scenario was repeated in both runs, so none can be judged \
             slower (--fail-slower needs REPEAT=2 or more on both sides)"
        ));
    }
    let slower = c.slower_than(pct);
    if slower.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        super::note(format_args!(
            "fsbench compare: {} scenario(s) significantly slower by more than {pct} %",
            slower.len()
        ));
        Ok(ExitCode::from(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::argv;

    fn job(args: &[&str]) -> Result<ReportJob, String> {
        ReportArgs::parse(argv(args)).and_then(ReportArgs::validate)
    }

    #[test]
    fn report_flags_name_the_output_and_a_label_per_csv() {
        let j = job(&["r/a.csv"]).unwrap();
        assert_eq!(j.output, PathBuf::from("r/a.html"));
        assert!(!j.replace);
        assert_eq!(j.csvs, vec![(PathBuf::from("r/a.csv"), None)]);

        let j = job(&[
            "r/a.csv", "s/b.csv", "--label", "before", "--label", "after",
        ])
        .unwrap();
        assert_eq!(j.output, PathBuf::from("r/a_vs_b.html"));
        assert_eq!(
            j.csvs,
            vec![
                (PathBuf::from("r/a.csv"), Some("before".into())),
                (PathBuf::from("s/b.csv"), Some("after".into()))
            ]
        );
        let j = job(&["-o", "x.html", "a.csv"]).unwrap();
        assert_eq!((j.output, j.replace), (PathBuf::from("x.html"), true));

        for (args, msg) in [
            (&[][..], "report: name at least one CSV"),
            (
                &["a.csv", "--label", "x", "--label", "y"],
                "--label: 2 label(s) for 1 CSV(s): give one per CSV, or none",
            ),
            (
                &["a.csv", "-o", "a.csv"],
                "-o a.csv is one of the CSVs to read",
            ),
            (&["a.csv", "--bogus"], "unknown flag \"--bogus\""),
        ] {
            assert_eq!(job(args).unwrap_err(), msg, "{args:?}");
        }
    }

    #[test]
    fn compare_takes_two_csvs_and_a_percentage() {
        let check = |args: &[&str]| CompareArgs::parse(argv(args)).and_then(CompareArgs::validate);
        let c = check(&["a.csv", "b.csv", "--fail-slower", "5", "--json"]).unwrap();
        assert_eq!((c.fail_slower, c.json), (Some(5.0), true));
        assert_eq!(
            check(&["a.csv"]).unwrap_err(),
            "compare takes two CSVs, BASE and NEW (1 given)"
        );
        assert_eq!(
            check(&["a.csv", "b.csv", "--fail-slower", "-1"]).unwrap_err(),
            "--fail-slower: -1 is not a percentage of 0 or more"
        );
        assert!(check(&["a.csv", "b.csv", "--fail-slower", "x"])
            .unwrap_err()
            .starts_with("--fail-slower: "));
    }
}
