//! Many runs' validation accuracy per epoch on one chart, coloured by group
//! (the runs of one recipe share a colour), for a sweep over seeds and recipes.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{ReportError, draw_error, font, render_png, render_svg};

/// One run's curve.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlaySeries {
    /// The group it belongs to (its colour), an index into [`Overlay::groups`].
    pub group: usize,
    /// `(epoch, validation accuracy)`, epochs 0-based.
    pub points: Vec<(u64, f64)>,
}

/// The chart: a title, the groups' names (the legend) and one series per run.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlay {
    /// The chart's title.
    pub title: String,
    /// Each group's legend text.
    pub groups: Vec<String>,
    /// The runs.
    pub series: Vec<OverlaySeries>,
}

const SIZE: (u32, u32) = (1000, 560);

/// Colours of the groups, in order (then again).
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// The overlay as an SVG document.
///
/// ```
/// use report::{Overlay, OverlaySeries, overlay_svg};
/// let series = |group, end| OverlaySeries { group, points: vec![(0, 0.97), (1, end)] };
/// let overlay = Overlay { title: "sweep".into(), groups: vec!["augment=seed".into(), "augment=none".into()],
///     series: vec![series(0, 0.99), series(0, 0.991), series(1, 0.985)] };
/// let svg = overlay_svg(&overlay).unwrap();
/// assert!(svg.contains("augment=none") && svg.contains("sweep"));
/// ```
///
/// # Errors
/// No series with a point, a group index without a group, or a drawing error.
pub fn overlay_svg(overlay: &Overlay) -> Result<String, ReportError> {
    render_svg(SIZE, "overlay.svg", |root| draw(root, overlay))
}

/// The overlay as PNG bytes.
///
/// # Errors
/// As [`overlay_svg`].
pub fn overlay_png(overlay: &Overlay) -> Result<Vec<u8>, ReportError> {
    render_png(SIZE, "overlay.png", |root| draw(root, overlay))
}

fn check(overlay: &Overlay) -> Result<(), ReportError> {
    let bad = |reason: String| Err(ReportError::Input { figure: "overlay", reason });
    if overlay.series.iter().all(|series| series.points.is_empty()) {
        return bad("no run has recorded an epoch yet".into());
    }
    if let Some(series) = overlay.series.iter().find(|series| series.group >= overlay.groups.len()) {
        return bad(format!("a series of group {} but {} groups", series.group, overlay.groups.len()));
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, overlay: &Overlay) -> Result<(), ReportError>
where
    DB::ErrorType: 'static,
{
    check(overlay)?;
    let error = draw_error("overlay");
    root.fill(&WHITE).map_err(|e| error(&e))?;
    draw_chart(root, overlay).map_err(|e| error(&e))
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw_chart<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, overlay: &Overlay) -> DrawResult<DB> {
    let points = || overlay.series.iter().flat_map(|series| series.points.iter());
    let last_epoch = points().map(|(epoch, _)| epoch + 1).max().unwrap_or(1).max(2);
    let (low, high) = points().fold((1.0f64, 0.0f64), |(low, high), (_, value)| (low.min(*value), high.max(*value)));
    // The top of the curves is what a sweep compares: at most 0.05 below the best is shown,
    // and lower values sit on the bottom edge.
    let floor = low.max(high - 0.05).max(0.0);
    let room = ((high - floor) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(root)
        .caption(&overlay.title, (font(), 22))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.5..last_epoch as f64 + 0.5, floor..(high + room).min(1.0))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("validation accuracy")
        .x_labels(last_epoch.min(10) as usize)
        .x_label_formatter(&|epoch| if epoch.fract() == 0.0 { format!("{epoch:.0}") } else { String::new() })
        .y_label_formatter(&|value| format!("{value:.3}"))
        .label_style((font(), 14))
        .axis_desc_style((font(), 15))
        .draw()?;
    for (index, name) in overlay.groups.iter().enumerate() {
        let color = PALETTE[index % PALETTE.len()];
        let mut first = true;
        for series in overlay.series.iter().filter(|series| series.group == index) {
            let line = series.points.iter().map(|(epoch, value)| ((epoch + 1) as f64, value.max(floor)));
            let drawn = chart.draw_series(LineSeries::new(line, color.mix(0.75).stroke_width(2)))?;
            if std::mem::take(&mut first) {
                drawn
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(3)));
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((font(), 14))
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_overlays_are_errors_naming_the_figure() {
        let empty = Overlay { title: "t".into(), groups: vec!["a".into()], series: vec![] };
        assert!(overlay_png(&empty).unwrap_err().to_string().contains("no run has recorded an epoch"));
        let stray = Overlay {
            title: "t".into(),
            groups: vec!["a".into()],
            series: vec![OverlaySeries { group: 3, points: vec![(0, 0.5)] }],
        };
        assert!(overlay_svg(&stray).unwrap_err().to_string().contains("group 3 but 1 groups"));
        let fine = Overlay { series: vec![OverlaySeries { group: 0, points: vec![(0, 0.5), (1, 0.9)] }], ..stray };
        assert!(overlay_png(&fine).unwrap().starts_with(b"\x89PNG"));
    }
}
