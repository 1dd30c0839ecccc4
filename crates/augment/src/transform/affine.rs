//! A random affine transform with continuous draws, as the Keras CNNs of
//! the MNIST literature augment (`ImageDataGenerator(rotation_range=10,
//! zoom_range=0.1, width_shift_range=0.1, height_shift_range=0.1)`):
//! `affine:ROTATION,ZOOM,SHIFT[,ORDER]`, `affine:10,0.1,0.1` for that setting.
//!
//! For each image, from its key (a stream of its own, so composing it with
//! other transforms leaves their draws unchanged):
//!
//! - an angle uniform in `[-ROTATION, ROTATION]` degrees, anticlockwise as seen;
//! - a zoom factor per axis, each uniform in `[1 - ZOOM, 1 + ZOOM]` (above 1
//!   magnifies);
//! - a move per axis, each uniform in `[-SHIFT, SHIFT]` times the image's side
//!   along it, in pixels (down and right when positive).
//!
//! Output pixel `(r, c)` reads the input at
//! `centre + Z⁻¹ R⁻¹ ((r, c) - centre - move)`, the centre being
//! `((rows - 1) / 2, (cols - 1) / 2)`, sampled with the crate's spline
//! interpolation (`ORDER` 1, linear as Keras, by default; 3 for cubic), zeros
//! outside the image: `scipy.ndimage.affine_transform(image, matrix, offset,
//! order=ORDER, mode='constant')`, which the golden tests compare with.
//! Keras fills with the nearest edge pixel instead; MNIST's edges are
//! background, so the two agree on its digits.

use std::sync::Arc;

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand::Rng;

use super::{ImageKey, Transform};
use crate::kernels::{Workspace, map_coordinates_into};
use crate::original::Scratch;
use crate::{AugmentError, Order};

/// Separates this transform's random stream from the others' draws.
const STREAM: u64 = 0x6166_6669_6e65_2121;

/// The largest rotation a spec may ask for, in degrees.
const MAX_ROTATION: f64 = 180.0;

/// A random affine transform: rotation, zoom per axis and move per axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomAffine {
    /// Angles are uniform in `[-rotation, rotation]` degrees.
    pub rotation: f64,
    /// Zoom factors are uniform in `[1 - zoom, 1 + zoom]`, per axis.
    pub zoom: f64,
    /// Moves are uniform in `[-shift, shift]` times the side, per axis.
    pub shift: f64,
    /// How the transformed image is sampled.
    pub order: Order,
}

/// One image's draw of a [`RandomAffine`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineDraw {
    /// Anticlockwise, in degrees.
    pub angle_degrees: f64,
    /// Zoom factors (rows, columns); above 1 magnifies.
    pub zoom: (f64, f64),
    /// The move in pixels (down, right).
    pub shift: (f64, f64),
}

impl AffineDraw {
    /// Where output pixel `(row, col)` of a `shape` image reads the input.
    pub fn source(&self, (rows, cols): (usize, usize), row: usize, col: usize) -> (f64, f64) {
        let centre = ((rows as f64 - 1.0) / 2.0, (cols as f64 - 1.0) / 2.0);
        let (sin, cos) = self.angle_degrees.to_radians().sin_cos();
        let v = row as f64 - centre.0 - self.shift.0;
        let u = col as f64 - centre.1 - self.shift.1;
        // With rows growing downwards, reading from (u cos - v sin, u sin + v cos)
        // turns the picture anticlockwise as it is seen.
        let (col_turned, row_turned) = (u * cos - v * sin, u * sin + v * cos);
        (centre.0 + row_turned / self.zoom.0, centre.1 + col_turned / self.zoom.1)
    }

    /// Writes `image` transformed by this draw into `output` (the same shape).
    ///
    /// # Errors
    /// An empty image, or an output of another shape.
    pub fn warp_into(
        &self,
        image: ArrayView2<'_, f32>,
        order: Order,
        workspace: &mut Workspace,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), AugmentError> {
        let shape = image.dim();
        if output.dim() != shape {
            return Err(AugmentError::OutputShape { expected: shape, found: output.dim() });
        }
        let mut rows_at = Array2::zeros(shape);
        let mut cols_at = Array2::zeros(shape);
        for ((row, col), at) in rows_at.indexed_iter_mut() {
            let (source_row, source_col) = self.source(shape, row, col);
            *at = source_row;
            cols_at[[row, col]] = source_col;
        }
        map_coordinates_into(image, rows_at.view(), cols_at.view(), order, workspace, output)
    }
}

impl RandomAffine {
    /// The draw for the image with `key`, of a `shape` image.
    pub fn draw(&self, key: ImageKey, (rows, cols): (usize, usize)) -> AffineDraw {
        let mut rng = key.rng(STREAM);
        let mut uniform =
            |half_width: f64| if half_width > 0.0 { rng.random_range(-half_width..=half_width) } else { 0.0 };
        let angle_degrees = uniform(self.rotation);
        let zoom = (1.0 + uniform(self.zoom), 1.0 + uniform(self.zoom));
        let shift = (uniform(self.shift * rows as f64), uniform(self.shift * cols as f64));
        AffineDraw { angle_degrees, zoom, shift }
    }

    /// `affine:ROTATION,ZOOM,SHIFT[,ORDER]`, `ORDER` 1 (linear, the default) or 3 (cubic).
    pub(crate) fn parse(settings: &str) -> Result<Arc<dyn Transform>, String> {
        let example = "affine:10,0.1,0.1";
        let parts: Vec<&str> = settings.split(',').collect();
        let (rotation, zoom, shift, order) = match parts.as_slice() {
            [rotation, zoom, shift] => (*rotation, *zoom, *shift, "1"),
            [rotation, zoom, shift, order] => (*rotation, *zoom, *shift, *order),
            _ => {
                return Err(format!(
                    "expected ROTATION,ZOOM,SHIFT[,ORDER] (for example {example}), found {settings:?}"
                ));
            }
        };
        let number = |text: &str, name: &str, below: f64| {
            text.trim().parse::<f64>().ok().filter(|value| (0.0..below).contains(value)).ok_or_else(|| {
                format!("{name} is a number from 0 to below {below} (for example {example}), found {text:?}")
            })
        };
        let order = match order.trim() {
            "1" => Order::Linear,
            "3" => Order::Cubic,
            other => return Err(format!("ORDER is 1 (linear) or 3 (cubic), found {other:?}")),
        };
        Ok(Arc::new(RandomAffine {
            rotation: number(rotation, "ROTATION (degrees)", MAX_ROTATION + f64::EPSILON)?,
            zoom: number(zoom, "ZOOM", 1.0)?,
            shift: number(shift, "SHIFT (a fraction of the side)", 1.0)?,
            order,
        }))
    }
}

impl Transform for RandomAffine {
    fn apply_into(
        &self,
        image: ArrayView2<'_, f32>,
        key: ImageKey,
        scratch: &mut Scratch,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<(), AugmentError> {
        self.draw(key, image.dim()).warp_into(image, self.order, &mut scratch.workspace, output)
    }

    fn spec(&self) -> String {
        match self.order {
            Order::Linear => format!("affine:{},{},{}", self.rotation, self.zoom, self.shift),
            _ => format!("affine:{},{},{},{}", self.rotation, self.zoom, self.shift, self.order.n_taps() - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pipeline;

    const KEY: ImageKey = ImageKey { seed: 7, epoch: 3, image_idx: 11 };

    fn dot(row: usize, col: usize) -> Array2<f32> {
        let mut image = Array2::zeros((28, 28));
        image[[row, col]] = 1.0;
        image
    }

    fn warp(draw: AffineDraw, image: &Array2<f32>) -> Array2<f32> {
        let mut output = Array2::zeros(image.dim());
        draw.warp_into(image.view(), Order::Linear, &mut Workspace::new(), output.view_mut()).unwrap();
        output
    }

    fn lit(image: &Array2<f32>) -> Vec<(usize, usize)> {
        image.indexed_iter().filter(|(_, value)| **value > 0.5).map(|(at, _)| at).collect()
    }

    #[test]
    fn a_draw_turns_anticlockwise_magnifies_and_moves_down_and_right() {
        let still = AffineDraw { angle_degrees: 0.0, zoom: (1.0, 1.0), shift: (0.0, 0.0) };
        assert_eq!(warp(still, &dot(5, 9)), dot(5, 9), "the identity copies pixels");
        let moved = AffineDraw { shift: (2.0, -3.0), ..still };
        assert_eq!(lit(&warp(moved, &dot(5, 9))), [(7, 6)]);
        // Pixel (13.5 - 0.5, 13.5 + 8.5) turned a quarter anticlockwise: 8.5 above the centre, 0.5 left.
        let turned = AffineDraw { angle_degrees: 90.0, ..still };
        assert_eq!(lit(&warp(turned, &dot(13, 22))), [(5, 13)]);
        // Twice as large along the columns: output 8.5 right of the centre reads the input 4.25 right of it.
        let wide = AffineDraw { zoom: (1.0, 2.0), ..still };
        assert_eq!(wide.source((28, 28), 13, 22), (13.0, 13.5 + 4.25));
    }

    #[test]
    fn draws_stay_in_their_ranges_and_follow_the_key_alone() {
        let affine = RandomAffine { rotation: 10.0, zoom: 0.1, shift: 0.1, order: Order::Linear };
        let first = affine.draw(KEY, (28, 28));
        assert_eq!(first, affine.draw(KEY, (28, 28)));
        for other in [ImageKey { epoch: 4, ..KEY }, ImageKey { image_idx: 12, ..KEY }, ImageKey { seed: 8, ..KEY }] {
            assert_ne!(first, affine.draw(other, (28, 28)), "{other:?}");
        }
        for image_idx in 0..500 {
            let draw = affine.draw(ImageKey { image_idx, ..KEY }, (28, 28));
            assert!(draw.angle_degrees.abs() <= 10.0, "{draw:?}");
            assert!((0.9..=1.1).contains(&draw.zoom.0) && (0.9..=1.1).contains(&draw.zoom.1), "{draw:?}");
            assert!(draw.shift.0.abs() <= 2.8 && draw.shift.1.abs() <= 2.8, "{draw:?}");
        }
        let none = RandomAffine { rotation: 0.0, zoom: 0.0, shift: 0.0, order: Order::Linear };
        assert_eq!(none.draw(KEY, (28, 28)), AffineDraw { angle_degrees: 0.0, zoom: (1.0, 1.0), shift: (0.0, 0.0) });
    }

    #[test]
    fn the_spec_round_trips_and_bad_settings_are_refused() {
        assert_eq!(Pipeline::parse("affine:10,0.1,0.1").unwrap().spec(), "affine:10,0.1,0.1");
        assert_eq!(Pipeline::parse("affine:10,0.1,0.1,1").unwrap().spec(), "affine:10,0.1,0.1");
        assert_eq!(Pipeline::parse("seed+affine:5,0,0.05,3").unwrap().spec(), "seed+affine:5,0,0.05,3");
        for (spec, expected) in [
            ("affine:10,0.1", "expected ROTATION,ZOOM,SHIFT[,ORDER]"),
            ("affine:10,1.5,0.1", "ZOOM is a number from 0 to below 1"),
            ("affine:-1,0.1,0.1", "ROTATION (degrees) is a number from 0"),
            ("affine:10,0.1,x", "SHIFT (a fraction of the side) is a number"),
            ("affine:10,0.1,0.1,2", "ORDER is 1 (linear) or 3 (cubic), found \"2\""),
        ] {
            let message = Pipeline::parse(spec).unwrap_err().to_string();
            assert!(message.contains(expected), "{spec}: {message}");
        }
        let mut output = Array2::zeros((28, 28));
        let pipeline = Pipeline::parse("affine:10,0.1,0.1").unwrap();
        pipeline.apply_into(dot(14, 14).view(), KEY, &mut Scratch::new(), output.view_mut()).unwrap();
        assert_ne!(output, dot(14, 14), "it moves pixels");
        assert!((output.sum() - 1.0).abs() < 0.3, "linear sampling keeps about the dot's mass: {}", output.sum());
    }
}
