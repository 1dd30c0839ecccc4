//! Loss and accuracy per epoch.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{ReportError, draw_error, font, render_png, render_svg};

/// One epoch's record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochPoint {
    /// The epoch, 0-based (plotted 1-based, as the trainer prints it).
    pub epoch: u64,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Mean loss on the validation images, when recorded.
    pub validation_loss: Option<f64>,
    /// Accuracy on a random sample of the training images (see
    /// [`Curves::train_sample_images`]).
    pub train_accuracy: f64,
    /// Accuracy on the validation images.
    pub validation_accuracy: f64,
}

/// What the curves figure shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Curves {
    /// The title (the run's name).
    pub title: String,
    /// The epochs recorded so far, in order.
    pub epochs: Vec<EpochPoint>,
    /// The epoch (0-based) with the best validation accuracy, marked.
    pub best_epoch: Option<u64>,
    /// The best checkpoint's test accuracy, annotated when the run has one.
    pub test_accuracy: Option<f64>,
    /// How many training images each epoch's training accuracy was measured
    /// on, when known: the curve is then drawn with its 95% interval (a
    /// sample of 500 images puts 0.99 anywhere from 0.977 to 0.996).
    pub train_sample_images: Option<u64>,
}

/// The 95% Wilson score interval of an accuracy measured on `n` images:
/// unlike the normal approximation it stays within `[0, 1]` near 1.
///
/// ```
/// let (low, high) = report::wilson_interval(0.99, 500);
/// assert!((low - 0.9768).abs() < 1e-3 && (high - 0.9957).abs() < 1e-3);
/// ```
pub fn wilson_interval(accuracy: f64, n: u64) -> (f64, f64) {
    const Z: f64 = 1.959_963_984_540_054;
    let n = n.max(1) as f64;
    let denominator = 1.0 + Z * Z / n;
    let centre = (accuracy + Z * Z / (2.0 * n)) / denominator;
    let half = Z * (accuracy * (1.0 - accuracy) / n + Z * Z / (4.0 * n * n)).max(0.0).sqrt() / denominator;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

const SIZE: (u32, u32) = (1200, 480);
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VALIDATION: RGBColor = RGBColor(255, 127, 14);
const BEST: RGBColor = RGBColor(44, 160, 44);

/// The curves as an SVG document.
pub fn curves_svg(curves: &Curves) -> Result<String, ReportError> {
    render_svg(SIZE, "curves.svg", |root| draw(root, curves))
}

/// The curves as PNG bytes.
pub fn curves_png(curves: &Curves) -> Result<Vec<u8>, ReportError> {
    render_png(SIZE, "curves.png", |root| draw(root, curves))
}

/// The last epoch plotted (1-based), at least 2.
fn last_epoch(curves: &Curves) -> u64 {
    curves.epochs.iter().map(|point| point.epoch + 1).max().unwrap_or(1).max(2)
}

/// The x range: epochs 1 to the last (at least two ticks wide).
fn epoch_range(curves: &Curves) -> std::ops::Range<f64> {
    0.5..last_epoch(curves) as f64 + 0.5
}

/// At most as many x labels as epochs (and 10), so that plotters' tick
/// step is a whole number of epochs and each epoch is labelled once.
fn epoch_labels(curves: &Curves) -> usize {
    last_epoch(curves).min(10) as usize
}

/// An epoch tick's label: whole epochs only.
fn epoch_label(epoch: &f64) -> String {
    if epoch.fract() == 0.0 { format!("{epoch:.0}") } else { String::new() }
}

/// A range covering `values` with a little room, within `[floor, ceiling]`.
fn value_range(values: impl Iterator<Item = f64>, floor: f64, ceiling: f64) -> std::ops::Range<f64> {
    let (low, high) = values
        .filter(|value| value.is_finite())
        .fold((f64::MAX, f64::MIN), |(lo, hi), value| (lo.min(value), hi.max(value)));
    if low > high {
        return floor..ceiling;
    }
    let room = ((high - low) * 0.08).max(1e-3);
    (low - room).max(floor)..(high + room).min(ceiling)
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, curves: &Curves) -> Result<(), ReportError>
where
    DB::ErrorType: 'static,
{
    if curves.epochs.is_empty() {
        return Err(ReportError::Input { figure: "curves", reason: "no epoch has been recorded yet".into() });
    }
    let error = draw_error("curves");
    root.fill(&WHITE).map_err(|e| error(&e))?;
    let root = root.titled(&curves.title, (font(), 22)).map_err(|e| error(&e))?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    draw_losses(&left, curves).map_err(|e| error(&e))?;
    draw_accuracies(&right, curves).map_err(|e| error(&e))?;
    Ok(())
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw_losses<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, curves: &Curves) -> DrawResult<DB> {
    let losses = curves.epochs.iter().flat_map(|point| [Some(point.train_loss), point.validation_loss]).flatten();
    let mut chart = ChartBuilder::on(area)
        .caption("loss (cross-entropy)", (font(), 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(epoch_range(curves), value_range(losses, 0.0, f64::MAX))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels(epoch_labels(curves))
        .x_label_formatter(&epoch_label)
        .label_style((font(), 14))
        .axis_desc_style((font(), 15))
        .draw()?;
    let train = curves.epochs.iter().map(|point| ((point.epoch + 1) as f64, point.train_loss));
    chart.draw_series(LineSeries::new(train, TRAIN.stroke_width(2)))?.label("training").legend(legend(TRAIN));
    let validation: Vec<(f64, f64)> = curves
        .epochs
        .iter()
        .filter_map(|point| point.validation_loss.map(|loss| ((point.epoch + 1) as f64, loss)))
        .collect();
    if !validation.is_empty() {
        chart
            .draw_series(LineSeries::new(validation, VALIDATION.stroke_width(2)))?
            .label("validation")
            .legend(legend(VALIDATION));
    }
    mark_best(&mut chart, curves)?;
    chart.configure_series_labels().label_font((font(), 14)).border_style(BLACK).background_style(WHITE).draw()
}

fn draw_accuracies<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, curves: &Curves) -> DrawResult<DB> {
    let accuracies = curves
        .epochs
        .iter()
        .flat_map(|point| [point.train_accuracy, point.validation_accuracy])
        .chain(curves.test_accuracy);
    let caption = match curves.test_accuracy {
        Some(test) => format!("accuracy (test accuracy {test:.4}, ×)"),
        None => "accuracy".to_owned(),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (font(), 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(epoch_range(curves), value_range(accuracies, 0.0, 1.0))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels(epoch_labels(curves))
        .x_label_formatter(&epoch_label)
        .y_label_formatter(&|value| format!("{value:.3}"))
        .label_style((font(), 14))
        .axis_desc_style((font(), 15))
        .draw()?;
    let train_label = match curves.train_sample_images {
        Some(n) => {
            draw_interval(&mut chart, curves, n)?;
            format!("training ({n} random images an epoch, 95% interval)")
        }
        None => "training (a random sample)".to_owned(),
    };
    let train = curves.epochs.iter().map(|point| ((point.epoch + 1) as f64, point.train_accuracy));
    chart.draw_series(LineSeries::new(train, TRAIN.stroke_width(2)))?.label(train_label).legend(legend(TRAIN));
    let validation = curves.epochs.iter().map(|point| ((point.epoch + 1) as f64, point.validation_accuracy));
    chart
        .draw_series(LineSeries::new(validation, VALIDATION.stroke_width(2)))?
        .label("validation")
        .legend(legend(VALIDATION));
    mark_best(&mut chart, curves)?;
    if let (Some(test), Some(best)) = (curves.test_accuracy, curves.best_epoch) {
        // The best checkpoint's test accuracy, at the epoch it comes from.
        chart.draw_series([Cross::new(((best + 1) as f64, test), 7, BLACK.stroke_width(2))])?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((font(), 14))
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
}

type EpochChart<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

/// The training accuracy's 95% interval as a shaded band.
fn draw_interval<DB: DrawingBackend>(chart: &mut EpochChart<'_, DB>, curves: &Curves, n: u64) -> DrawResult<DB> {
    let finite: Vec<&EpochPoint> = curves.epochs.iter().filter(|point| point.train_accuracy.is_finite()).collect();
    let x = |point: &EpochPoint| (point.epoch + 1) as f64;
    let upper = finite.iter().map(|point| (x(point), wilson_interval(point.train_accuracy, n).1));
    let lower = finite.iter().rev().map(|point| (x(point), wilson_interval(point.train_accuracy, n).0));
    let outline: Vec<(f64, f64)> = upper.chain(lower).collect();
    chart.draw_series([Polygon::new(outline, TRAIN.mix(0.18).filled())])?;
    Ok(())
}

/// A dashed vertical line at the best epoch, labelled.
fn mark_best<DB: DrawingBackend>(chart: &mut EpochChart<'_, DB>, curves: &Curves) -> DrawResult<DB> {
    let Some(best) = curves.best_epoch else { return Ok(()) };
    let x = (best + 1) as f64;
    let y_range = chart.y_range();
    let dashes = (0..40).map(|piece| {
        let step = (y_range.end - y_range.start) / 40.0;
        let start = y_range.start + step * piece as f64;
        (start, start + step * 0.6)
    });
    for (from, to) in dashes {
        chart.draw_series(LineSeries::new([(x, from), (x, to)], BEST.stroke_width(1)))?;
    }
    chart
        .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
        .label(format!("best epoch {}", best + 1))
        .legend(legend(BEST));
    Ok(())
}

fn legend(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
}
