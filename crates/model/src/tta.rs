//! Test-time augmentation: a classifier that answers with the mean of its
//! class probabilities over several views of each image (the image itself,
//! shifted copies, rotated copies). Networks trained on shifted and rotated
//! digits are not exactly invariant to either; averaging over a few views
//! removes some of the accidents of one. As a [`Classifier`] it is run by
//! evaluation, prediction, the report, the web app and export as one network
//! is, and it wraps an [`crate::Ensemble`] as readily as one network.
//!
//! Views are deterministic: shifts by whole pixels move pixels (zeros come
//! in at the border, as MNIST's background), rotations resample bilinearly
//! about the image centre, so a spec gives the same answers on every run.

use std::fmt;
use std::str::FromStr;

use tch::{Device, Kind, Tensor};

use crate::network::IMAGE_SIDE;
use crate::{Classifier, ModelError};

/// The largest shift a view may make, in pixels: MNIST's digits sit in a
/// 20x20 box centred in 28x28, so four pixels still keep the digit whole.
pub const MAX_SHIFT: i64 = 4;
/// The largest rotation a view may make, in degrees.
pub const MAX_ROTATION: f64 = 45.0;
/// The most views a spec may ask for, the image itself included: each is a
/// forward pass per image, and the web app's work per request must stay bounded.
pub const MAX_VIEWS: usize = 33;

/// One way of looking at an image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum View {
    /// The image as it is.
    Identity,
    /// The image moved `dx` pixels right and `dy` pixels down (negative: left, up).
    Shift {
        /// Pixels to the right.
        dx: i64,
        /// Pixels down.
        dy: i64,
    },
    /// The image rotated anticlockwise by this many degrees about its centre.
    Rotate {
        /// Degrees, anticlockwise.
        degrees: f64,
    },
}

/// The views a test-time augmented classifier averages over, the image
/// itself always first. Written as `none` (the image alone) or a comma list
/// of `shift:P` (the four moves of P pixels left, right, up and down),
/// `diagonal:P` (the four diagonal moves of P pixels each way) and
/// `rotate:D` (D degrees each way).
///
/// # Examples
///
/// ```
/// use model::tta::{View, Views};
///
/// let views: Views = "shift:1,rotate:10".parse().unwrap();
/// assert_eq!(views.len(), 7);
/// assert_eq!(views.views()[0], View::Identity);
/// assert_eq!(views.to_string(), "shift:1,rotate:10");
/// assert!("none".parse::<Views>().unwrap().is_identity());
/// assert!("shift:9".parse::<Views>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Views {
    /// The items as written, for [`fmt::Display`].
    items: Vec<Item>,
    views: Vec<View>,
}

/// One item of a [`Views`] spec.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Item {
    Shift(i64),
    Diagonal(i64),
    Rotate(f64),
}

impl Item {
    fn views(self) -> Vec<View> {
        match self {
            Item::Shift(p) => [(p, 0), (-p, 0), (0, p), (0, -p)].map(|(dx, dy)| View::Shift { dx, dy }).to_vec(),
            Item::Diagonal(p) => [(p, p), (-p, p), (p, -p), (-p, -p)].map(|(dx, dy)| View::Shift { dx, dy }).to_vec(),
            Item::Rotate(d) => vec![View::Rotate { degrees: d }, View::Rotate { degrees: -d }],
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}`: expected NAME:VALUE (shift:1, diagonal:1, rotate:10)"))?;
        let pixels = || match value.parse::<i64>() {
            Ok(p) if (1..=MAX_SHIFT).contains(&p) => Ok(p),
            _ => Err(format!("`{text}`: expected a whole number of pixels from 1 to {MAX_SHIFT}, found `{value}`")),
        };
        match name {
            "shift" => pixels().map(Item::Shift),
            "diagonal" => pixels().map(Item::Diagonal),
            "rotate" => match value.parse::<f64>() {
                Ok(d) if d > 0.0 && d <= MAX_ROTATION => Ok(Item::Rotate(d)),
                _ => Err(format!("`{text}`: expected degrees above 0 and at most {MAX_ROTATION}, found `{value}`")),
            },
            _ => Err(format!("`{text}`: unknown view `{name}`: expected shift, diagonal or rotate")),
        }
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Shift(p) => write!(f, "shift:{p}"),
            Item::Diagonal(p) => write!(f, "diagonal:{p}"),
            Item::Rotate(d) => write!(f, "rotate:{d}"),
        }
    }
}

impl Views {
    /// The image alone: no test-time augmentation.
    pub fn identity() -> Self {
        Self { items: Vec::new(), views: vec![View::Identity] }
    }

    /// Whether this is the image alone.
    pub fn is_identity(&self) -> bool {
        self.views.len() == 1
    }

    /// Every view, the image itself first.
    pub fn views(&self) -> &[View] {
        &self.views
    }

    /// How many views (forward passes per image).
    pub fn len(&self) -> usize {
        self.views.len()
    }

    /// Always false: the image itself is a view.
    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }
}

impl Default for Views {
    fn default() -> Self {
        Self::identity()
    }
}

impl FromStr for Views {
    type Err = ModelError;

    fn from_str(text: &str) -> Result<Self, ModelError> {
        let invalid = |reason: String| ModelError::Setting { setting: "test-time views", reason };
        if text.trim() == "none" {
            return Ok(Self::identity());
        }
        let mut views = Self::identity();
        for part in text.split(',') {
            let item = Item::parse(part.trim()).map_err(invalid)?;
            if views.items.contains(&item) {
                return Err(invalid(format!("`{item}` is given twice in `{text}`")));
            }
            views.views.extend(item.views());
            views.items.push(item);
        }
        if views.len() > MAX_VIEWS {
            return Err(invalid(format!("`{text}` asks for {} views: expected at most {MAX_VIEWS}", views.len())));
        }
        Ok(views)
    }
}

impl fmt::Display for Views {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.items.is_empty() {
            return f.write_str("none");
        }
        let parts: Vec<String> = self.items.iter().map(Item::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// `images` `[N, 28, 28]` or `[N, 1, 28, 28]` seen as `view`, as `[N, 1, 28, 28]`.
///
/// # Errors
/// Images of another shape, or a libtorch failure.
pub fn apply(view: View, images: &Tensor) -> Result<Tensor, ModelError> {
    let side = IMAGE_SIDE;
    // `-1`, not the batch size: an exported graph traced through here keeps its batch size free.
    let batch = match images.size().as_slice() {
        [n, s, t] | [n, 1, s, t] if *n > 0 && *s == side && *t == side => images.f_reshape([-1, 1, side, side]),
        found => return Err(ModelError::ImageShape { found: found.to_vec() }),
    }
    .map_err(ModelError::libtorch("reshaping images for a view"))?;
    match view {
        View::Identity => Ok(batch),
        View::Shift { dx, dy } => shift(&batch, dx, dy),
        View::Rotate { degrees } => rotate(&batch, degrees),
    }
}

/// Moves pixels `dx` right and `dy` down, zeros coming in: pad by the
/// largest shift, then cut the window that lands where the image was.
fn shift(batch: &Tensor, dx: i64, dy: i64) -> Result<Tensor, ModelError> {
    let (side, pad) = (IMAGE_SIDE, MAX_SHIFT);
    batch
        .f_constant_pad_nd([pad, pad, pad, pad])
        .and_then(|padded| padded.f_narrow(3, pad - dx, side))
        .and_then(|moved| moved.f_narrow(2, pad - dy, side))
        .and_then(|window| window.f_contiguous())
        .map_err(ModelError::libtorch("shifting images"))
}

/// Rotates anticlockwise by `degrees` about the centre, sampling bilinearly
/// (libtorch's `grid_sample`, zeros outside the image).
fn rotate(batch: &Tensor, degrees: f64) -> Result<Tensor, ModelError> {
    let side = IMAGE_SIDE;
    let (sin, cos) = degrees.to_radians().sin_cos();
    // The grid says where each output pixel reads from. With y growing
    // downwards, reading from (cos x - sin y, sin x + cos y) turns the
    // picture anticlockwise as it is seen.
    // Built from `full`, whose value libtorch's tracer records, not from a
    // slice of numbers, which an exported graph would replay as zeros.
    let entries = [cos, -sin, 0.0, sin, cos, 0.0]
        .map(|value| Tensor::f_full([1], value, (Kind::Float, batch.device())))
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(ModelError::libtorch("building a rotation"))?;
    let grid = Tensor::f_cat(&entries, 0)
        .and_then(|theta| theta.f_reshape([1, 2, 3]))
        .and_then(|theta| Tensor::f_affine_grid_generator(&theta, [1, 1, side, side], false))
        .map_err(ModelError::libtorch("building a rotation grid"))?;
    // One grid for the whole batch: the images go in as the channels of one
    // sample, so no size here depends on the batch and a traced graph keeps
    // its batch size free. Modes: bilinear (0), zeros outside (0);
    // align_corners false, as the grid.
    batch
        .f_reshape([1, -1, side, side])
        .and_then(|channels| channels.f_grid_sampler(&grid, 0, 0, false))
        .and_then(|rotated| rotated.f_reshape([-1, 1, side, side]))
        .map_err(ModelError::libtorch("rotating images"))
}

/// A classifier answering with the mean of its probabilities over [`Views`].
#[derive(Debug)]
pub struct TestTimeAugmented<C> {
    inner: C,
    views: Views,
}

impl<C: Classifier> TestTimeAugmented<C> {
    /// `inner` seen through `views`.
    pub fn new(inner: C, views: Views) -> Self {
        Self { inner, views }
    }

    /// The classifier that sees each view.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The views it averages over.
    pub fn views(&self) -> &Views {
        &self.views
    }
}

impl<C: Classifier> Classifier for TestTimeAugmented<C> {
    /// The image alone: the inner classifier's scores, bit for bit. Several
    /// views: the log of the mean of the inner classifier's softmax over them.
    fn logits(&self, images: &Tensor) -> Result<Tensor, ModelError> {
        if self.views.is_identity() {
            return self.inner.logits(images);
        }
        let scores = self.views.views().iter().map(|&view| self.inner.logits(&apply(view, images)?));
        crate::classifier::log_mean_probabilities(scores)
    }

    fn device(&self) -> Device {
        self.inner.device()
    }

    fn detached(&self) -> Result<Box<dyn Classifier>, ModelError> {
        Ok(Box::new(TestTimeAugmented { inner: self.inner.detached()?, views: self.views.clone() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Architecture, Network, probabilities};

    /// A 28x28 image with one lit pixel at (row, column).
    fn dot(row: i64, column: i64) -> Tensor {
        let image = Tensor::zeros([1, IMAGE_SIDE, IMAGE_SIDE], (Kind::Float, Device::Cpu));
        let _ = image.get(0).get(row).get(column).fill_(1.0);
        image
    }

    fn lit(image: &Tensor) -> Vec<(i64, i64)> {
        let flat = Vec::<f32>::try_from(image.flatten(0, -1)).unwrap();
        flat.iter()
            .enumerate()
            .filter(|(_, value)| **value > 0.5)
            .map(|(index, _)| (index as i64 / IMAGE_SIDE, index as i64 % IMAGE_SIDE))
            .collect()
    }

    #[test]
    fn a_shift_moves_pixels_right_and_down_and_lets_zeros_in() {
        let moved = apply(View::Shift { dx: 2, dy: -1 }, &dot(10, 5)).unwrap();
        assert_eq!(moved.size(), [1, 1, 28, 28]);
        assert_eq!(lit(&moved), [(9, 7)]);
        assert_eq!(moved.sum(Kind::Float).double_value(&[]), 1.0, "one pixel, copied exactly");
        let gone = apply(View::Shift { dx: 3, dy: 0 }, &dot(4, 26)).unwrap();
        assert!(lit(&gone).is_empty(), "a pixel moved past the border is gone, not wrapped round");
    }

    #[test]
    fn a_rotation_turns_anticlockwise_about_the_centre() {
        // The centre of a 28x28 image lies at (13.5, 13.5) in pixel indices.
        // Pixel (13, 22) sits 8.5 right of it and 0.5 above; turned 90
        // degrees anticlockwise it sits 8.5 above and 0.5 left: (5, 13).
        let turned = apply(View::Rotate { degrees: 90.0 }, &dot(13, 22)).unwrap();
        let places = lit(&turned);
        assert_eq!(places, [(5, 13)], "turned: {places:?}");
        let same =
            apply(View::Rotate { degrees: 90.0 }, &apply(View::Rotate { degrees: -90.0 }, &dot(13, 22)).unwrap())
                .unwrap();
        assert_eq!(lit(&same), [(13, 22)]);
    }

    #[test]
    fn the_spec_lists_views_and_refuses_what_it_cannot_mean() {
        let views: Views = "shift:2, diagonal:1,rotate:7.5".parse().unwrap();
        assert_eq!(views.len(), 11);
        assert_eq!(views.to_string(), "shift:2,diagonal:1,rotate:7.5");
        assert_eq!(views.views()[1], View::Shift { dx: 2, dy: 0 });
        assert_eq!(views.views()[10], View::Rotate { degrees: -7.5 });
        assert_eq!("none".parse::<Views>().unwrap(), Views::identity());
        for (spec, expected) in [
            ("shift:0", "from 1 to 4, found `0`"),
            ("shift:5", "from 1 to 4, found `5`"),
            ("rotate:0", "above 0 and at most 45, found `0`"),
            ("rotate:x", "found `x`"),
            ("zoom:2", "unknown view `zoom`"),
            ("shift", "expected NAME:VALUE"),
            ("shift:1,shift:1", "`shift:1` is given twice"),
            (
                "rotate:1,rotate:2,rotate:3,rotate:4,rotate:5,rotate:6,rotate:7,rotate:8,rotate:9,rotate:10,rotate:11,rotate:12,rotate:13,rotate:14,rotate:15,rotate:16,rotate:17",
                "asks for 35 views: expected at most 33",
            ),
        ] {
            let message = spec.parse::<Views>().unwrap_err().to_string();
            assert!(message.contains(expected), "{spec}: {message}");
            assert!(message.starts_with("test-time views"), "{spec}: {message}");
        }
    }

    #[test]
    fn no_views_is_the_inner_classifier_and_several_average_its_probabilities() {
        tch::manual_seed(5);
        let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
        let images = Tensor::rand([4, 28, 28], (Kind::Float, Device::Cpu));
        let alone = network.logits(&images).unwrap();
        let plain = TestTimeAugmented::new(network.detached_copy().unwrap(), Views::identity());
        assert!(plain.logits(&images).unwrap().equal(&alone), "no views: the inner scores, bit for bit");

        let views: Views = "shift:1,rotate:10".parse().unwrap();
        let each: Vec<Vec<Vec<f32>>> = views
            .views()
            .iter()
            .map(|&view| probabilities(&network, &apply(view, &images).unwrap(), 4).unwrap())
            .collect();
        let augmented = TestTimeAugmented::new(network, views);
        let rows = probabilities(&augmented, &images, 3).unwrap();
        for (index, row) in rows.iter().enumerate() {
            for class in 0..10 {
                let mean = each.iter().map(|view| view[index][class]).sum::<f32>() / each.len() as f32;
                assert!((row[class] - mean).abs() < 1e-6, "image {index}, class {class}: {} vs {mean}", row[class]);
            }
        }
        let copy = augmented.detached().unwrap();
        assert_eq!(probabilities(copy.as_ref(), &images, 4).unwrap(), probabilities(&augmented, &images, 4).unwrap());
        let message =
            augmented.logits(&Tensor::zeros([2, 27, 28], (Kind::Float, Device::Cpu))).unwrap_err().to_string();
        assert!(message.contains("[2, 27, 28]"), "{message}");
    }
}
