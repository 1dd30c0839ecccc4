//! What a classifier's class probabilities on labelled images add up to:
//! the confusion matrix, accuracy overall and per class, and the mistakes,
//! worst (least probability on the true class) first. Computed here once for
//! `trainer evaluate`, the report and the web app.
#![warn(missing_docs)]

/// A row or label that cannot be scored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScoreError {
    /// Rows and labels of different counts.
    #[error("{n_rows} rows of probabilities but {n_labels} labels")]
    Count {
        /// Rows given.
        n_rows: usize,
        /// Labels given.
        n_labels: usize,
    },
    /// A row without one probability per class.
    #[error("image {index}: {found} probabilities, expected one per class ({n_classes})")]
    RowLength {
        /// The image.
        index: usize,
        /// Values in its row.
        found: usize,
        /// Classes.
        n_classes: usize,
    },
    /// A label that is not a class.
    #[error("image {index}: label {label}, expected a class below {n_classes}")]
    Label {
        /// The image.
        index: usize,
        /// Its label.
        label: u8,
        /// Classes.
        n_classes: usize,
    },
}

/// One misclassified image.
#[derive(Debug, Clone, PartialEq)]
pub struct Mistake {
    /// The image's index among those scored.
    pub index: usize,
    /// Its label.
    pub true_class: usize,
    /// The class with the highest probability.
    pub predicted_class: usize,
    /// The probability given to the true class.
    pub true_probability: f32,
    /// The probability given to the predicted class.
    pub predicted_probability: f32,
}

/// The class with the highest probability (the first of equal ones, as libtorch's `argmax`).
///
/// ```
/// assert_eq!(scoring::predicted_class(&[0.1, 0.7, 0.2]), 1);
/// assert_eq!(scoring::predicted_class(&[0.5, 0.5]), 0);
/// ```
pub fn predicted_class(row: &[f32]) -> usize {
    let mut best = 0;
    for (class, &probability) in row.iter().enumerate() {
        if probability.total_cmp(&row[best]).is_gt() {
            best = class;
        }
    }
    best
}

/// Labelled images scored: the confusion matrix and the mistakes.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// `confusion[true_class][predicted_class]`: images of each class given each prediction.
    pub confusion: Vec<Vec<u64>>,
    /// Every misclassified image, worst (least probability on the true class) first.
    pub mistakes: Vec<Mistake>,
}

impl Scores {
    /// Scores `rows` (one row of `n_classes` probabilities per image) against `labels`.
    ///
    /// ```
    /// let rows = vec![vec![0.9, 0.1], vec![0.6, 0.4], vec![0.2, 0.8]];
    /// let scores = scoring::Scores::from_probabilities(&rows, &[0, 1, 1], 2)?;
    /// assert_eq!(scores.confusion, vec![vec![1, 0], vec![1, 1]]);
    /// assert_eq!((scores.n_correct(), scores.mistakes.len(), scores.mistakes[0].index), (2, 1, 1));
    /// # Ok::<(), scoring::ScoreError>(())
    /// ```
    ///
    /// # Errors
    /// Counts that differ, a row of the wrong length or a label that is not a class.
    pub fn from_probabilities(rows: &[Vec<f32>], labels: &[u8], n_classes: usize) -> Result<Self, ScoreError> {
        if rows.len() != labels.len() {
            return Err(ScoreError::Count { n_rows: rows.len(), n_labels: labels.len() });
        }
        let mut scores = Scores { confusion: vec![vec![0; n_classes]; n_classes], mistakes: Vec::new() };
        for (index, (row, &label)) in rows.iter().zip(labels).enumerate() {
            scores.add(index, row, label)?;
        }
        scores.mistakes.sort_by(|a, b| a.true_probability.total_cmp(&b.true_probability));
        Ok(scores)
    }

    fn add(&mut self, index: usize, row: &[f32], label: u8) -> Result<(), ScoreError> {
        let n_classes = self.confusion.len();
        if row.len() != n_classes {
            return Err(ScoreError::RowLength { index, found: row.len(), n_classes });
        }
        let true_class = usize::from(label);
        if true_class >= n_classes {
            return Err(ScoreError::Label { index, label, n_classes });
        }
        let predicted_class = predicted_class(row);
        self.confusion[true_class][predicted_class] += 1;
        if predicted_class != true_class {
            self.mistakes.push(Mistake {
                index,
                true_class,
                predicted_class,
                true_probability: row[true_class],
                predicted_probability: row[predicted_class],
            });
        }
        Ok(())
    }

    /// Images scored.
    pub fn n_images(&self) -> u64 {
        self.confusion.iter().flatten().sum()
    }

    /// Images classified correctly.
    pub fn n_correct(&self) -> u64 {
        (0..self.confusion.len()).map(|class| self.confusion[class][class]).sum()
    }

    /// The share of images classified correctly (0 when there are none).
    pub fn accuracy(&self) -> f64 {
        self.n_correct() as f64 / self.n_images().max(1) as f64
    }

    /// Each class's accuracy; `None` for a class without images.
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(class, row)| {
                let n_class: u64 = row.iter().sum();
                (n_class > 0).then(|| row[class] as f64 / n_class as f64)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot(class: usize, confidence: f32) -> Vec<f32> {
        let mut row = vec![(1.0 - confidence) / 9.0; 10];
        row[class] = confidence;
        row
    }

    #[test]
    fn the_confusion_matrix_counts_true_against_predicted_and_mistakes_come_worst_first() {
        let rows = vec![one_hot(0, 0.9), one_hot(1, 0.6), one_hot(1, 0.9), one_hot(9, 0.8), one_hot(3, 0.95)];
        let scores = Scores::from_probabilities(&rows, &[0, 0, 1, 9, 9], 10).unwrap();
        assert_eq!((scores.confusion[0][0], scores.confusion[0][1], scores.confusion[1][1]), (1, 1, 1));
        assert_eq!((scores.confusion[9][9], scores.confusion[9][3]), (1, 1));
        assert_eq!((scores.n_images(), scores.n_correct()), (5, 3));
        assert_eq!(scores.accuracy(), 0.6);
        let worst: Vec<usize> = scores.mistakes.iter().map(|mistake| mistake.index).collect();
        // Image 4 gave its true class 9 only 0.05/9; image 1 gave class 0 0.4/9.
        assert_eq!(worst, vec![4, 1]);
        assert_eq!((scores.mistakes[0].true_class, scores.mistakes[0].predicted_class), (9, 3));
        assert_eq!(scores.mistakes[0].predicted_probability, 0.95);
        let per_class = scores.per_class_accuracy();
        assert_eq!((per_class[0], per_class[1], per_class[2], per_class[9]), (Some(0.5), Some(1.0), None, Some(0.5)));
    }

    #[test]
    fn bad_rows_and_labels_are_errors_naming_the_image() {
        let rows = vec![one_hot(0, 0.9), vec![0.5, 0.5]];
        assert_eq!(
            Scores::from_probabilities(&rows, &[0], 10).unwrap_err(),
            ScoreError::Count { n_rows: 2, n_labels: 1 }
        );
        let message = Scores::from_probabilities(&rows, &[0, 1], 10).unwrap_err().to_string();
        assert_eq!(message, "image 1: 2 probabilities, expected one per class (10)");
        let message = Scores::from_probabilities(&rows[..1], &[12], 10).unwrap_err().to_string();
        assert_eq!(message, "image 0: label 12, expected a class below 10");
    }
}
