//! In-memory IDX arrays: an element type, a shape and the elements.

use std::fmt;

use ndarray::{ArrayD, IxDyn};

use crate::IdxError;

/// The six element types of the IDX format, with their type codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementType {
    /// Unsigned byte, code `0x08`.
    U8,
    /// Signed byte, code `0x09`.
    I8,
    /// Big-endian 16-bit signed integer, code `0x0B`.
    I16,
    /// Big-endian 32-bit signed integer, code `0x0C`.
    I32,
    /// Big-endian IEEE 754 single precision, code `0x0D`.
    F32,
    /// Big-endian IEEE 754 double precision, code `0x0E`.
    F64,
}

impl ElementType {
    /// All element types, in code order.
    pub const ALL: [ElementType; 6] =
        [ElementType::U8, ElementType::I8, ElementType::I16, ElementType::I32, ElementType::F32, ElementType::F64];

    /// The type code stored in the third byte of the magic number.
    pub fn code(self) -> u8 {
        match self {
            ElementType::U8 => 0x08,
            ElementType::I8 => 0x09,
            ElementType::I16 => 0x0B,
            ElementType::I32 => 0x0C,
            ElementType::F32 => 0x0D,
            ElementType::F64 => 0x0E,
        }
    }

    /// The element type of a type code, or `None` for a code IDX does not define.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|element_type| element_type.code() == code)
    }

    /// Size of one element in bytes.
    pub fn size_bytes(self) -> usize {
        match self {
            ElementType::U8 | ElementType::I8 => 1,
            ElementType::I16 => 2,
            ElementType::I32 | ElementType::F32 => 4,
            ElementType::F64 => 8,
        }
    }
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ElementType::U8 => "u8",
            ElementType::I8 => "i8",
            ElementType::I16 => "i16",
            ElementType::I32 => "i32",
            ElementType::F32 => "f32",
            ElementType::F64 => "f64",
        };
        f.write_str(name)
    }
}

/// The elements of an IDX array, in row-major order, in their stored type.
#[derive(Debug, Clone, PartialEq)]
pub enum IdxData {
    /// Unsigned bytes.
    U8(Vec<u8>),
    /// Signed bytes.
    I8(Vec<i8>),
    /// 16-bit signed integers.
    I16(Vec<i16>),
    /// 32-bit signed integers.
    I32(Vec<i32>),
    /// Single-precision floats.
    F32(Vec<f32>),
    /// Double-precision floats.
    F64(Vec<f64>),
}

impl IdxData {
    /// The element type of this data.
    pub fn element_type(&self) -> ElementType {
        match self {
            IdxData::U8(_) => ElementType::U8,
            IdxData::I8(_) => ElementType::I8,
            IdxData::I16(_) => ElementType::I16,
            IdxData::I32(_) => ElementType::I32,
            IdxData::F32(_) => ElementType::F32,
            IdxData::F64(_) => ElementType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(values) => values.len(),
            IdxData::I8(values) => values.len(),
            IdxData::I16(values) => values.len(),
            IdxData::I32(values) => values.len(),
            IdxData::F32(values) => values.len(),
            IdxData::F64(values) => values.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A Rust type that IDX can store. Implemented for `u8`, `i8`, `i16`, `i32`,
/// `f32` and `f64`; sealed, so no other type can claim an IDX type code.
pub trait IdxElement: Copy + sealed::Sealed + 'static {
    /// The IDX element type of `Self`.
    const ELEMENT_TYPE: ElementType;
    /// Wraps a vector of `Self` as [`IdxData`].
    fn wrap(values: Vec<Self>) -> IdxData;
    /// Takes the vector out of [`IdxData`], or gives the data back if it holds another type.
    fn unwrap(data: IdxData) -> Result<Vec<Self>, IdxData>;
}

mod sealed {
    /// Keeps [`super::IdxElement`] implemented by this crate's six types only.
    pub trait Sealed {}
}

macro_rules! impl_element {
    ($rust:ty, $variant:ident) => {
        impl sealed::Sealed for $rust {}
        impl IdxElement for $rust {
            const ELEMENT_TYPE: ElementType = ElementType::$variant;
            fn wrap(values: Vec<Self>) -> IdxData {
                IdxData::$variant(values)
            }
            fn unwrap(data: IdxData) -> Result<Vec<Self>, IdxData> {
                match data {
                    IdxData::$variant(values) => Ok(values),
                    other => Err(other),
                }
            }
        }
    };
}

impl_element!(u8, U8);
impl_element!(i8, I8);
impl_element!(i16, I16);
impl_element!(i32, I32);
impl_element!(f32, F32);
impl_element!(f64, F64);

/// An IDX array: a shape (any number of dimensions) and its elements.
///
/// Invariant: the number of elements equals the product of the shape.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    shape: Vec<usize>,
    data: IdxData,
}

impl IdxArray {
    /// Builds an array, checking that `data` holds exactly as many elements as `shape` says.
    pub fn new(shape: Vec<usize>, data: IdxData) -> Result<Self, IdxError> {
        let n_expected = shape.iter().try_fold(1usize, |acc, &dim| acc.checked_mul(dim));
        if n_expected != Some(data.len()) {
            return Err(IdxError::ShapeMismatch { shape, n_elements: data.len() });
        }
        Ok(Self { shape, data })
    }

    /// Builds an array from an `ndarray` array of any dimensionality.
    pub fn from_array<T: IdxElement, D: ndarray::Dimension>(array: ndarray::Array<T, D>) -> Self {
        let shape = array.shape().to_vec();
        // `into_raw_vec_and_offset` is only row-major for standard layout, so make sure of it first.
        let values = if array.is_standard_layout() {
            array.into_raw_vec_and_offset().0
        } else {
            array.iter().copied().collect()
        };
        Self { shape, data: T::wrap(values) }
    }

    /// The size of each dimension, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn element_type(&self) -> ElementType {
        self.data.element_type()
    }

    /// The elements, in row-major order.
    pub fn data(&self) -> &IdxData {
        &self.data
    }

    /// Splits the array into its shape and elements.
    pub fn into_parts(self) -> (Vec<usize>, IdxData) {
        (self.shape, self.data)
    }

    /// Converts to an `ndarray` array of `T`, failing if the file stores another type.
    pub fn into_array<T: IdxElement>(self) -> Result<ArrayD<T>, IdxError> {
        let found = self.element_type();
        let values =
            T::unwrap(self.data).map_err(|_| IdxError::WrongElementType { expected: T::ELEMENT_TYPE, found })?;
        let n_elements = values.len();
        ArrayD::from_shape_vec(IxDyn(&self.shape), values)
            .map_err(|_| IdxError::ShapeMismatch { shape: self.shape.clone(), n_elements })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_codes_round_trip_and_unknown_codes_are_rejected() {
        for element_type in ElementType::ALL {
            assert_eq!(ElementType::from_code(element_type.code()), Some(element_type));
        }
        let n_known = (0..=255u8).filter_map(ElementType::from_code).count();
        assert_eq!(n_known, 6);
        assert_eq!(ElementType::from_code(0x0A), None);
    }

    #[test]
    fn new_checks_the_element_count() {
        assert!(IdxArray::new(vec![2, 3], IdxData::U8(vec![0; 6])).is_ok());
        let error = IdxArray::new(vec![2, 3], IdxData::U8(vec![0; 5])).unwrap_err();
        assert!(matches!(error, IdxError::ShapeMismatch { n_elements: 5, .. }), "{error}");
    }

    #[test]
    fn into_array_checks_the_element_type() {
        let array = IdxArray::new(vec![2], IdxData::I16(vec![-1, 7])).unwrap();
        let error = array.clone().into_array::<u8>().unwrap_err();
        assert_eq!(error.to_string(), "element type is i16, expected u8");
        let values = array.into_array::<i16>().unwrap();
        assert_eq!(values.as_slice().unwrap(), &[-1, 7]);
    }

    #[test]
    fn from_array_uses_row_major_order_even_for_transposed_views() {
        let array = ndarray::arr2(&[[1u8, 2, 3], [4, 5, 6]]).reversed_axes();
        let idx = IdxArray::from_array(array);
        assert_eq!(idx.shape(), &[3, 2]);
        assert_eq!(idx.data(), &IdxData::U8(vec![1, 4, 2, 5, 3, 6]));
    }
}
