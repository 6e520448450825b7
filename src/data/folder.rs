//! Image folders, torchvision's `ImageFolder` convention: one sub-folder per class, any number
//! of pictures inside (png, jpeg, bmp, webp, gif; colour or grey; any size), classes indexed in
//! the sorted order of their folder names. Only the paths are held in memory: images are
//! decoded when a batch needs them, in parallel threads (see [`ImageSource::load_batch`]), so a
//! folder of 100,000 photos costs its file list, not its pixels.
//!
//! The transforms are torchvision's, on 8-bit pixels with a triangle (bilinear) filter:
//! evaluation = `Resize(resize)` (shorter side) + `CenterCrop(size)`; training adds
//! `RandomHorizontalFlip`, or replaces both by `RandomResizedCrop(size, scale=(0.08, 1),
//! ratio=(3/4, 4/3))` + `RandomHorizontalFlip`; then scaling to [0, 1] and normalisation by a
//! per-channel mean and standard deviation (ImageNet's, or the data's own). The resize is the
//! `image` crate's, not PIL's: pixels can differ slightly from torchvision's.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};
use rand::rngs::StdRng;
use rand::RngExt;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::batch::SampleSeeds;
use super::image_file::{IMAGENET_MEAN, IMAGENET_STD};
use super::source::ImageSource;
use crate::error::{Error, Result};

/// File extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "webp", "gif"];

/// Largest width or height accepted: a header that claims more is refused before any pixel is
/// decoded (a 100,000×100,000 PNG would need 30 GB).
pub const MAX_SIDE: u32 = 16_384;

/// Largest allocation one decoder may make (bytes).
pub const MAX_DECODE_BYTES: u64 = 512 << 20;

/// The labelled files of an image folder.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFolder {
    /// The folder.
    pub root: PathBuf,
    /// Class names (sub-folder names) in label order: sorted.
    pub class_names: Vec<String>,
    /// `(file, label)`, by class, then by path.
    pub items: Vec<(PathBuf, usize)>,
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// The image files under `dir`, recursively (symbolic links followed, at most 32 levels deep),
/// sorted.
fn image_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    if depth > 32 {
        return Err(Error::bad_data(
            dir,
            "folders nested more than 32 deep (a symbolic-link loop?)",
        ));
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<_>>()?;
    entries.sort();
    for path in entries {
        if hidden(&path) {
            continue;
        }
        if path.is_dir() {
            image_files(&path, depth + 1, out)?;
        } else if path.is_file() && is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}

impl ImageFolder {
    /// Lists the classes and images of `root`. Refuses a folder without class sub-folders and a
    /// class folder without images.
    pub fn scan(root: &Path) -> Result<ImageFolder> {
        if !root.is_dir() {
            return Err(Error::bad_data(root, "image folder does not exist"));
        }
        let mut classes: Vec<String> = std::fs::read_dir(root)
            .map_err(|e| Error::io(root, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && !hidden(p))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        classes.sort();
        if classes.is_empty() {
            return Err(Error::bad_data(
                root,
                "no class folders: an image folder holds one sub-folder per class, with that class's images inside",
            ));
        }
        Self::scan_classes(root, &classes)
    }

    /// Lists the images of `root` for the given classes (a validation folder must have the
    /// training folder's classes), refusing a missing or empty class folder.
    pub fn scan_classes(root: &Path, classes: &[String]) -> Result<ImageFolder> {
        let mut items = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let dir = root.join(class);
            if !dir.is_dir() {
                return Err(Error::bad_data(
                    &dir,
                    format!(
                        "class folder missing (the classes are {})",
                        classes.join(", ")
                    ),
                ));
            }
            let mut files = Vec::new();
            image_files(&dir, 0, &mut files)?;
            if files.is_empty() {
                return Err(Error::bad_data(
                    &dir,
                    format!(
                        "class folder holds no images ({})",
                        IMAGE_EXTENSIONS.join(", ")
                    ),
                ));
            }
            items.extend(files.into_iter().map(|f| (f, label)));
        }
        Ok(ImageFolder {
            root: root.to_path_buf(),
            class_names: classes.to_vec(),
            items,
        })
    }

    /// The folder restricted to the items `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageFolder {
        ImageFolder {
            root: self.root.clone(),
            class_names: self.class_names.clone(),
            items: indices.iter().map(|&i| self.items[i].clone()).collect(),
        }
    }

    /// Checks every file's header (format and size) in parallel, without decoding pixels.
    /// Returns the indices of the files that fail, each with the reason, in order.
    pub fn check_headers(&self) -> Vec<(usize, Error)> {
        self.items
            .par_iter()
            .enumerate()
            .filter_map(|(i, (path, _))| header_check(path).err().map(|e| (i, e)))
            .collect()
    }
}

fn limits() -> image::io::Limits {
    let mut l = image::io::Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l.max_alloc = Some(MAX_DECODE_BYTES);
    l
}

fn header_check(path: &Path) -> Result<()> {
    let reader = image::io::Reader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    if reader.format().is_none() {
        return Err(Error::bad_data(
            path,
            "not a readable image (unknown format)",
        ));
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| Error::bad_data(path, format!("not a readable image ({e})")))?;
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(Error::bad_data(
            path,
            format!("image of {w}x{h} pixels: sides must be between 1 and {MAX_SIDE}"),
        ));
    }
    Ok(())
}

/// Decodes the image at `path` with the decoder limits (see [`MAX_SIDE`]).
pub fn decode(path: &Path) -> Result<DynamicImage> {
    let bytes = crate::io::read_file(path, crate::io::Limit::IMAGE)?;
    let mut reader = image::io::Reader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    reader.limits(limits());
    reader
        .decode()
        .map_err(|e| Error::bad_data(path, format!("not a readable image ({e})")))
}

/// Random changes of training images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FolderAugment {
    /// The evaluation transform.
    #[default]
    None,
    /// The evaluation transform, mirrored left to right half the time.
    Flip,
    /// `RandomResizedCrop` + `RandomHorizontalFlip` (torchvision's ImageNet training).
    CropFlip,
}

/// How a file becomes a network's input: recorded in the run, applied again by eval and
/// predict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageTransform {
    /// Channels of the output: 3 (colour; grey images are repeated) or 1 (grey; colour is
    /// converted with ITU-R BT.601 luma).
    pub channels: usize,
    /// Side of the square output.
    pub size: usize,
    /// Shorter side after the evaluation resize, before the centre crop (torchvision's 256
    /// for 224).
    pub resize: usize,
    /// Per-channel mean on the [0, 1] scale (the first `channels` values are used).
    pub mean: [f32; 3],
    /// Per-channel standard deviation on the [0, 1] scale.
    pub std: [f32; 3],
    /// Training-time augmentation.
    pub augment: FolderAugment,
}

impl ImageTransform {
    /// torchvision's ImageNet evaluation transform at `size` (resize to `size`·256/224),
    /// ImageNet's mean and standard deviation.
    pub fn imagenet(channels: usize, size: usize) -> ImageTransform {
        ImageTransform {
            channels,
            size,
            resize: (size * 256).div_ceil(224),
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            augment: FolderAugment::None,
        }
    }

    /// Values per image.
    pub fn len(&self) -> usize {
        self.channels * self.size * self.size
    }

    /// Whether the transform outputs nothing (never, for a valid size).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies the evaluation transform, or with `rng` the training transform, to `img`,
    /// writing `channels × size × size` normalised values into `out`.
    pub fn apply(&self, img: &DynamicImage, rng: Option<&mut StdRng>, out: &mut [f32]) {
        let rgb = img.to_rgb8();
        let s = self.size as u32;
        let (crop, flip) = match (rng, self.augment) {
            (Some(rng), FolderAugment::CropFlip) => {
                let (x, y, w, h) = random_resized_crop(rgb.width(), rgb.height(), rng);
                let cut = image::imageops::crop_imm(&rgb, x, y, w, h).to_image();
                let flip = rng.random_bool(0.5);
                (
                    image::imageops::resize(&cut, s, s, FilterType::Triangle),
                    flip,
                )
            }
            (Some(rng), FolderAugment::Flip) => (self.centre(&rgb), rng.random_bool(0.5)),
            _ => (self.centre(&rgb), false),
        };
        let n = self.size * self.size;
        for y in 0..self.size {
            for x in 0..self.size {
                let sx = if flip { self.size - 1 - x } else { x };
                let p = crop.get_pixel(sx as u32, y as u32).0;
                let at = y * self.size + x;
                if self.channels == 1 {
                    // ITU-R BT.601 luma, as `image`'s grey conversion.
                    let grey =
                        (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32) / 255.0;
                    out[at] = (grey - self.mean[0]) / self.std[0];
                } else {
                    for c in 0..3 {
                        out[c * n + at] = (p[c] as f32 / 255.0 - self.mean[c]) / self.std[c];
                    }
                }
            }
        }
    }

    /// Shorter side to `resize`, then the centre `size`×`size`.
    fn centre(&self, img: &RgbImage) -> RgbImage {
        resize_and_centre_crop(img, self.resize.max(self.size) as u32, self.size as u32)
    }
}

/// Images longer than this many times their width (or the reverse) are cut to their centre
/// part of this aspect ratio before resizing.
pub const MAX_ASPECT: u64 = 64;

/// torchvision's evaluation resize and crop: the shorter side of `img` to `resize`, the other
/// in proportion (rounded down, as torchvision), then the centre `size`×`size`.
///
/// A 1×16,384 image would resize to 256×4,194,304 (3 GB) to keep 256×256 of it: an image
/// longer than [`MAX_ASPECT`]:1 is first cut to its centre part of that ratio, which holds every
/// pixel the crop keeps, so memory stays bounded (the result differs from torchvision's only
/// in the last digits, and only for such images).
pub fn resize_and_centre_crop(img: &RgbImage, resize: u32, size: u32) -> RgbImage {
    let (w, h) = (img.width().max(1) as u64, img.height().max(1) as u64);
    let cut;
    let img = if h > MAX_ASPECT * w || w > MAX_ASPECT * h {
        let (cw, ch) = (w.min(MAX_ASPECT * h), h.min(MAX_ASPECT * w));
        cut = image::imageops::crop_imm(
            img,
            ((w - cw) / 2) as u32,
            ((h - ch) / 2) as u32,
            cw as u32,
            ch as u32,
        )
        .to_image();
        &cut
    } else {
        img
    };
    let (w, h) = (img.width().max(1) as u64, img.height().max(1) as u64);
    let r = resize as u64;
    let (nw, nh) = if w <= h {
        (r as u32, (r * h / w) as u32)
    } else {
        ((r * w / h) as u32, r as u32)
    };
    let img = image::imageops::resize(img, nw.max(size), nh.max(size), FilterType::Triangle);
    let (left, top) = ((img.width() - size) / 2, (img.height() - size) / 2);
    image::imageops::crop_imm(&img, left, top, size, size).to_image()
}

/// torchvision's `RandomResizedCrop.get_params` with scale (0.08, 1) and ratio (3/4, 4/3):
/// `(x, y, width, height)` of the region to cut from a `w`×`h` image.
fn random_resized_crop(w: u32, h: u32, rng: &mut StdRng) -> (u32, u32, u32, u32) {
    let area = (w as f64) * (h as f64);
    let (lo, hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.random_range(0.08..1.0);
        let ratio = rng.random_range(lo..hi).exp();
        let cw = (target * ratio).sqrt().round() as u32;
        let ch = (target / ratio).sqrt().round() as u32;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            let x = rng.random_range(0..=w - cw);
            let y = rng.random_range(0..=h - ch);
            return (x, y, cw, ch);
        }
    }
    // Fallback: the centre, at the nearest allowed aspect ratio.
    let in_ratio = w as f64 / h as f64;
    let (cw, ch) = if in_ratio < 3.0 / 4.0 {
        (w, ((w as f64) / (3.0 / 4.0)).round() as u32)
    } else if in_ratio > 4.0 / 3.0 {
        (((h as f64) * (4.0 / 3.0)).round() as u32, h)
    } else {
        (w, h)
    };
    let (cw, ch) = (cw.clamp(1, w), ch.clamp(1, h));
    ((w - cw) / 2, (h - ch) / 2, cw, ch)
}

/// An image folder as an [`ImageSource`]: files decoded on demand, in parallel per batch.
///
/// With `skip_bad`, a file that fails to decode is replaced by the next readable image of the
/// folder (the same one every time, so runs stay reproducible) and recorded in
/// [`skipped`](Self::skipped); without, it is an error naming the file.
#[derive(Debug)]
pub struct FolderImages {
    /// The files.
    pub folder: ImageFolder,
    /// How each is turned into values.
    pub transform: ImageTransform,
    /// Replace unreadable files instead of failing.
    pub skip_bad: bool,
    skipped: Mutex<BTreeSet<PathBuf>>,
}

impl FolderImages {
    /// `folder` read through `transform`.
    pub fn new(folder: ImageFolder, transform: ImageTransform, skip_bad: bool) -> Self {
        FolderImages {
            folder,
            transform,
            skip_bad,
            skipped: Mutex::new(BTreeSet::new()),
        }
    }

    /// The files that could not be decoded so far (with `skip_bad`).
    pub fn skipped(&self) -> Vec<PathBuf> {
        self.skipped
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Per-channel mean and standard deviation (on the [0, 1] scale) of up to `max_images`
    /// images spread evenly over the folder, through the evaluation transform without
    /// normalisation: "the data's own" normalisation.
    pub fn channel_stats(&self, max_images: usize) -> Result<([f32; 3], [f32; 3])> {
        let n = self.folder.items.len();
        let take = n.min(max_images.max(1));
        let plain = ImageTransform {
            mean: [0.0; 3],
            std: [1.0; 3],
            augment: FolderAugment::None,
            ..self.transform.clone()
        };
        let c = plain.channels;
        let per_image: Vec<Vec<(f64, f64)>> = (0..take)
            .into_par_iter()
            .map(|k| -> Result<Vec<(f64, f64)>> {
                let i = k * n / take;
                let img = decode(&self.folder.items[i].0)?;
                let mut v = vec![0f32; plain.len()];
                plain.apply(&img, None, &mut v);
                Ok(v.chunks(v.len() / c)
                    .map(|ch| {
                        let s: f64 = ch.iter().map(|&x| x as f64).sum();
                        let q: f64 = ch.iter().map(|&x| (x as f64) * (x as f64)).sum();
                        (s / ch.len() as f64, q / ch.len() as f64)
                    })
                    .collect())
            })
            .filter(|r| !(self.skip_bad && r.is_err()))
            .collect::<Result<_>>()?;
        let (mut mean, mut std) = ([0f32; 3], [1f32; 3]);
        let k = per_image.len().max(1) as f64;
        for ch in 0..c {
            let m = per_image.iter().map(|v| v[ch].0).sum::<f64>() / k;
            let q = per_image.iter().map(|v| v[ch].1).sum::<f64>() / k;
            mean[ch] = m as f32;
            std[ch] = ((q - m * m).max(1e-12)).sqrt() as f32;
        }
        if c == 1 {
            mean = [mean[0]; 3];
            std = [std[0]; 3];
        }
        Ok((mean, std))
    }

    fn load_one(&self, i: usize, rng: Option<&mut StdRng>, out: &mut [f32]) -> Result<()> {
        let n = self.folder.items.len();
        let mut j = i;
        loop {
            match decode(&self.folder.items[j].0) {
                Ok(img) => {
                    self.transform.apply(&img, rng, out);
                    return Ok(());
                }
                Err(e) if !self.skip_bad => return Err(e),
                Err(_) => {
                    if let Ok(mut s) = self.skipped.lock() {
                        s.insert(self.folder.items[j].0.clone());
                    }
                    j = (j + 1) % n;
                    if j == i {
                        return Err(Error::bad_data(
                            &self.folder.root,
                            "no image in this folder can be decoded",
                        ));
                    }
                }
            }
        }
    }
}

impl ImageSource for FolderImages {
    fn len(&self) -> usize {
        self.folder.items.len()
    }
    fn shape(&self) -> [usize; 3] {
        [
            self.transform.channels,
            self.transform.size,
            self.transform.size,
        ]
    }
    fn class_names(&self) -> &[String] {
        &self.folder.class_names
    }
    fn label(&self, i: usize) -> usize {
        self.folder.items[i].1
    }
    fn load(&self, i: usize, rng: Option<&mut StdRng>, out: &mut [f32]) -> Result<()> {
        self.load_one(i, rng, out)
    }
    fn skipped(&self) -> Vec<PathBuf> {
        FolderImages::skipped(self)
    }
    /// Decodes the batch's files in parallel (rayon), each with its own seed.
    fn load_batch(
        &self,
        indices: &[usize],
        seeds: Option<SampleSeeds>,
        out: &mut [f32],
    ) -> Result<()> {
        let n = self.transform.len().max(1);
        out.par_chunks_mut(n)
            .zip(indices.par_iter())
            .try_for_each(|(dst, &i)| match seeds {
                Some(s) => self.load_one(i, Some(&mut s.rng(i)), dst),
                None => self.load_one(i, None, dst),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_aspect_ratios_resize_in_bounded_memory() {
        // 1x16,384: resized whole it would be 256x4,194,304 (3 GiB); cut first, it is quick.
        let tall = RgbImage::from_fn(1, 16_384, |_, y| image::Rgb([(y % 256) as u8, 0, 0]));
        let started = std::time::Instant::now();
        let out = resize_and_centre_crop(&tall, 256, 224);
        assert_eq!(out.dimensions(), (224, 224));
        assert!(started.elapsed().as_secs() < 5);
        // An ordinary photo is not cut: the same as resizing it whole.
        let photo = RgbImage::from_fn(300, 200, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let whole = image::imageops::resize(&photo, 384, 256, FilterType::Triangle);
        let crop = image::imageops::crop_imm(&whole, 80, 16, 224, 224).to_image();
        assert_eq!(resize_and_centre_crop(&photo, 256, 224), crop);
    }
    use crate::data::batch::rng;

    fn write(path: &Path, w: u32, h: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn scans_classes_in_sorted_order_and_refuses_bad_layouts() {
        let d = tempfile::tempdir().unwrap();
        write(&d.path().join("dog/b.png"), 5, 7);
        write(&d.path().join("dog/sub/a.jpg"), 9, 4);
        write(&d.path().join("cat/x.bmp"), 3, 3);
        std::fs::write(d.path().join("cat/notes.txt"), "x").unwrap();
        let f = ImageFolder::scan(d.path()).unwrap();
        assert_eq!(f.class_names, vec!["cat", "dog"]);
        let labels: Vec<usize> = f.items.iter().map(|(_, l)| *l).collect();
        assert_eq!(labels, vec![0, 1, 1]);
        assert!(f.items[1].0.ends_with("dog/b.png"));
        assert!(f.check_headers().is_empty());

        std::fs::create_dir_all(d.path().join("empty")).unwrap();
        let e = ImageFolder::scan(d.path()).unwrap_err().to_string();
        assert!(e.contains("empty") && e.contains("holds no images"), "{e}");
        let flat = tempfile::tempdir().unwrap();
        write(&flat.path().join("a.png"), 4, 4);
        let e = ImageFolder::scan(flat.path()).unwrap_err().to_string();
        assert!(e.contains("no class folders"), "{e}");
    }

    #[test]
    fn headers_that_lie_are_caught_before_decoding() {
        let d = tempfile::tempdir().unwrap();
        write(&d.path().join("a/ok.png"), 4, 4);
        std::fs::write(d.path().join("a/text.png"), "not an image").unwrap();
        // A valid PNG signature and IHDR chunk claiming 100,000 x 100,000 pixels.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0]);
        let crc = crc32c_free_png_crc(&png[12..]);
        png.extend_from_slice(&crc.to_be_bytes());
        std::fs::write(d.path().join("a/huge.png"), &png).unwrap();
        let f = ImageFolder::scan(d.path()).unwrap();
        let bad = f.check_headers();
        let names: Vec<String> = bad.iter().map(|(_, e)| e.to_string()).collect();
        assert_eq!(bad.len(), 2, "{names:?}");
        assert!(names.iter().any(|e| e.contains("huge.png")), "{names:?}");
        assert!(names.iter().any(|e| e.contains("text.png")), "{names:?}");
        let e = decode(&d.path().join("a/huge.png"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("huge.png"), "{e}");
    }

    /// PNG's CRC-32 (the zlib polynomial) of a chunk's type and data.
    fn crc32c_free_png_crc(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn eval_transform_resizes_the_shorter_side_and_crops_the_centre() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(40, 20, |x, _| {
            image::Rgb([if x < 20 { 0 } else { 255 }, 0, 0])
        }));
        let t = ImageTransform {
            channels: 3,
            size: 8,
            resize: 10,
            mean: [0.0; 3],
            std: [1.0; 3],
            augment: FolderAugment::CropFlip,
        };
        let mut out = vec![0f32; t.len()];
        t.apply(&img, None, &mut out);
        // 40x20 -> 20x10 -> centre 8x8: columns 6..14 of 20; the red edge at column 10.
        assert_eq!(out[0], 0.0);
        assert_eq!(out[7], 1.0);
        // Grey output of a colour image: luma of pure red.
        let g = ImageTransform {
            channels: 1,
            ..t.clone()
        };
        let mut grey = vec![0f32; g.len()];
        g.apply(&img, None, &mut grey);
        assert!((grey[7] - 0.299).abs() < 1e-6);
        // Training crops are random but reproducible from the seed, and in range.
        let (mut a, mut b) = (vec![0f32; t.len()], vec![0f32; t.len()]);
        t.apply(&img, Some(&mut rng(3)), &mut a);
        t.apply(&img, Some(&mut rng(3)), &mut b);
        assert_eq!(a, b);
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn random_resized_crops_stay_inside_the_image() {
        let mut r = rng(1);
        for (w, h) in [(100, 100), (300, 20), (5, 400), (1, 1)] {
            for _ in 0..200 {
                let (x, y, cw, ch) = random_resized_crop(w, h, &mut r);
                assert!(cw >= 1 && ch >= 1 && x + cw <= w && y + ch <= h);
            }
        }
    }
}
