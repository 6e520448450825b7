//! The record of a run's epochs: one [`EpochRecord`] per finished epoch, a line each in
//! `metrics.jsonl`, with the task's own metrics under generic names.
//!
//! ```json
//! {"epoch":1,"global_step":860,"lr":0.00195,"train_seconds":9.1,"throughput":6043.2,
//!  "throughput_unit":"images/s","train":{"loss":0.53,"accuracy":0.81},
//!  "val":{"loss":0.41,"accuracy":0.85}}
//! ```

use std::io::Write;
use std::path::Path;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::io::write_atomic;

/// File name of the per-epoch metrics (JSON lines) in a run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Named values in a fixed order (the task's: loss first), written as a JSON object. A value
/// that is not finite is written as `null` and read back as NaN.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics(pub Vec<(String, f64)>);

impl Metrics {
    /// The value named `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// Whether there are no values (e.g. no validation set).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<(&'static str, f64)>> for Metrics {
    fn from(v: Vec<(&'static str, f64)>) -> Self {
        Metrics(v.into_iter().map(|(n, x)| (n.to_string(), x)).collect())
    }
}

impl Serialize for Metrics {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, v) in &self.0 {
            map.serialize_entry(name, &v.is_finite().then_some(*v))?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Metrics {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Metrics;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of metric names and numbers")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<Metrics, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Option<f64>>()? {
                    out.push((k, v.unwrap_or(f64::NAN)));
                }
                Ok(Metrics(out))
            }
        }
        d.deserialize_map(InOrder)
    }
}

/// One line of `metrics.jsonl`: a finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Batches trained since the start of the run, after this epoch.
    pub global_step: usize,
    /// Learning rate at the epoch's last step (of the first parameter group).
    pub lr: f64,
    /// Wall time of the training part of the epoch (validation excluded), seconds; across a
    /// resume, the parts before and after it.
    pub train_seconds: f64,
    /// Training throughput, in `throughput_unit`.
    pub throughput: f64,
    /// What `throughput` counts: `images/s`, `tokens/s`.
    pub throughput_unit: String,
    /// The task's metrics over the epoch's training batches (on the fly, while the weights
    /// changed).
    pub train: Metrics,
    /// The task's metrics on the validation set after the epoch (empty without one).
    pub val: Metrics,
}

/// A line written by deepnet 0.1 before metrics were generic (classification only).
#[derive(Deserialize)]
struct LegacyLine {
    epoch: usize,
    train_loss: f64,
    train_accuracy: f64,
    val_loss: Option<f64>,
    val_accuracy: Option<f64>,
    lr: f64,
    train_seconds: f64,
    images_per_second: f64,
}

impl From<LegacyLine> for EpochRecord {
    fn from(l: LegacyLine) -> Self {
        let val = match (l.val_loss, l.val_accuracy) {
            (Some(loss), Some(acc)) => Metrics::from(vec![("loss", loss), ("accuracy", acc)]),
            _ => Metrics::default(),
        };
        EpochRecord {
            epoch: l.epoch,
            global_step: 0,
            lr: l.lr,
            train_seconds: l.train_seconds,
            throughput: l.images_per_second,
            throughput_unit: "images/s".into(),
            train: Metrics::from(vec![("loss", l.train_loss), ("accuracy", l.train_accuracy)]),
            val,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AnyLine {
    Current(EpochRecord),
    Legacy(LegacyLine),
}

/// Reads `metrics.jsonl` of `dir` (no file: no epochs). Lines of runs written before metrics
/// were generic are read too.
pub fn read_history(dir: &Path) -> Result<Vec<EpochRecord>> {
    let path = dir.join(METRICS_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = crate::io::read_text(&path, crate::io::Limit::JSON)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let line: AnyLine = serde_json::from_str(l)
                .map_err(|e| Error::bad_data(&path, format!("line {}: {e}", i + 1)))?;
            Ok(match line {
                AnyLine::Current(r) => r,
                AnyLine::Legacy(l) => l.into(),
            })
        })
        .collect()
}

/// Appends `record` to `metrics.jsonl` of `dir` and syncs it.
pub fn append_record(dir: &Path, record: &EpochRecord) -> Result<()> {
    let path = dir.join(METRICS_FILE);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let line = serde_json::to_string(record).expect("an EpochRecord serializes");
    writeln!(f, "{line}").map_err(|e| Error::io(&path, e))?;
    f.sync_data().map_err(|e| Error::io(&path, e))
}

/// Replaces `metrics.jsonl` of `dir` by `history`, atomically (a resumed run drops the lines
/// of work after its checkpoint, which it does again).
pub fn rewrite_history(dir: &Path, history: &[EpochRecord]) -> Result<()> {
    let text: String = history
        .iter()
        .map(|r| serde_json::to_string(r).expect("an EpochRecord serializes") + "\n")
        .collect();
    write_atomic(&dir.join(METRICS_FILE), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> EpochRecord {
        EpochRecord {
            epoch: 2,
            global_step: 20,
            lr: 0.1,
            train_seconds: 1.5,
            throughput: 100.0,
            throughput_unit: "tokens/s".into(),
            train: Metrics::from(vec![("loss", 2.0), ("perplexity", 7.389)]),
            val: Metrics::from(vec![("loss", f64::NAN)]),
        }
    }

    #[test]
    fn records_keep_metric_order_and_round_trip_with_nan_as_null() {
        let line = serde_json::to_string(&record()).unwrap();
        assert!(
            line.contains(r#""train":{"loss":2.0,"perplexity":7.389}"#),
            "{line}"
        );
        assert!(line.contains(r#""val":{"loss":null}"#), "{line}");
        let back: EpochRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back.train, record().train);
        assert!(back.val.get("loss").unwrap().is_nan());
    }

    #[test]
    fn reads_current_and_legacy_lines() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = r#"{"epoch":1,"train_loss":1.1,"train_accuracy":0.6,"val_loss":0.8,"val_accuracy":0.7,"lr":0.001,"train_seconds":1.0,"images_per_second":4000.0}"#;
        std::fs::write(dir.path().join(METRICS_FILE), format!("{legacy}\n")).unwrap();
        append_record(dir.path(), &record()).unwrap();
        let h = read_history(dir.path()).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].val.get("accuracy"), Some(0.7));
        assert_eq!(h[0].throughput_unit, "images/s");
        assert_eq!(h[1].train.get("perplexity"), Some(7.389));
        rewrite_history(dir.path(), &h[1..]).unwrap();
        assert_eq!(read_history(dir.path()).unwrap().len(), 1);
        std::fs::write(dir.path().join(METRICS_FILE), "{oops\n").unwrap();
        let err = read_history(dir.path()).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
