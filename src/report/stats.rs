//! The statistics of repeated scenarios: mean, sample standard deviation,
//! Student's t interval and coefficient of variation of one sample, Welch's
//! t-test between two, and the interval of a ratio of two means.
//!
//! Hand-written and small: the t distribution's CDF through the regularized
//! incomplete beta function (the continued fraction of Numerical Recipes,
//! §6.4, with a Lanczos log-gamma), and its quantile by bisection on the
//! CDF. Accurate to about 1e-10, far beyond what a 95 % interval of three
//! repeats needs; the tests check them against published t tables.

/// The confidence level of every interval here.
pub const LEVEL: f64 = 0.95;

/// A scenario is noisy when its coefficient of variation is above this.
pub const NOISY_CV: f64 = 0.10;

/// One sample summarised: n, mean, sample standard deviation (n - 1 in the
/// denominator; 0 for a single value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
}

impl Estimate {
    /// `None` for an empty sample.
    pub fn of(xs: &[f64]) -> Option<Estimate> {
        if xs.is_empty() {
            return None;
        }
        let n = xs.len();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let sd = if n < 2 {
            0.0
        } else {
            let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
            (ss / (n - 1) as f64).sqrt()
        };
        Some(Estimate { n, mean, sd })
    }

    /// Whether there is more than one value, so a spread to speak of.
    pub fn repeated(&self) -> bool {
        self.n >= 2
    }

    /// Standard error of the mean.
    pub fn se(&self) -> f64 {
        self.sd / (self.n as f64).sqrt()
    }

    /// Half the width of the 95 % interval of the mean, Student's t with
    /// n - 1 degrees of freedom: `None` for a single value.
    pub fn half_width(&self) -> Option<f64> {
        self.repeated()
            .then(|| t_quantile(0.5 + LEVEL / 2.0, (self.n - 1) as f64) * self.se())
    }

    /// The 95 % interval of the mean.
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.half_width().map(|h| (self.mean - h, self.mean + h))
    }

    /// Coefficient of variation, sd / mean: `None` for a single value or a zero mean.
    pub fn cv(&self) -> Option<f64> {
        (self.repeated() && self.mean != 0.0).then(|| self.sd / self.mean.abs())
    }

    /// Over [`NOISY_CV`].
    pub fn noisy(&self) -> bool {
        self.cv().is_some_and(|cv| cv > NOISY_CV)
    }
}

/// Welch's two-sample t-test (unequal variances).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    /// (b - a) / standard error of the difference.
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// Welch's test of `b` against `a`; `None` unless both are repeated. Two
/// samples without any spread are different (p = 0) when their means
/// differ, and the same (p = 1) when not.
pub fn welch(a: &Estimate, b: &Estimate) -> Option<Welch> {
    if !a.repeated() || !b.repeated() {
        return None;
    }
    let (va, vb) = (a.se().powi(2), b.se().powi(2));
    let diff = b.mean - a.mean;
    if va + vb == 0.0 {
        let p = if diff == 0.0 { 1.0 } else { 0.0 };
        return Some(Welch {
            t: diff.signum() * if diff == 0.0 { 0.0 } else { f64::INFINITY },
            df: (a.n + b.n - 2) as f64,
            p,
        });
    }
    let t = diff / (va + vb).sqrt();
    let df = satterthwaite(va, a.n, vb, b.n);
    Some(Welch {
        t,
        df,
        p: 2.0 * t_tail(t.abs(), df),
    })
}

/// Welch–Satterthwaite degrees of freedom of two variances of means.
fn satterthwaite(va: f64, na: usize, vb: f64, nb: usize) -> f64 {
    (va + vb).powi(2) / (va * va / (na - 1) as f64 + vb * vb / (nb - 1) as f64)
}

/// NEW / BASE of two means, with its 95 % interval when both are repeated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    pub ratio: f64,
    pub interval: Option<(f64, f64)>,
}

/// The ratio `new.mean / base.mean` (`None` when the base mean is 0). Its
/// interval propagates the relative standard errors to first order
/// (hyperfine's "1.8 ± 0.1 times"): `r ± t · r · sqrt(se_b²/m_b² + se_n²/m_n²)`,
/// with t at the Welch–Satterthwaite degrees of freedom of those relative
/// variances.
pub fn ratio(base: &Estimate, new: &Estimate) -> Option<Ratio> {
    if base.mean == 0.0 {
        return None;
    }
    let r = new.mean / base.mean;
    let interval = (base.repeated() && new.repeated()).then(|| {
        let rb = (base.se() / base.mean).powi(2);
        let rn = if new.mean == 0.0 {
            0.0
        } else {
            (new.se() / new.mean).powi(2)
        };
        if rb + rn == 0.0 {
            return (r, r);
        }
        let df = satterthwaite(rb, base.n, rn, new.n);
        let h = t_quantile(0.5 + LEVEL / 2.0, df) * r.abs() * (rb + rn).sqrt();
        (r - h, r + h)
    });
    Some(Ratio { ratio: r, interval })
}

/// P(T > t) for Student's t with `df` degrees of freedom, t >= 0.
fn t_tail(t: f64, df: f64) -> f64 {
    0.5 * beta_reg(df / 2.0, 0.5, df / (df + t * t))
}

/// The CDF of Student's t with `df` (> 0, not necessarily whole) degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = t_tail(t.abs(), df);
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The `p` quantile (0 < p < 1) of Student's t with `df` degrees of
/// freedom: bisection on the CDF, to the last bits of an f64.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    assert!(p > 0.0 && p < 1.0 && df > 0.0, "t_quantile({p}, {df})");
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    let mut hi = 1.0;
    while t_cdf(hi, df) < p {
        hi *= 2.0;
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= f64::EPSILON * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The regularized incomplete beta function I_x(a, b).
fn beta_reg(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    // The continued fraction converges fast for x < (a + 1) / (a + b + 2);
    // past that, the symmetry I_x(a, b) = 1 - I_(1-x)(b, a).
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

/// The continued fraction of the incomplete beta function (modified Lentz).
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        // One step of Lentz's method for the term `aa`: its factor of h.
        let mut step = |aa: f64| {
            d = 1.0 + aa * d;
            if d.abs() < TINY {
                d = TINY;
            }
            c = 1.0 + aa / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            d * c
        };
        h *= step(m * (b - m) * x / ((qam + m2) * (a + m2)));
        let del = step(-(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)));
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0: Lanczos (g = 7, 9 terms), with the reflection for x < 0.5.
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn ln_gamma_matches_factorials_and_the_half() {
        for (n, fact) in [(1.0, 1.0), (2.0, 1.0), (5.0, 24.0), (11.0, 3_628_800.0)] {
            assert!(close(ln_gamma(n), f64::ln(fact), 1e-12), "{n}");
        }
        // Γ(1/2) = √π.
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-12
        ));
    }

    #[test]
    fn t_quantiles_match_the_published_table() {
        // Two-sided 95 % (the 0.975 quantile), from any t table.
        for (df, t) in [
            (1.0, 12.706_205),
            (2.0, 4.302_653),
            (3.0, 3.182_446),
            (4.0, 2.776_445),
            (9.0, 2.262_157),
            (30.0, 2.042_272),
            (1000.0, 1.962_339),
        ] {
            let q = t_quantile(0.975, df);
            assert!(close(q, t, 5e-6), "df {df}: {q} != {t}");
            assert!(close(t_cdf(q, df), 0.975, 1e-12), "df {df}");
        }
        assert!(close(t_quantile(0.025, 4.0), -2.776_445, 5e-6));
        assert_eq!(t_cdf(0.0, 3.0), 0.5);
        // df = 1 is the Cauchy distribution: CDF(1) = 3/4.
        assert!(close(t_cdf(1.0, 1.0), 0.75, 1e-12));
    }

    /// The sample 10, 12, 14, by hand: mean 12, squared deviations 4 + 0 +
    /// 4 = 8, variance 8 / 2 = 4, sd 2; standard error 2 / √3 = 1.154701;
    /// t(0.975, 2) = 4.302653, half-width 4.968275; CV 2 / 12 = 0.166667.
    #[test]
    fn mean_sd_interval_and_cv_of_a_small_sample() {
        let e = Estimate::of(&[10.0, 12.0, 14.0]).unwrap();
        assert_eq!((e.n, e.mean, e.sd), (3, 12.0, 2.0));
        assert!(close(e.se(), 1.154_701, 1e-6));
        let h = e.half_width().unwrap();
        assert!(close(h, 4.968_275, 1e-6), "{h}");
        let (lo, hi) = e.interval().unwrap();
        assert!(close(lo, 7.031_725, 1e-6) && close(hi, 16.968_275, 1e-6));
        assert!(close(e.cv().unwrap(), 0.166_667, 1e-6));
        assert!(e.noisy());

        // 100, 101, 102: sd 1, CV 1 % -> not noisy.
        let quiet = Estimate::of(&[100.0, 101.0, 102.0]).unwrap();
        assert_eq!(quiet.sd, 1.0);
        assert!(!quiet.noisy());

        let one = Estimate::of(&[5.0]).unwrap();
        assert_eq!((one.n, one.mean, one.sd), (1, 5.0, 0.0));
        assert_eq!((one.half_width(), one.cv()), (None, None));
        assert!(!one.noisy());
        assert_eq!(Estimate::of(&[]), None);
    }

    /// a = 10, 12, 14 (mean 12, sd 2) against b = 15, 16, 17 (mean 16, sd 1),
    /// by hand: se² = 4/3 + 1/3 = 5/3, t = 4 / √(5/3) = 3.098387;
    /// df = (5/3)² / ((4/3)²/2 + (1/3)²/2) = 2.777778 / 0.944444 = 2.941176;
    /// two-sided p = 0.054787 (the t density integrated numerically, in
    /// Python with mpmath's quad, independently of this code).
    #[test]
    fn welchs_test_by_hand() {
        let a = Estimate::of(&[10.0, 12.0, 14.0]).unwrap();
        let b = Estimate::of(&[15.0, 16.0, 17.0]).unwrap();
        let w = welch(&a, &b).unwrap();
        assert!(close(w.t, 3.098_387, 1e-6), "{w:?}");
        assert!(close(w.df, 2.941_176, 1e-6), "{w:?}");
        assert!(close(w.p, 0.054_787, 1e-6), "{w:?}");
        // Swapped: the same test, t negated.
        let back = welch(&b, &a).unwrap();
        assert!(close(back.t, -w.t, 1e-12) && close(back.p, w.p, 1e-12));
        // A clear difference: 10, 11, 12 against 20, 21, 22: t = 10 / √(2/3)
        // = 12.247449, df = 4, p = 0.000255.
        let c = Estimate::of(&[10.0, 11.0, 12.0]).unwrap();
        let d = Estimate::of(&[20.0, 21.0, 22.0]).unwrap();
        let w = welch(&c, &d).unwrap();
        assert!(close(w.t, 12.247_449, 1e-6) && close(w.df, 4.0, 1e-9));
        assert!(close(w.p, 0.000_255, 1e-6), "{w:?}");
        // No verdict for a single run.
        assert_eq!(welch(&Estimate::of(&[1.0]).unwrap(), &d), None);
        // No spread at all.
        let same = Estimate::of(&[3.0, 3.0]).unwrap();
        assert_eq!(welch(&same, &same).unwrap().p, 1.0);
        let other = Estimate::of(&[4.0, 4.0]).unwrap();
        assert_eq!(welch(&same, &other).unwrap().p, 0.0);
    }

    /// 16 / 12 = 1.333333; relative variances of the means 4/(3·144) =
    /// 0.00925926 and 1/(3·256) = 0.00130208, sum 0.01056134, root 0.1027684;
    /// df = 0.01056134² / (0.00925926²/2 + 0.00130208²/2) = 2.551592, whose
    /// t(0.975) = 3.523470 (mpmath); half-width 3.523470 · 1.333333 ·
    /// 0.1027684 = 0.482802.
    #[test]
    fn the_ratio_interval_by_hand() {
        let a = Estimate::of(&[10.0, 12.0, 14.0]).unwrap();
        let b = Estimate::of(&[15.0, 16.0, 17.0]).unwrap();
        let r = ratio(&a, &b).unwrap();
        assert!(close(r.ratio, 1.333_333, 1e-6));
        let (lo, hi) = r.interval.unwrap();
        assert!(close(hi - r.ratio, 0.482_802, 1e-6), "{r:?}");
        assert!(close(r.ratio - lo, 0.482_802, 1e-6), "{r:?}");
        let single = ratio(
            &Estimate::of(&[2.0]).unwrap(),
            &Estimate::of(&[3.0]).unwrap(),
        );
        assert_eq!(
            single,
            Some(Ratio {
                ratio: 1.5,
                interval: None
            })
        );
        assert_eq!(ratio(&Estimate::of(&[0.0]).unwrap(), &b), None);
    }
}
