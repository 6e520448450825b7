//! Reading a user's picture for a model trained on MNIST-format data.

use std::path::Path;

use crate::data::folder::{decode, resize_and_centre_crop};
use crate::error::Result;

/// Reads the image at `path` (PNG, JPEG, BMP, GIF, PNM, TIFF, WebP; the format is read from the
/// contents, not the extension), converts colour to 8-bit grey (ITU-R BT.601 luma) and resizes
/// it to `rows` x `cols` with a triangle filter when its size differs. Returns the pixels
/// row-major.
///
/// A file that is not a decodable image gives [`Error::BadData`](crate::Error::BadData)
/// naming it.
pub fn load_grey_image(path: &Path, rows: usize, cols: usize) -> Result<Vec<u8>> {
    let grey = decode(path)?.to_luma8();
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

/// ImageNet's per-channel mean (RGB), as torchvision's weights expect.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The 1000 ImageNet class names in torchvision's order (assets/imagenet_classes.txt, written
/// by scripts/make_imagenet_classes.py).
pub fn imagenet_classes() -> Vec<&'static str> {
    include_str!("../../assets/imagenet_classes.txt")
        .lines()
        .collect()
}

/// torchvision's ImageNet evaluation transform: the image at `path` as RGB, its shorter side
/// resized to `resize` (triangle filter), the centre `crop`×`crop` cut out, scaled to [0, 1]
/// and normalised with [`IMAGENET_MEAN`] and [`IMAGENET_STD`]. Returns `[3, crop, crop]`
/// values, channel-major.
pub fn load_imagenet_image(path: &Path, resize: u32, crop: u32) -> Result<Vec<f32>> {
    let img = resize_and_centre_crop(&decode(path)?.to_rgb8(), resize, crop);
    let n = (crop * crop) as usize;
    let mut out = vec![0f32; 3 * n];
    for y in 0..crop {
        for x in 0..crop {
            let p = img.get_pixel(x, y);
            for c in 0..3 {
                out[c * n + (y * crop + x) as usize] =
                    (p[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            }
        }
    }
    Ok(out)
}
