//! Two runs compared scenario by scenario (critcmp's question, hyperfine's
//! answer): NEW / BASE of the aggregate throughput and of the average time
//! per client, with a 95 % interval and a verdict by Welch's t-test when
//! both runs repeated the scenario, and "single run" without a verdict when
//! not. Scenarios in one run only are listed apart.

use std::io::{self, Write};

use serde_json::{json, Value};

use crate::report::runs::{Key, Metric, Run};
use crate::report::stats::{self, Estimate, Ratio, Welch, LEVEL};

/// What a metric did from BASE to NEW.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Faster,
    Slower,
    NoChange,
    /// One of the runs has a single value: no test.
    SingleRun,
    /// The base is 0: no ratio.
    Undefined,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::NoChange => "no significant change",
            Verdict::SingleRun => "single run",
            Verdict::Undefined => "base is 0",
        }
    }
}

/// One metric of one scenario in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub metric: Metric,
    pub base: Estimate,
    pub new: Estimate,
    pub ratio: Option<Ratio>,
    pub welch: Option<Welch>,
    pub verdict: Verdict,
}

impl Change {
    fn of(metric: Metric, base: Estimate, new: Estimate) -> Change {
        let ratio = stats::ratio(&base, &new);
        let welch = stats::welch(&base, &new);
        // Higher throughput is faster; a longer time is slower.
        let higher_is_faster = metric != Metric::AvgTime;
        let verdict = match (ratio, welch) {
            (None, _) => Verdict::Undefined,
            (Some(_), None) => Verdict::SingleRun,
            (Some(_), Some(w)) if w.p >= 1.0 - LEVEL => Verdict::NoChange,
            (Some(_), Some(w)) => {
                if (w.t > 0.0) == higher_is_faster {
                    Verdict::Faster
                } else {
                    Verdict::Slower
                }
            }
        };
        Change {
            metric,
            base,
            new,
            ratio,
            welch,
            verdict,
        }
    }

    /// How much longer NEW takes than BASE, in percent: from the time ratio
    /// r, (r - 1) · 100; from the throughput ratio r (the same bytes at r
    /// times the speed), (1/r - 1) · 100. Negative when NEW is faster.
    pub fn slowdown_pct(&self) -> Option<f64> {
        let r = self.ratio?.ratio;
        match self.metric {
            Metric::AvgTime => Some((r - 1.0) * 100.0),
            _ if r > 0.0 => Some((1.0 / r - 1.0) * 100.0),
            _ => None,
        }
    }
}

/// One scenario present in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Compared {
    pub key: Key,
    pub throughput: Change,
    pub time: Change,
}

impl Compared {
    /// Significantly slower (by either measure) by more than `pct` percent.
    pub fn slower_than(&self, pct: f64) -> bool {
        [&self.throughput, &self.time]
            .iter()
            .any(|c| c.verdict == Verdict::Slower && c.slowdown_pct().is_some_and(|s| s > pct))
    }
}

#[derive(Debug, Clone)]
pub struct Comparison {
    pub base: (String, String, usize),
    pub new: (String, String, usize),
    pub both: Vec<Compared>,
    pub only_base: Vec<Key>,
    pub only_new: Vec<Key>,
}

/// BASE against NEW, on their common scenarios (in BASE's order).
pub fn compare(base: &Run, new: &Run) -> Comparison {
    let bs = base.scenarios();
    let ns = new.scenarios();
    let mut both = Vec::new();
    let mut only_base = Vec::new();
    for b in &bs {
        match ns.iter().find(|n| n.key == b.key) {
            Some(n) => both.push(Compared {
                key: b.key,
                throughput: Change::of(
                    Metric::AggregateBps,
                    b.estimate(Metric::AggregateBps),
                    n.estimate(Metric::AggregateBps),
                ),
                time: Change::of(
                    Metric::AvgTime,
                    b.estimate(Metric::AvgTime),
                    n.estimate(Metric::AvgTime),
                ),
            }),
            None => only_base.push(b.key),
        }
    }
    let only_new = ns
        .iter()
        .filter(|n| !bs.iter().any(|b| b.key == n.key))
        .map(|n| n.key)
        .collect();
    let id = |r: &Run| (r.label.clone(), r.path.display().to_string(), r.repeats());
    Comparison {
        base: id(base),
        new: id(new),
        both,
        only_base,
        only_new,
    }
}

impl Comparison {
    /// The scenarios significantly slower by more than `pct` percent.
    pub fn slower_than(&self, pct: f64) -> Vec<&Compared> {
        self.both.iter().filter(|c| c.slower_than(pct)).collect()
    }

    /// Whether any scenario has repeats on both sides (so a verdict).
    pub fn any_verdict(&self) -> bool {
        self.both
            .iter()
            .any(|c| c.throughput.welch.is_some() || c.time.welch.is_some())
    }

    fn counts(&self, f: impl Fn(&Compared) -> &Change) -> [usize; 4] {
        let mut n = [0; 4];
        for c in &self.both {
            let i = match f(c).verdict {
                Verdict::Faster => 0,
                Verdict::Slower => 1,
                Verdict::NoChange => 2,
                Verdict::SingleRun | Verdict::Undefined => 3,
            };
            n[i] += 1;
        }
        n
    }

    pub fn write_text<W: Write + ?Sized>(
        &self,
        w: &mut W,
        fail_slower: Option<f64>,
    ) -> io::Result<()> {
        let run = |(label, path, n): &(String, String, usize)| {
            format!(
                "{label} ({path}, {n} {})",
                if *n == 1 { "run" } else { "repeats" }
            )
        };
        writeln!(w, "base: {}", run(&self.base))?;
        writeln!(w, "new:  {}", run(&self.new))?;
        writeln!(
            w,
            "NEW / BASE of the mean, [{:.0} % interval]; verdict by Welch's t-test at the {:.0} % level\n",
            LEVEL * 100.0,
            (1.0 - LEVEL) * 100.0
        )?;
        let width = self
            .both
            .iter()
            .map(|c| c.key.to_string().len())
            .max()
            .unwrap_or(8)
            .max(8);
        writeln!(
            w,
            "{:<width$}  {:<44}  average time per client",
            "scenario", "aggregate throughput"
        )?;
        for c in &self.both {
            let flag = match fail_slower {
                Some(p) if c.slower_than(p) => "  <- slower by more than the limit",
                _ => "",
            };
            writeln!(
                w,
                "{:<width$}  {:<44}  {}{flag}",
                c.key.to_string(),
                change_text(&c.throughput),
                change_text(&c.time)
            )?;
        }
        let line = |n: [usize; 4]| {
            format!(
                "{} faster, {} slower, {} no significant change, {} single run",
                n[0], n[1], n[2], n[3]
            )
        };
        writeln!(
            w,
            "\n{} scenarios in both: aggregate throughput {}; average time {}",
            self.both.len(),
            line(self.counts(|c| &c.throughput)),
            line(self.counts(|c| &c.time))
        )?;
        for (name, keys) in [("BASE", &self.only_base), ("NEW", &self.only_new)] {
            if !keys.is_empty() {
                writeln!(w, "only in {name} ({}):", keys.len())?;
                for k in keys {
                    writeln!(w, "  {k}")?;
                }
            }
        }
        Ok(())
    }

    pub fn to_json(&self, fail_slower: Option<f64>) -> Value {
        let run = |(label, path, n): &(String, String, usize)| json!({"label": label, "csv": path, "repeats": n});
        let key = |k: &Key| {
            json!({
                "mode": k.mode.name(),
                "server_pool": k.server_pool,
                "operation": k.operation.name(),
                "volume": k.volume.label(),
                "client_pool": k.client_pool,
            })
        };
        let change = |c: &Change| {
            json!({
                "base_mean": c.base.mean,
                "base_n": c.base.n,
                "new_mean": c.new.mean,
                "new_n": c.new.n,
                "ratio": c.ratio.map(|r| r.ratio),
                "interval": c.ratio.and_then(|r| r.interval).map(|(lo, hi)| [lo, hi]),
                "p": c.welch.map(|w| w.p),
                "verdict": c.verdict.text(),
                "slowdown_pct": c.slowdown_pct(),
            })
        };
        let scenarios: Vec<Value> = self
            .both
            .iter()
            .map(|c| {
                let mut v = key(&c.key);
                v["aggregate_Bps"] = change(&c.throughput);
                v["avg_time_s"] = change(&c.time);
                if let Some(p) = fail_slower {
                    v["slower_than_limit"] = json!(c.slower_than(p));
                }
                v
            })
            .collect();
        json!({
            "base": run(&self.base),
            "new": run(&self.new),
            "level": LEVEL,
            "scenarios": scenarios,
            "only_in_base": self.only_base.iter().map(key).collect::<Vec<_>>(),
            "only_in_new": self.only_new.iter().map(key).collect::<Vec<_>>(),
            "fail_slower_pct": fail_slower,
            "slower_than_limit": fail_slower.map(|p| self.slower_than(p).len()),
        })
    }
}

/// `1.12 [1.05, 1.19] faster` or `0.98 single run`.
fn change_text(c: &Change) -> String {
    match c.ratio {
        None => c.verdict.text().to_string(),
        Some(Ratio {
            ratio,
            interval: Some((lo, hi)),
        }) => format!("{ratio:.3} [{lo:.3}, {hi:.3}] {}", c.verdict.text()),
        Some(Ratio {
            ratio,
            interval: None,
        }) => format!("{ratio:.3} {}", c.verdict.text()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(xs: &[f64]) -> Estimate {
        Estimate::of(xs).unwrap()
    }

    #[test]
    fn verdicts_follow_the_direction_that_is_faster() {
        let lo = e(&[10.0, 11.0, 12.0]);
        let hi = e(&[20.0, 21.0, 22.0]);
        assert_eq!(
            Change::of(Metric::AggregateBps, lo, hi).verdict,
            Verdict::Faster
        );
        assert_eq!(
            Change::of(Metric::AggregateBps, hi, lo).verdict,
            Verdict::Slower
        );
        assert_eq!(Change::of(Metric::AvgTime, lo, hi).verdict, Verdict::Slower);
        assert_eq!(Change::of(Metric::AvgTime, hi, lo).verdict, Verdict::Faster);
        // p = 0.054787 (stats' hand-computed case): not significant at 5 %.
        let a = e(&[10.0, 12.0, 14.0]);
        let b = e(&[15.0, 16.0, 17.0]);
        assert_eq!(
            Change::of(Metric::AggregateBps, a, b).verdict,
            Verdict::NoChange
        );
        let one = e(&[10.0]);
        assert_eq!(
            Change::of(Metric::AvgTime, one, b).verdict,
            Verdict::SingleRun
        );
        assert_eq!(
            Change::of(Metric::AvgTime, e(&[0.0, 0.0]), b).verdict,
            Verdict::Undefined
        );
    }

    #[test]
    fn slowdown_is_how_much_longer_new_takes() {
        // Throughput halved: the same bytes take twice as long, +100 %.
        let c = Change::of(
            Metric::AggregateBps,
            e(&[20.0, 21.0, 22.0]),
            e(&[10.0, 10.5, 11.0]),
        );
        assert!((c.slowdown_pct().unwrap() - 100.0).abs() < 1e-9);
        // Time 1.25 times: +25 %.
        let c = Change::of(Metric::AvgTime, e(&[4.0, 4.0, 4.0]), e(&[5.0, 5.0, 5.0]));
        assert!((c.slowdown_pct().unwrap() - 25.0).abs() < 1e-9);
        assert_eq!(c.verdict, Verdict::Slower);
        let k = Compared {
            key: crate::report::runs::Key {
                mode: crate::server::Mode::Thread,
                server_pool: 1,
                operation: crate::scenario::Op::List,
                volume: crate::scenario::Volume::kb(1),
                client_pool: 1,
            },
            throughput: Change::of(Metric::AggregateBps, e(&[1.0, 1.0]), e(&[1.0, 1.0])),
            time: c,
        };
        assert!(k.slower_than(24.9));
        assert!(!k.slower_than(25.0));
    }
}
