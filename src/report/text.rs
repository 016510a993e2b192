//! The repeats of a sweep as text, for the summary at its end: each
//! scenario's aggregate throughput and average time as mean ± half-width of
//! the 95 % interval, their coefficients of variation, and the noisy
//! scenarios by name.

use std::io::{self, Write};

use crate::report::findings::Findings;
use crate::report::runs::{Metric, Run};
use crate::report::stats::{Estimate, LEVEL, NOISY_CV};
use crate::scenario::{scenario_columns, scenario_heads, MIB};

/// `12.34 ± 0.56`, with the interval's half-width when there is one.
fn pm(e: &Estimate, scale: f64, decimals: usize) -> String {
    match e.half_width() {
        Some(h) => format!("{:.decimals$} ± {:.decimals$}", e.mean / scale, h / scale),
        None => format!("{:.decimals$}", e.mean / scale),
    }
}

fn cv(e: &Estimate) -> String {
    e.cv().map_or("-".into(), |c| format!("{:.1} %", c * 100.0))
}

/// The table of a run's scenarios over their repeats, then the noisy ones.
/// Writes nothing for a run without repeats.
pub fn write_repeats<W: Write + ?Sized>(w: &mut W, run: &Run) -> io::Result<()> {
    let repeats = run.repeats();
    if repeats < 2 {
        return Ok(());
    }
    writeln!(
        w,
        "Over the {repeats} repeats: mean ± half-width of the {:.0} % interval (Student's t); \
         CV = sd / mean (noisy over {:.0} %):",
        LEVEL * 100.0,
        NOISY_CV * 100.0
    )?;
    writeln!(
        w,
        "{} {:>2} {:>24} {:>8} {:>22} {:>8}",
        scenario_heads(),
        "n",
        "avg time s",
        "CV",
        "aggregate MB/s",
        "CV"
    )?;
    for s in run.scenarios() {
        let time = s.estimate(Metric::AvgTime);
        let agg = s.estimate(Metric::AggregateBps);
        let k = &s.key;
        writeln!(
            w,
            "{} {:>2} {:>24} {:>8} {:>22} {:>8}",
            scenario_columns(
                k.mode.name(),
                k.server_pool,
                k.operation,
                k.volume,
                k.client_pool
            ),
            s.rows.len(),
            pm(&time, 1.0, 6),
            cv(&time),
            pm(&agg, MIB as f64, 2),
            cv(&agg)
        )?;
    }
    let f = Findings::of(run);
    let noisy = f.noisy.unwrap_or_default();
    if noisy.is_empty() {
        writeln!(
            w,
            "No noisy scenario: every CV is at most {:.0} %.",
            NOISY_CV * 100.0
        )?;
    } else {
        writeln!(
            w,
            "Noisy (CV of the aggregate throughput or the average time over {:.0} %): {} of {} scenarios:",
            NOISY_CV * 100.0,
            noisy.len(),
            f.scenarios
        )?;
        for n in &noisy {
            writeln!(
                w,
                "  {}: CV aggregate {}, average time {}",
                n.key,
                cv(&n.throughput),
                cv(&n.time)
            )?;
        }
    }
    Ok(())
}
