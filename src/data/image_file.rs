//! Reading a user's picture for a model trained on MNIST-format data.

use std::path::Path;

use crate::error::{Error, Result};

/// Reads the image at `path` (PNG, JPEG, BMP, GIF, PNM, TIFF, WebP; the format is read from the
/// contents, not the extension), converts colour to 8-bit grey (ITU-R BT.601 luma) and resizes
/// it to `rows` x `cols` with a triangle filter when its size differs. Returns the pixels
/// row-major.
///
/// A file that is not a decodable image gives [`Error::BadData`] naming it.
pub fn load_grey_image(path: &Path, rows: usize, cols: usize) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| Error::bad_data(path, format!("not a readable image ({e})")))?;
    let grey = img.to_luma8();
    let grey = if grey.width() as usize != cols || grey.height() as usize != rows {
        image::imageops::resize(
            &grey,
            cols as u32,
            rows as u32,
            image::imageops::FilterType::Triangle,
        )
    } else {
        grey
    };
    Ok(grey.into_raw())
}
