//! Summaries of samples.

use serde_json::{Value, json};

/// Percentiles of a sample (nearest rank).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    sorted: Vec<f64>,
}

impl Summary {
    pub fn of(mut samples: Vec<f64>) -> Summary {
        samples.sort_by(f64::total_cmp);
        Summary { sorted: samples }
    }

    pub fn count(&self) -> usize {
        self.sorted.len()
    }

    /// The `p`-th percentile (0–100), or NaN without samples.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.sorted.is_empty() {
            return f64::NAN;
        }
        let rank = (p / 100.0 * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    pub fn median(&self) -> f64 {
        self.percentile(50.0)
    }

    pub fn mean(&self) -> f64 {
        self.sorted.iter().sum::<f64>() / self.sorted.len() as f64
    }

    pub fn to_json(&self) -> Value {
        if self.sorted.is_empty() {
            return json!({ "count": 0 });
        }
        json!({
            "count": self.count(), "min": self.sorted[0], "p50": self.median(),
            "p90": self.percentile(90.0), "p99": self.percentile(99.0),
            "max": self.sorted[self.sorted.len() - 1], "mean": self.mean(),
        })
    }
}
