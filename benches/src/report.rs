//! Figures of one scenario over several runs, summarized as median, min and
//! max, with each run's ratio to the ceiling measured in that same run.

use std::fmt::Write;

/// The ceiling figure of the same run that a figure is compared with.
#[derive(Clone, Copy, PartialEq)]
pub enum Versus {
    /// Requests per second of the plain-reqwest ceiling.
    Rate,
    /// Median latency of the ceiling at the fixed rate.
    P50,
    /// 99th percentile latency of the ceiling at the fixed rate.
    P99,
    /// No ceiling figure of the same kind (memory, counts, start-up times).
    Nothing,
}

/// The target of a figure, checked against the median.
#[derive(Clone, Copy)]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
    /// The median ratio to the ceiling must reach this.
    RatioAtLeast(f64),
    None,
}

/// The ceiling of one run: plain reqwest to the same receiver.
#[derive(Clone, Copy, Default)]
pub struct Ceiling {
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Ceiling {
    fn get(&self, versus: Versus) -> Option<f64> {
        match versus {
            Versus::Rate => Some(self.rate),
            Versus::P50 => Some(self.p50_ms),
            Versus::P99 => Some(self.p99_ms),
            Versus::Nothing => None,
        }
    }
}

/// One measured value of one run.
pub struct Sample {
    pub name: String,
    pub unit: &'static str,
    pub value: f64,
    pub versus: Versus,
    pub target: Target,
}

impl Sample {
    pub fn new(
        name: impl Into<String>,
        unit: &'static str,
        value: f64,
        versus: Versus,
        target: Target,
    ) -> Sample {
        Sample {
            name: name.into(),
            unit,
            value,
            versus,
            target,
        }
    }
}

/// All runs of one scenario.
#[derive(Default)]
pub struct Table {
    runs: Vec<(Ceiling, Vec<Sample>)>,
}

impl Table {
    pub fn push(&mut self, ceiling: Ceiling, samples: Vec<Sample>) {
        self.runs.push((ceiling, samples));
    }

    /// Renders a Markdown table: one row per figure, ceiling rows first.
    pub fn render(&self, title: &str) -> String {
        let mut names: Vec<(String, &'static str, Versus, Target)> = vec![
            (
                "ceiling: plain reqwest, requests/s".into(),
                "1/s",
                Versus::Rate,
                Target::None,
            ),
            (
                "ceiling: latency p50 at fixed rate".into(),
                "ms",
                Versus::P50,
                Target::None,
            ),
            (
                "ceiling: latency p99 at fixed rate".into(),
                "ms",
                Versus::P99,
                Target::None,
            ),
        ];
        for (_, samples) in &self.runs {
            for sample in samples {
                if !names.iter().any(|(name, ..)| *name == sample.name) {
                    names.push((
                        sample.name.clone(),
                        sample.unit,
                        sample.versus,
                        sample.target,
                    ));
                }
            }
        }
        let mut out = format!("### {title} ({} runs)\n\n", self.runs.len());
        out.push_str("| figure | unit | median | min | max | ratio to ceiling: median (min–max) | target |\n");
        out.push_str("|---|---|---:|---:|---:|---:|---|\n");
        for (index, (name, unit, versus, target)) in names.iter().enumerate() {
            let mut values = Vec::new();
            let mut ratios = Vec::new();
            for (ceiling, samples) in &self.runs {
                let value = if index < 3 {
                    ceiling.get(*versus)
                } else {
                    samples.iter().find(|s| s.name == *name).map(|s| s.value)
                };
                let Some(value) = value else { continue };
                values.push(value);
                if let Some(reference) = ceiling.get(*versus).filter(|r| *r > 0.0) {
                    ratios.push(value / reference);
                }
            }
            let (median, min, max) = summarize(&values);
            let ratio = if ratios.is_empty() || index < 3 {
                "–".to_string()
            } else {
                let (m, lo, hi) = summarize(&ratios);
                format!("{m:.2} ({lo:.2}–{hi:.2})")
            };
            let verdict = judge(*target, median, summarize(&ratios).0);
            let _ = writeln!(
                out,
                "| {name} | {unit} | {} | {} | {} | {ratio} | {verdict} |",
                fmt(median),
                fmt(min),
                fmt(max)
            );
        }
        out
    }
}

fn judge(target: Target, median: f64, ratio: f64) -> String {
    let (met, text) = match target {
        Target::AtLeast(t) => (median >= t, format!("≥ {}", fmt(t))),
        Target::AtMost(t) => (median <= t, format!("≤ {}", fmt(t))),
        Target::RatioAtLeast(t) => (ratio >= t, format!("≥ {t:.2} of ceiling")),
        Target::None => return String::new(),
    };
    format!("{text}: {}", if met { "met" } else { "missed" })
}

/// Median, minimum and maximum; NaN for an empty list.
fn summarize(values: &[f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    };
    (median, sorted[0], sorted[sorted.len() - 1])
}

fn fmt(value: f64) -> String {
    if value.is_nan() {
        "–".into()
    } else if value.abs() >= 1000.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// Computes the `q`-quantile (0..=1) of latencies in nanoseconds, in milliseconds; NaN when empty.
pub fn quantile_ms(latencies: &mut [u64], q: f64) -> f64 {
    if latencies.is_empty() {
        return f64::NAN;
    }
    latencies.sort_unstable();
    let index = ((latencies.len() - 1) as f64 * q).round() as usize;
    latencies[index] as f64 / 1e6
}
