//! Evaluation: loss, accuracy, per-class accuracy and the confusion matrix.

use burn::nn::loss::CrossEntropyLossConfig;
use serde::{Deserialize, Serialize};

use crate::data::{ImageBatcher, ImageDataset};
use crate::vision::ImageClassifier;

/// Results of a model on a labelled data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Number of images.
    pub count: usize,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// Class names in label order.
    pub class_names: Vec<String>,
    /// Accuracy per true class (recall); NaN-free: a class with no images gets 0.
    pub per_class_accuracy: Vec<f64>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// Evaluates `model` on all of `data` in batches of `batch_size`, without gradients.
pub fn evaluate<M: ImageClassifier>(
    model: &M,
    data: &ImageDataset,
    batcher: &ImageBatcher,
    batch_size: usize,
    mut on_batch: impl FnMut(usize),
) -> EvalReport {
    let model = model.valid();
    let classes = data.class_names.len();
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut loss_sum = 0.0f64;
    let order: Vec<usize> = (0..data.len()).collect();
    let mut seen = 0;
    for batch in batcher.iter(data, &order, batch_size) {
        let n = batch.labels.dims()[0];
        let logits = model.forward(batch.images);
        let device = logits.device();
        let loss = CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits.clone(), batch.labels.clone());
        loss_sum += loss.into_scalar::<f32>() as f64 * n as f64;
        let pred = logits.argmax(1).flatten::<1>(0, 1).into_data();
        let truth = batch.labels.into_data();
        let pred = pred
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap_or_default();
        let truth = truth
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap_or_default();
        for (&t, &p) in truth.iter().zip(pred.iter()) {
            confusion[t as usize][p as usize] += 1;
        }
        seen += n;
        on_batch(seen);
    }
    report_from_confusion(confusion, loss_sum, data.class_names.clone())
}

/// Builds an [`EvalReport`] from a confusion matrix and a summed loss.
pub fn report_from_confusion(
    confusion: Vec<Vec<usize>>,
    loss_sum: f64,
    class_names: Vec<String>,
) -> EvalReport {
    let count: usize = confusion.iter().flatten().sum();
    let correct: usize = (0..confusion.len()).map(|i| confusion[i][i]).sum();
    let per_class_accuracy = confusion
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let n: usize = row.iter().sum();
            if n == 0 {
                0.0
            } else {
                row[i] as f64 / n as f64
            }
        })
        .collect();
    EvalReport {
        count,
        loss: if count == 0 {
            0.0
        } else {
            loss_sum / count as f64
        },
        accuracy: if count == 0 {
            0.0
        } else {
            correct as f64 / count as f64
        },
        class_names,
        per_class_accuracy,
        confusion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_from_confusion() {
        let r = report_from_confusion(
            vec![vec![3, 1], vec![0, 4]],
            8.0,
            vec!["a".into(), "b".into()],
        );
        assert_eq!(r.count, 8);
        assert!((r.accuracy - 7.0 / 8.0).abs() < 1e-12);
        assert_eq!(r.per_class_accuracy, vec![0.75, 1.0]);
        assert!((r.loss - 1.0).abs() < 1e-12);
    }
}
