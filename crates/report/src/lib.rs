//! Figures and a self-contained HTML page of a training run, drawn in Rust
//! with plotters and a font bundled in the binary (DejaVu Sans), so they look
//! the same on a machine with no fonts installed. The crate takes plain
//! numbers and images; reading a run directory is the caller's business.
//!
//! - [`curves_svg`] / [`curves_png`]: loss and accuracy per epoch, the best
//!   epoch marked, the test accuracy annotated.
//! - [`confusion_png`]: a confusion matrix as a heat map with counts.
//! - [`mistakes_png`]: a grid of misclassified images with their labels.
//! - [`overlay_svg`] / [`overlay_png`]: many runs' validation accuracy on one
//!   chart, coloured by recipe (a sweep).
//! - [`index_html`]: one page with the settings, the figures inlined and a
//!   per-class accuracy table.
//!
//! ```
//! use report::{Curves, EpochPoint, curves_svg};
//!
//! let point = |epoch, accuracy| EpochPoint {
//!     epoch,
//!     train_loss: 1.0 / (epoch + 1) as f64,
//!     validation_loss: None,
//!     train_accuracy: accuracy,
//!     validation_accuracy: accuracy,
//! };
//! let curves = Curves {
//!     title: "demo".into(),
//!     epochs: vec![point(0, 0.9), point(1, 0.95)],
//!     best_epoch: Some(1),
//!     test_accuracy: Some(0.94),
//!     train_sample_images: Some(500),
//! };
//! let svg = curves_svg(&curves).unwrap();
//! assert!(svg.starts_with("<svg") && svg.contains("test accuracy 0.9400"));
//! ```
#![warn(missing_docs)]

mod confusion;
mod curves;
mod html;
mod mistakes;
mod overlay;

pub use confusion::confusion_png;
pub use curves::{Curves, EpochPoint, curves_png, curves_svg, wilson_interval};
pub use html::{Figure, Page, Table, index_html};
pub use mistakes::{Mistake, mistakes_png};
pub use overlay::{Overlay, OverlaySeries, overlay_png, overlay_svg};

/// What went wrong while drawing.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The plotting library failed (a bug, or a size it cannot draw).
    #[error("cannot draw {figure}: {reason}")]
    Draw {
        /// Which figure.
        figure: &'static str,
        /// The plotting library's message.
        reason: String,
    },
    /// The input cannot make the figure.
    #[error("cannot draw {figure}: {reason}")]
    Input {
        /// Which figure.
        figure: &'static str,
        /// What is wrong with the input.
        reason: String,
    },
}

/// The bundled font's family name, registered once.
const FONT: &str = "report-sans";

/// Registers the bundled font with plotters (once per process).
fn font() -> &'static str {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        plotters::style::register_font(
            FONT,
            plotters::style::FontStyle::Normal,
            include_bytes!("../fonts/DejaVuSans.ttf"),
        )
        .unwrap_or_else(|_| panic!("the bundled DejaVu Sans is a valid font"));
    });
    FONT
}

/// An RGB buffer of `width x height` as PNG bytes.
fn encode_png(rgb: Vec<u8>, (width, height): (u32, u32)) -> Vec<u8> {
    let image = image::RgbImage::from_raw(width, height, rgb).expect("a buffer of width x height pixels");
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).expect("encoding a PNG in memory cannot fail");
    png.into_inner()
}

/// A figure drawn by `draw` onto an SVG document of `size`.
fn render_svg(
    size: (u32, u32),
    figure: &'static str,
    draw: impl FnOnce(
        &plotters::drawing::DrawingArea<plotters::prelude::SVGBackend<'_>, plotters::coord::Shift>,
    ) -> Result<(), ReportError>,
) -> Result<String, ReportError> {
    use plotters::prelude::IntoDrawingArea;
    let mut svg = String::new();
    {
        let root = plotters::prelude::SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|error| draw_error(figure)(&error))?;
    }
    Ok(svg)
}

/// A figure drawn by `draw` onto a bitmap of `size`, as PNG bytes.
fn render_png(
    size: (u32, u32),
    figure: &'static str,
    draw: impl FnOnce(
        &plotters::drawing::DrawingArea<plotters::prelude::BitMapBackend<'_>, plotters::coord::Shift>,
    ) -> Result<(), ReportError>,
) -> Result<Vec<u8>, ReportError> {
    use plotters::prelude::IntoDrawingArea;
    let mut rgb = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = plotters::prelude::BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|error| draw_error(figure)(&error))?;
    }
    Ok(encode_png(rgb, size))
}

/// A plotting error as a [`ReportError`].
fn draw_error(figure: &'static str) -> impl Fn(&dyn std::fmt::Display) -> ReportError {
    move |error| ReportError::Draw { figure, reason: error.to_string() }
}
