//! `deepnet segment RUN IMAGE...`: the class mask of each 64x64 grey scene PNG from a
//! `deepnet segment-train` run, written as an index PNG, a colour PNG and an overlay; with
//! `--masks`, scored against the user's index masks.

use std::path::PathBuf;

use clap::Args;
use deepnet::data::scenes::SCENE_SIDE;
use deepnet::tasks::segment::{
    check_mask, colour_mask, load_run, overlay, read_grey_png, score_mask, segment,
};
use deepnet::{Error, Result};

use super::device::DeviceArg;

/// Options of `deepnet segment`.
#[derive(Args, Debug)]
pub struct SegmentArgs {
    /// Run directory (or checkpoint file) of `deepnet segment-train`.
    run: PathBuf,
    /// Scenes: 64x64 grey PNG files (not resized).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// True index masks, one per image in the same order (0 background, class + 1, 255
    /// ignore): each image's pixel accuracy and mean IoU are printed.
    #[arg(long, value_name = "PNG", num_args = 1..)]
    masks: Vec<PathBuf>,
    /// Directory for `<image>-mask.png` (index), `<image>-colour.png` and `<image>-overlay.png`.
    #[arg(long, default_value = "segment")]
    out: PathBuf,
    /// Compute device.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu|cuda[:N]")]
    device: DeviceArg,
}

fn save(path: &std::path::Path, img: image::DynamicImage) -> Result<()> {
    img.save(path)
        .map_err(|e| Error::bad_data(path, format!("cannot write PNG: {e}")))
}

/// Runs `deepnet segment`.
pub fn run(a: SegmentArgs) -> Result<()> {
    if !a.masks.is_empty() && a.masks.len() != a.images.len() {
        return Err(Error::invalid(
            "masks",
            format!(
                "{} masks for {} images: give one mask per image, in the same order",
                a.masks.len(),
                a.images.len()
            ),
        ));
    }
    let device = a.device.device()?;
    let (run, model) = load_run(&a.run, &device)?;
    let images = a
        .images
        .iter()
        .map(|p| read_grey_png(p, "scene"))
        .collect::<Result<Vec<_>>>()?;
    let truths = a
        .masks
        .iter()
        .map(|p| {
            let m = read_grey_png(p, "mask")?;
            check_mask(&m, p)?;
            Ok(m)
        })
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
    let masks = segment(&model, &refs, &device)?;
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let side = SCENE_SIDE as u32;
    let names = deepnet::tasks::segment::class_names();
    for (k, (path, mask)) in a.images.iter().zip(&masks).enumerate() {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("scene-{k}"));
        let grey = image::GrayImage::from_raw(side, side, mask.clone()).expect("64x64");
        save(&a.out.join(format!("{stem}-mask.png")), grey.into())?;
        let colour = image::RgbImage::from_raw(side, side, colour_mask(mask)).expect("64x64");
        save(&a.out.join(format!("{stem}-colour.png")), colour.into())?;
        let over = image::RgbImage::from_raw(side, side, overlay(&images[k], mask)).expect("64x64");
        save(&a.out.join(format!("{stem}-overlay.png")), over.into())?;
        let mut present: Vec<(usize, usize)> = (1..names.len())
            .map(|c| (c, mask.iter().filter(|&&m| m as usize == c).count()))
            .filter(|&(_, n)| n > 0)
            .collect();
        present.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
        let found: Vec<String> = present
            .iter()
            .map(|&(c, n)| format!("{} ({n} px)", names[c]))
            .collect();
        print!(
            "{}: {}",
            path.display(),
            if found.is_empty() {
                "background only".to_string()
            } else {
                found.join(", ")
            }
        );
        if let Some(truth) = truths.get(k) {
            let s = score_mask(truth, mask);
            print!(
                "; pixel accuracy {:.2}%, mean IoU {:.2}%",
                100.0 * s.pixel_accuracy,
                100.0 * s.mean_iou
            );
        }
        println!();
    }
    eprintln!(
        "{} masks ({}) written into {}",
        masks.len(),
        run.model.variant.label(),
        a.out.display()
    );
    Ok(())
}
