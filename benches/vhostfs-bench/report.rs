//! Tables: one daemon's figures, or two daemons' medians over alternating rounds with the
//! ratio per row and the spread of that ratio between rounds.

use crate::run::Measure;
use crate::workload::Kind;

const MIB: f64 = 1024.0 * 1024.0;

/// The header of a one-daemon table.
pub fn single_header() {
    println!(
        "| {:<24} | {:>11} | {:>8} | {:>9} | {:>9} | {:>10} | {:>8} |",
        "workload", "ops/s", "GiB/s", "p50 us", "p99 us", "CPU us/op", "RSS MiB"
    );
    println!(
        "| {:-<24} | {:->11} | {:->8} | {:->9} | {:->9} | {:->10} | {:->8} |",
        "", ":", ":", ":", ":", ":", ":"
    );
}

/// One row of a one-daemon table.
pub fn single_row(name: &str, m: &Measure) {
    println!(
        "| {:<24} | {:>11.0} | {:>8.3} | {:>9.1} | {:>9.1} | {:>10.2} | {:>8.1} |",
        name,
        m.ops_per_sec(),
        m.gib_per_sec(),
        m.lat_us(0.5),
        m.lat_us(0.99),
        m.cpu_us_per_op(),
        m.rss as f64 / MIB
    );
}

/// Median of `v` (not empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The lowest and highest of `v` (not empty).
pub fn min_max(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

/// How one daemon's ops/s change as its inode table grows: per workload, the median ops/s
/// at each table size (`steps`), and the ratio of the largest table's to the smallest's,
/// per round (median and min-max). `runs[round][step][workload]`.
pub fn scaling(label: &str, kinds: &[Kind], steps: &[usize], runs: &[Vec<Vec<Measure>>]) {
    let (first, last) = (0, steps.len() - 1);
    println!(
        "{label}: ops/s with {} inodes looked up against {}",
        steps[last], steps[first]
    );
    println!(
        "| {:<24} | {:>12} | {:>12} | {:>7} | {:>11} |",
        "workload",
        format!("@{}", steps[first]),
        format!("@{}", steps[last]),
        "ratio",
        "min-max"
    );
    println!(
        "| {:-<24} | {:->12} | {:->12} | {:->7} | {:->11} |",
        "", ":", ":", ":", ":"
    );
    for (i, k) in kinds.iter().enumerate() {
        let ops =
            |step: usize| -> Vec<f64> { runs.iter().map(|r| r[step][i].ops_per_sec()).collect() };
        let ratios: Vec<f64> = ops(last)
            .iter()
            .zip(ops(first))
            .map(|(big, small)| big / small)
            .collect();
        let (lo, hi) = min_max(&ratios);
        println!(
            "| {:<24} | {:>12.0} | {:>12.0} | {:>7.2} | {:>11} |",
            k.name(),
            median(ops(first)),
            median(ops(last)),
            median(ratios),
            format!("{lo:.2}-{hi:.2}")
        );
    }
}

/// The rounds of one workload, per daemon.
pub struct Rounds<'a> {
    pub name: &'a str,
    pub a: &'a [Measure],
    pub b: &'a [Measure],
}

fn med(ms: &[Measure], f: impl Fn(&Measure) -> f64) -> f64 {
    median(ms.iter().map(f).collect())
}

/// The header of a comparison table.
pub fn compare_header(a: &str, b: &str) {
    println!(
        "A = {a}, B = {b}; medians over rounds; A/B ratios (ops/s: higher is better for A; CPU/op: lower is)"
    );
    println!(
        "| {:<24} | {:>10} | {:>10} | {:>6} | {:>13} | {:>9} | {:>9} | {:>6} | {:>13} | {:>13} |",
        "workload",
        "A ops/s",
        "B ops/s",
        "A/B",
        "A/B min-max",
        "A us/op",
        "B us/op",
        "A/B",
        "p50 us A/B",
        "p99 us A/B"
    );
    println!(
        "| {:-<24} | {:->10} | {:->10} | {:->6} | {:->13} | {:->9} | {:->9} | {:->6} | {:->13} | {:->13} |",
        "", ":", ":", ":", ":", ":", ":", ":", ":", ":"
    );
}

/// One row of a comparison table: medians, the ratio of medians, and the lowest and highest
/// per-round ratio (round i of A against round i of B) as the noise.
pub fn compare_row(r: &Rounds<'_>) {
    let (a_ops, b_ops) = (
        med(r.a, Measure::ops_per_sec),
        med(r.b, Measure::ops_per_sec),
    );
    let (a_cpu, b_cpu) = (
        med(r.a, Measure::cpu_us_per_op),
        med(r.b, Measure::cpu_us_per_op),
    );
    let ratios: Vec<f64> =
        r.a.iter()
            .zip(r.b)
            .map(|(a, b)| a.ops_per_sec() / b.ops_per_sec())
            .collect();
    let (lo, hi) = min_max(&ratios);
    println!(
        "| {:<24} | {:>10.0} | {:>10.0} | {:>6.2} | {:>13} | {:>9.2} | {:>9.2} | {:>6.2} | {:>13} | {:>13} |",
        r.name,
        a_ops,
        b_ops,
        a_ops / b_ops,
        format!("{lo:.2}-{hi:.2}"),
        a_cpu,
        b_cpu,
        a_cpu / b_cpu,
        format!(
            "{:.0}/{:.0}",
            med(r.a, |m| m.lat_us(0.5)),
            med(r.b, |m| m.lat_us(0.5))
        ),
        format!(
            "{:.0}/{:.0}",
            med(r.a, |m| m.lat_us(0.99)),
            med(r.b, |m| m.lat_us(0.99))
        ),
    );
}
