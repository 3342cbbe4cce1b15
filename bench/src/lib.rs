//! Shared pieces of the benchmark programs: percentiles and the one-line JSON results that
//! `bench/run` collects into BENCHMARKS.md.

use std::time::Duration;

/// Summary statistics of a sample, in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// Nearest-rank percentiles of `samples` (microseconds).
pub fn summarize(samples: &mut [f64]) -> Summary {
    assert!(!samples.is_empty(), "no samples");
    samples.sort_by(f64::total_cmp);
    let rank = |p: f64| samples[((p / 100.0 * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    Summary {
        n: samples.len(),
        p50: rank(50.0),
        p90: rank(90.0),
        p99: rank(99.0),
        max: samples[samples.len() - 1],
        mean: samples.iter().sum::<f64>() / samples.len() as f64,
    }
}

/// Microseconds of a duration.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Prints one result line: `{"bench": name, ...fields, "n", "p50_us", ...}`.
pub fn report(name: &str, mut fields: serde_json::Value, summary: Summary) {
    let object = fields.as_object_mut().expect("fields are an object");
    object.insert("bench".into(), name.into());
    for (key, value) in [
        ("n", summary.n as f64),
        ("p50_us", summary.p50),
        ("p90_us", summary.p90),
        ("p99_us", summary.p99),
        ("max_us", summary.max),
        ("mean_us", summary.mean),
    ] {
        object.insert(key.into(), serde_json::json!((value * 100.0).round() / 100.0));
    }
    println!("{fields}");
}

/// Whether `QUICK=1` asks for a short run.
pub fn quick() -> bool {
    std::env::var("QUICK").is_ok_and(|v| v == "1")
}

/// `manifest` with the `guests_start_on` that `GUESTS_START_ON` names, if set (`auto`,
/// `io-threads`, `guest-threads`): to compare where guests start, in alternating runs.
pub fn guests_start_on(manifest: tests::Manifest) -> tests::Manifest {
    match std::env::var("GUESTS_START_ON") {
        Ok(setting) => manifest.server(&format!("guests_start_on = \"{setting}\"")),
        Err(_) => manifest,
    }
}
