//! Loss and accuracy per epoch.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{ReportError, draw_error, encode_png, font};

/// One epoch's record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochPoint {
    /// The epoch, 0-based (plotted 1-based, as the trainer prints it).
    pub epoch: u64,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Mean loss on the validation images, when recorded.
    pub validation_loss: Option<f64>,
    /// Accuracy on the training images.
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
}

const SIZE: (u32, u32) = (1200, 480);
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VALIDATION: RGBColor = RGBColor(255, 127, 14);
const BEST: RGBColor = RGBColor(44, 160, 44);

/// The curves as an SVG document.
pub fn curves_svg(curves: &Curves) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw(&root, curves)?;
        root.present().map_err(|error| draw_error("curves.svg")(&error))?;
    }
    Ok(svg)
}

/// The curves as PNG bytes.
pub fn curves_png(curves: &Curves) -> Result<Vec<u8>, ReportError> {
    let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        draw(&root, curves)?;
        root.present().map_err(|error| draw_error("curves.png")(&error))?;
    }
    Ok(encode_png(rgb, SIZE))
}

/// The x range: epochs 1 to the last (at least two ticks wide).
fn epoch_range(curves: &Curves) -> std::ops::Range<f64> {
    let last = curves.epochs.iter().map(|point| point.epoch + 1).max().unwrap_or(1);
    0.5..(last as f64 + 0.5).max(2.5)
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
        .x_label_formatter(&|epoch| format!("{epoch:.0}"))
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
        .x_label_formatter(&|epoch| format!("{epoch:.0}"))
        .y_label_formatter(&|value| format!("{value:.3}"))
        .label_style((font(), 14))
        .axis_desc_style((font(), 15))
        .draw()?;
    let train = curves.epochs.iter().map(|point| ((point.epoch + 1) as f64, point.train_accuracy));
    chart.draw_series(LineSeries::new(train, TRAIN.stroke_width(2)))?.label("training").legend(legend(TRAIN));
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

/// A dashed vertical line at the best epoch, labelled.
fn mark_best<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    curves: &Curves,
) -> DrawResult<DB> {
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
