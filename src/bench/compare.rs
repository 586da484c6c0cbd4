//! `shoal bench --target A --target B --rounds N`: two trackers loaded in
//! alternating rounds, and what the rounds say about their ratio.
//!
//! On a noisy machine one run of each, or their medians, can swing by a
//! third. So each round runs both, A first in odd rounds and B first in even
//! ones (a drift in the machine's load falls on both alike), and the ratio
//! B / A is taken per round. The summary is the geometric mean of those
//! ratios and, from [`MIN_ROUNDS`] rounds on, its 95 % bootstrap interval:
//! 10 000 resamples drawn by a generator with a fixed seed, so the same
//! rounds print the same figures. An interval that contains 1.00 means the
//! rounds cannot tell the two apart.
//!
//! This is what `benches/rounds.py` computes from `benches/compare.sh`'s
//! rounds, to the digit: the generator is Python's (MT19937 seeded as
//! `random.Random(14)`, resampled as `random.choices`), and the tests check
//! the figures against rounds.py's output for the same rounds.

use super::BenchConfig;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;

/// Rounds needed before a bootstrap interval is given: with fewer, the
/// resamples would only list the rounds.
pub const MIN_ROUNDS: usize = 5;

/// Bootstrap resamples of the ratios.
pub const RESAMPLES: usize = 10_000;

/// The seed of the resampling generator (rounds.py's).
pub const SEED: u32 = 14;

/// Which of the two targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    A,
    B,
}

impl Side {
    /// The order of round `round` (from 1): A first in odd rounds.
    pub fn order(round: u32) -> [Side; 2] {
        if round % 2 == 1 {
            [Side::A, Side::B]
        } else {
            [Side::B, Side::A]
        }
    }
}

/// One round: each side's replies per second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Round {
    pub round: u32,
    pub first: Side,
    pub a: f64,
    pub b: f64,
    /// B / A; `None` when either side answered nothing (shown, kept out of
    /// the summary).
    pub ratio: Option<f64>,
}

impl Round {
    pub fn new(round: u32, a: f64, b: f64) -> Round {
        let ratio = (a > 0.0 && b > 0.0).then(|| b / a);
        Round {
            round,
            first: Side::order(round)[0],
            a,
            b,
            ratio,
        }
    }
}

/// Run `rounds` rounds, each side once per round in [`Side::order`];
/// `run(side, round)` loads one side and returns its replies per second.
/// The first error ends the run.
pub fn run_rounds(
    rounds: u32,
    run: &mut dyn FnMut(Side, u32) -> Result<f64, String>,
) -> Result<Vec<Round>, String> {
    let mut out = Vec::with_capacity(rounds as usize);
    for round in 1..=rounds {
        let (mut a, mut b) = (0.0, 0.0);
        for side in Side::order(round) {
            let rate = run(side, round)?;
            match side {
                Side::A => a = rate,
                Side::B => b = rate,
            }
        }
        out.push(Round::new(round, a, b));
    }
    Ok(out)
}

/// Load `a` and `b` (two configurations with a target each) in `rounds`
/// alternating rounds of their duration; a line per run on stderr with
/// `progress`. An error (a refused target, a run without a single reply)
/// ends the comparison, naming the round.
pub fn compare(a: &BenchConfig, b: &BenchConfig, rounds: u32) -> Result<Comparison, String> {
    let name = |c: &BenchConfig| c.target.as_ref().map(|t| t.to_string()).unwrap_or_default();
    let progress = a.progress;
    let quiet = |c: &BenchConfig| BenchConfig {
        progress: false,
        ..c.clone()
    };
    let (qa, qb) = (quiet(a), quiet(b));
    let mut run = |side: Side, round: u32| -> Result<f64, String> {
        let (config, label) = match side {
            Side::A => (&qa, "A"),
            Side::B => (&qb, "B"),
        };
        let report = super::run(config).map_err(|e| format!("round {round}, {label}: {e}"))?;
        if report.replies_total() == 0 {
            return Err(format!(
                "round {round}, {label}: {}: no replies (is a UDP tracker listening there?)",
                report.target
            ));
        }
        if progress {
            let _ = writeln!(
                std::io::stderr(),
                "bench round {round:>3} {label}  {:>10.0} replies/s  loss {:.2} %",
                report.replies_per_sec(),
                report.loss_pct()
            );
        }
        Ok(report.replies_per_sec())
    };
    let done = run_rounds(rounds, &mut run)?;
    Ok(Comparison::new(name(a), name(b), done))
}

/// What the rounds say.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Rounds with a ratio.
    pub rounds: usize,
    pub geometric_mean: f64,
    /// The 95 % bootstrap interval of the geometric mean, from
    /// [`MIN_ROUNDS`] rounds on.
    pub interval: Option<(f64, f64)>,
    pub median: f64,
    /// Rounds in which B answered at least as many as A.
    pub b_at_least_a: usize,
}

impl Summary {
    /// `None` when no round has a ratio.
    pub fn of(rounds: &[Round]) -> Option<Summary> {
        let ratios: Vec<f64> = rounds.iter().filter_map(|r| r.ratio).collect();
        if ratios.is_empty() {
            return None;
        }
        let interval = (ratios.len() >= MIN_ROUNDS)
            .then(|| bootstrap_interval(&ratios, &mut Mt19937::new(SEED)));
        Some(Summary {
            rounds: ratios.len(),
            geometric_mean: geometric_mean(&ratios),
            interval,
            median: median(&ratios),
            b_at_least_a: ratios.iter().filter(|&&r| r >= 1.0).count(),
        })
    }
}

/// The outcome of a comparison: the targets, every round, the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    /// What the rounds measured (and the ratios divide).
    pub metric: &'static str,
    pub rounds: Vec<Round>,
    pub summary: Option<Summary>,
}

impl Comparison {
    pub fn new(a: String, b: String, rounds: Vec<Round>) -> Comparison {
        let summary = Summary::of(&rounds);
        Comparison {
            a,
            b,
            metric: "replies_per_s",
            rounds,
            summary,
        }
    }

    /// Each round's pair, then the summary (rounds.py's lines).
    pub fn to_text(&self) -> String {
        let mut s = format!("A = {}\nB = {}\n", self.a, self.b);
        for r in &self.rounds {
            let first = match r.first {
                Side::A => "A first",
                Side::B => "B first",
            };
            let _ = write!(
                s,
                "round {:>3} ({first}):  replies/s A {} / B {}",
                r.round,
                g6(r.a),
                g6(r.b)
            );
            match r.ratio {
                Some(x) => {
                    let _ = writeln!(s, " = {x:.3}x");
                }
                None => s.push_str(" (no ratio)\n"),
            }
        }
        match &self.summary {
            None => s.push_str("no round with replies from both: no ratio\n"),
            Some(m) => {
                let spread = match m.interval {
                    Some((lo, hi)) => format!(" (95 % interval {lo:.2}-{hi:.2}x)"),
                    None => String::new(),
                };
                let _ = writeln!(
                    s,
                    "B / A, {} rounds: geometric mean of ratios {:.3}x{spread}, median {:.3}x, \
                     B answers at least as many in {}",
                    m.rounds, m.geometric_mean, m.median, m.b_at_least_a
                );
                if m.interval.is_some_and(|(lo, hi)| lo <= 1.0 && 1.0 <= hi) {
                    s.push_str(
                        "the interval contains 1.00x: these rounds cannot tell A and B apart\n",
                    );
                } else if m.interval.is_none() {
                    let _ = writeln!(
                        s,
                        "fewer than {MIN_ROUNDS} rounds with a ratio: no interval (give --rounds {MIN_ROUNDS} or more)"
                    );
                }
            }
        }
        s
    }

    /// One JSON object: `a`, `b`, `metric`, `rounds` (`round`, `first`, `a`,
    /// `b`, `ratio`), `summary` (`rounds`, `geometric_mean`, `interval`
    /// `[lo, hi]` or null, `median`, `b_at_least_a`) or null.
    pub fn to_json(&self) -> String {
        // Cannot fail: numbers and strings, no maps with other keys.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Python's `%.6g`: six significant digits, no trailing zeros.
fn g6(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let exp = x.abs().log10().floor() as i32;
    if !(-4..6).contains(&exp) {
        let s = format!("{x:.5e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = m.trim_end_matches('0').trim_end_matches('.');
        let e: i32 = e.parse().unwrap_or(0);
        return format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    let decimals = usize::try_from(5 - exp).unwrap_or(0);
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `exp(mean(ln x))`, as Python's `statistics.geometric_mean`.
pub fn geometric_mean(xs: &[f64]) -> f64 {
    (xs.iter().map(|x| x.ln()).sum::<f64>() / xs.len() as f64).exp()
}

/// The middle value (mean of the two middle ones for an even count).
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The 2.5th and 97.5th percentiles of the geometric means of
/// [`RESAMPLES`] resamples (with replacement, each as long as `ratios`).
pub fn bootstrap_interval(ratios: &[f64], rng: &mut Mt19937) -> (f64, f64) {
    let n = ratios.len();
    let mut sample = vec![0.0; n];
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            for x in sample.iter_mut() {
                // random.choices: population[floor(random() * n)].
                *x = ratios[((rng.random() * n as f64) as usize).min(n - 1)];
            }
            geometric_mean(&sample)
        })
        .collect();
    means.sort_by(f64::total_cmp);
    (
        means[RESAMPLES / 40 - 1],
        means[RESAMPLES - RESAMPLES / 40 - 1],
    )
}

/// The Mersenne Twister (MT19937) as Python's `random` module runs it:
/// seeded from an integer as `random.Random(seed)` is, `random()` built from
/// two outputs, so the resamples are rounds.py's.
#[derive(Debug, Clone)]
pub struct Mt19937 {
    mt: [u32; 624],
    index: usize,
}

impl Mt19937 {
    /// `random.Random(seed)` for a seed below 2^32 (`init_by_array([seed])`).
    pub fn new(seed: u32) -> Mt19937 {
        let mut g = Mt19937::genrand(19_650_218);
        let key = [seed];
        let n = 624;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..n.max(key.len()) {
            let prev = g.mt[i - 1] ^ (g.mt[i - 1] >> 30);
            g.mt[i] = (g.mt[i] ^ prev.wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= n {
                g.mt[0] = g.mt[n - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..n - 1 {
            let prev = g.mt[i - 1] ^ (g.mt[i - 1] >> 30);
            g.mt[i] = (g.mt[i] ^ prev.wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= n {
                g.mt[0] = g.mt[n - 1];
                i = 1;
            }
        }
        g.mt[0] = 0x8000_0000;
        g.index = n;
        g
    }

    fn genrand(seed: u32) -> Mt19937 {
        let mut mt = [0u32; 624];
        mt[0] = seed;
        for i in 1..624 {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { mt, index: 624 }
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            for i in 0..624 {
                let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % 624] & 0x7fff_ffff);
                let mut v = self.mt[(i + 397) % 624] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.mt[i] = v;
            }
            self.index = 0;
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// Python's `random()`: 53 random bits in [0, 1).
    pub fn random(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_pythons() {
        // python3 -c 'import random; r = random.Random(14);
        //   print([r.getrandbits(32) for _ in range(3)], r.random())'
        let mut g = Mt19937::new(14);
        let first: Vec<u32> = (0..3).map(|_| g.next_u32()).collect();
        assert_eq!(first, PY_FIRST_U32);
        assert_eq!(g.random(), PY_FOURTH_RANDOM);
    }

    const PY_FIRST_U32: [u32; 3] = [458_825_077, 2_645_178_341, 3_017_581_834];
    const PY_FOURTH_RANDOM: f64 = 0.7552052561345847;

    /// Seven rounds given to rounds.py as a compare.sh throughput.tsv
    /// (aquatic = A, shoal = B, `--tool shoal_bench`); it printed
    ///   replies/s 7 rounds: geometric mean of ratios 1.005x (95 % interval
    ///   0.96-1.05x), median 0.999x, shoal answers at least as many in 3
    /// and its interval's ends, unrounded, 0.9632365939942721 and
    /// 1.0502330583589032 (geometric mean 1.0052682098192682).
    #[test]
    fn the_figures_are_rounds_pys() {
        let pairs = [
            (101234.0, 98123.5),
            (99876.0, 103456.0),
            (120001.0, 111222.0),
            (87654.0, 95432.1),
            (100500.0, 100400.0),
            (93456.0, 101010.0),
            (110000.0, 104321.0),
        ];
        let rounds: Vec<Round> = (1..)
            .zip(pairs)
            .map(|(i, (a, b))| Round::new(i, a, b))
            .collect();
        let c = Comparison::new("A".into(), "B".into(), rounds);
        let m = c.summary.clone().unwrap();
        let close = |x: f64, y: f64| (x - y).abs() < 1e-12;
        assert!(close(m.geometric_mean, 1.0052682098192682), "{m:?}");
        let (lo, hi) = m.interval.unwrap();
        assert!(
            close(lo, 0.9632365939942721) && close(hi, 1.0502330583589032),
            "{m:?}"
        );
        assert_eq!(m.b_at_least_a, 3);
        let text = c.to_text();
        assert!(
            text.contains(
                "B / A, 7 rounds: geometric mean of ratios 1.005x (95 % interval 0.96-1.05x), \
                 median 0.999x, B answers at least as many in 3"
            ),
            "{text}"
        );
        assert!(text.contains("round   1 (A first):  replies/s A 101234 / B 98123.5 = 0.969x"));
        assert!(text.contains("round   4 (B first):  replies/s A 87654 / B 95432.1 = 1.089x"));
        assert!(text.contains("cannot tell A and B apart"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(json["rounds"][1]["first"], "b");
        assert_eq!(json["summary"]["rounds"], 7);
        assert!(close(json["summary"]["interval"][0].as_f64().unwrap(), lo));
        // Four rounds: no interval, as rounds.py.
        let four = Summary::of(&c.rounds[..4]).unwrap();
        assert_eq!(four.interval, None);
    }

    #[test]
    fn a_clear_difference_has_an_interval_away_from_one() {
        let rounds: Vec<Round> = (1..=6)
            .map(|i| Round::new(i, 1000.0, 1500.0 + 10.0 * f64::from(i)))
            .collect();
        let m = Summary::of(&rounds).unwrap();
        let (lo, hi) = m.interval.unwrap();
        assert!(
            1.5 < lo && lo <= m.geometric_mean && m.geometric_mean <= hi && hi < 1.57,
            "{m:?}"
        );
        assert_eq!(m.b_at_least_a, 6);
    }

    #[test]
    fn rounds_alternate_which_side_goes_first() {
        let mut calls = Vec::new();
        let rounds = run_rounds(4, &mut |side, round| {
            calls.push((round, side));
            Ok(match side {
                Side::A => 100.0 * f64::from(round),
                Side::B => 110.0 * f64::from(round),
            })
        })
        .unwrap();
        use Side::{A, B};
        assert_eq!(
            calls,
            [
                (1, A),
                (1, B),
                (2, B),
                (2, A),
                (3, A),
                (3, B),
                (4, B),
                (4, A)
            ]
        );
        assert_eq!(rounds.len(), 4);
        assert_eq!(rounds[1].first, B);
        assert_eq!((rounds[2].a, rounds[2].b), (300.0, 330.0));
        assert!((rounds[3].ratio.unwrap() - 1.1).abs() < 1e-12);
        // The first failure ends the run.
        let err = run_rounds(3, &mut |side, round| {
            if (side, round) == (B, 2) {
                Err("no replies".into())
            } else {
                Ok(1.0)
            }
        });
        assert_eq!(err, Err("no replies".to_string()));
    }

    #[test]
    fn a_round_without_replies_has_no_ratio() {
        let c = Comparison::new(
            "udp://127.0.0.1:1".into(),
            "udp://127.0.0.1:2".into(),
            vec![Round::new(1, 0.0, 5.0), Round::new(2, 10.0, 20.0)],
        );
        assert_eq!(c.rounds[0].ratio, None);
        let m = c.summary.clone().unwrap();
        assert_eq!((m.rounds, m.geometric_mean, m.interval), (1, 2.0, None));
        let text = c.to_text();
        assert!(
            text.contains("round   1 (A first):  replies/s A 0 / B 5 (no ratio)"),
            "{text}"
        );
        assert!(text.contains("give --rounds 5 or more"), "{text}");
        let none = Comparison::new("a".into(), "b".into(), vec![Round::new(1, 0.0, 0.0)]);
        assert_eq!(none.summary, None);
        assert!(none.to_text().contains("no ratio"));
        assert!(none.to_json().contains("\"summary\":null"));
    }

    #[test]
    fn python_number_format() {
        assert_eq!(g6(123456.0), "123456");
        assert_eq!(g6(1234567.0), "1.23457e+06");
        assert_eq!(g6(1500.25), "1500.25");
        assert_eq!(g6(0.5), "0.5");
        assert_eq!(g6(0.0), "0");
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
