//! A confusion matrix as a heat map.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{ReportError, draw_error, encode_png, font};

const CELL: i32 = 56;
const MARGIN_LEFT: i32 = 150;
const MARGIN_TOP: i32 = 110;

/// `confusion[true][predicted]` as a heat map with the count in every cell:
/// rows are the true classes, columns the predicted ones; a cell's shade is
/// its share of its row (the square root, so single mistakes show).
///
/// ```
/// let mut confusion = vec![vec![0u64; 3]; 3];
/// confusion[0][0] = 9;
/// confusion[1][1] = 8;
/// confusion[1][2] = 1;
/// confusion[2][2] = 7;
/// let names = ["a", "b", "c"].map(String::from);
/// let png = report::confusion_png(&confusion, &names, "test").unwrap();
/// assert_eq!(&png[1..4], b"PNG");
/// ```
pub fn confusion_png(confusion: &[Vec<u64>], class_names: &[String], title: &str) -> Result<Vec<u8>, ReportError> {
    let n = class_names.len();
    if n == 0 || confusion.len() != n || confusion.iter().any(|row| row.len() != n) {
        return Err(ReportError::Input {
            figure: "confusion.png",
            reason: format!("expected a {n}x{n} matrix for {n} class names"),
        });
    }
    let side = n as i32 * CELL;
    let size = ((MARGIN_LEFT + side + 30) as u32, (MARGIN_TOP + side + 30) as u32);
    let mut rgb = vec![0u8; (size.0 * size.1 * 3) as usize];
    let error = draw_error("confusion.png");
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| error(&e))?;
        let title_style = TextStyle::from((font(), 20).into_font()).pos(Pos::new(HPos::Left, VPos::Top));
        root.draw(&Text::new(title.to_owned(), (12, 10), title_style)).map_err(|e| error(&e))?;
        let label = TextStyle::from((font(), 15).into_font());
        root.draw(&Text::new("predicted class →", (MARGIN_LEFT, 44), label.clone())).map_err(|e| error(&e))?;
        root.draw(&Text::new("true class ↓", (12, 44), label.clone())).map_err(|e| error(&e))?;
        let centred = |size| TextStyle::from((font(), size).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
        let right = TextStyle::from((font(), 14).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
        for (index, name) in class_names.iter().enumerate() {
            let middle = index as i32 * CELL + CELL / 2;
            let short: String = name.chars().take(7).collect();
            root.draw(&Text::new(short, (MARGIN_LEFT + middle, MARGIN_TOP - 16), centred(13)))
                .map_err(|e| error(&e))?;
            root.draw(&Text::new(name.clone(), (MARGIN_LEFT - 10, MARGIN_TOP + middle), right.clone()))
                .map_err(|e| error(&e))?;
        }
        for (row, counts) in confusion.iter().enumerate() {
            let total: u64 = counts.iter().sum::<u64>().max(1);
            for (col, &count) in counts.iter().enumerate() {
                let share = (count as f64 / total as f64).sqrt();
                let shade = |full: u8| (255.0 - share * (255.0 - f64::from(full))).round() as u8;
                let fill = RGBColor(shade(8), shade(48), shade(107));
                let (x, y) = (MARGIN_LEFT + col as i32 * CELL, MARGIN_TOP + row as i32 * CELL);
                root.draw(&Rectangle::new([(x, y), (x + CELL, y + CELL)], fill.filled())).map_err(|e| error(&e))?;
                root.draw(&Rectangle::new([(x, y), (x + CELL, y + CELL)], RGBColor(200, 200, 200)))
                    .map_err(|e| error(&e))?;
                let ink = if share > 0.55 { WHITE } else { BLACK };
                let text = centred(if count >= 1000 { 13 } else { 15 }).color(&ink);
                root.draw(&Text::new(count.to_string(), (x + CELL / 2, y + CELL / 2), text)).map_err(|e| error(&e))?;
            }
        }
        root.present().map_err(|e| error(&e))?;
    }
    Ok(encode_png(rgb, size))
}
