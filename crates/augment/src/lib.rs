//! The seed's image augmentation (rotate, zoom, shift) with `scipy.ndimage`'s
//! semantics. This crate never depends on libtorch. Its kernels land with the
//! augmentation issue.
#![warn(missing_docs)]
