//! A grid of misclassified images.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{ReportError, draw_error, encode_png, font};

/// One misclassified image.
#[derive(Debug, Clone, PartialEq)]
pub struct Mistake {
    /// The image, `side x side` values in `[0, 1]` (white ink on black), row-major.
    pub pixels: Vec<f32>,
    /// The true class.
    pub true_class: usize,
    /// The predicted class.
    pub predicted_class: usize,
    /// The probability the network gave its prediction.
    pub probability: f32,
}

const SCALE: usize = 3;
const COLUMNS: usize = 10;

/// The mistakes as a grid, in the order given, each captioned with its true
/// class, the predicted one and the probability given to it.
///
/// ```
/// let mistake = report::Mistake { pixels: vec![0.5; 28 * 28], true_class: 4, predicted_class: 9, probability: 0.8 };
/// let names: Vec<String> = (0..10).map(|digit| digit.to_string()).collect();
/// let png = report::mistakes_png(&[mistake], 28, &names, "2 of 100 misclassified").unwrap();
/// assert_eq!(&png[1..4], b"PNG");
/// ```
pub fn mistakes_png(
    mistakes: &[Mistake],
    side: usize,
    class_names: &[String],
    title: &str,
) -> Result<Vec<u8>, ReportError> {
    if let Some(bad) = mistakes.iter().find(|mistake| mistake.pixels.len() != side * side) {
        return Err(ReportError::Input {
            figure: "misclassified.png",
            reason: format!("an image has {} pixels, expected {side}x{side}", bad.pixels.len()),
        });
    }
    if let Some(bad) =
        mistakes.iter().find(|m| m.true_class >= class_names.len() || m.predicted_class >= class_names.len())
    {
        return Err(ReportError::Input {
            figure: "misclassified.png",
            reason: format!("class {} has no name", bad.true_class.max(bad.predicted_class)),
        });
    }
    let image_side = side * SCALE;
    let (cell_width, cell_height) = (image_side + 24, image_side + 34);
    let rows = mistakes.len().div_ceil(COLUMNS).max(1);
    let size = ((COLUMNS * cell_width + 16) as u32, (rows * cell_height + 50) as u32);
    let mut rgb = vec![255u8; (size.0 * size.1 * 3) as usize];
    // The images go straight into the buffer; plotters then writes the text.
    for (index, mistake) in mistakes.iter().enumerate() {
        let (left, top) = (8 + (index % COLUMNS) * cell_width + 12, 46 + (index / COLUMNS) * cell_height);
        for y in 0..image_side {
            for x in 0..image_side {
                let value = mistake.pixels[(y / SCALE) * side + x / SCALE].clamp(0.0, 1.0);
                let grey = (value * 255.0).round() as u8;
                let offset = (((top + y) * size.0 as usize) + left + x) * 3;
                rgb[offset..offset + 3].fill(grey);
            }
        }
    }
    let error = draw_error("misclassified.png");
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        let title_style = TextStyle::from((font(), 20).into_font()).pos(Pos::new(HPos::Left, VPos::Top));
        root.draw(&Text::new(title.to_owned(), (12, 10), title_style)).map_err(|e| error(&e))?;
        let caption = TextStyle::from((font(), 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (index, mistake) in mistakes.iter().enumerate() {
            let (left, top) = (8 + (index % COLUMNS) * cell_width, 46 + (index / COLUMNS) * cell_height);
            let text = format!(
                "{}→{} {:.2}",
                short(&class_names[mistake.true_class]),
                short(&class_names[mistake.predicted_class]),
                mistake.probability
            );
            let at = ((left + cell_width / 2) as i32, (top + image_side + 3) as i32);
            root.draw(&Text::new(text, at, caption.clone())).map_err(|e| error(&e))?;
        }
        root.present().map_err(|e| error(&e))?;
    }
    Ok(encode_png(rgb, size))
}

/// A class name short enough for a caption.
fn short(name: &str) -> String {
    name.chars().take(6).collect()
}
