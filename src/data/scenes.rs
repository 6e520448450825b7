//! Scenes: 64x64 canvases with 1-4 Fashion-MNIST items, the synthetic data of captioning and
//! segmentation, generated from real Fashion-MNIST images by a seeded, deterministic generator.
//!
//! - Items (28x28) come from the Fashion-MNIST split of the scene's split (training scenes from
//!   training images, test scenes from test images), so no test item is seen in training.
//! - [`Layout::Grid`] (captioning) puts each item in its own cell of a 2x2 grid of 32x32 cells,
//!   shifted by 0-4 pixels in the cell; [`Layout::Overlap`] (segmentation) places items
//!   anywhere, so they may overlap.
//! - Items are drawn in order; a later item occludes an earlier one. An item's pixels are those
//!   above [`INK_THRESHOLD`], not its whole 28x28 box; its fainter, non-zero pixels over the
//!   background are [`IGNORE`] in the masks (the item's edge, neither item nor background).
//! - Outputs: the grey image, a class mask (0 background, class + 1, 255 ignore) and an
//!   instance mask (0 background, the item's index in drawing order + 1, 255 ignore), both
//!   written as index PNGs by [`Scene::write_pngs`]; and for grid scenes, captions from a small
//!   grammar with several phrasings per scene ([`captions`]).
//!
//! Scene `i` of a generator is a function of `(seed, i)` alone, so scenes can be made in any
//! order, in parallel, and again identically.

use std::path::{Path, PathBuf};

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::batch::{rng, SampleSeeds};
use super::mnist::ImageDataset;
use crate::error::{Error, Result};

/// Side of a scene, in pixels.
pub const SCENE_SIDE: usize = 64;
/// Side of an item, in pixels.
pub const ITEM_SIDE: usize = 28;
/// Side of a grid cell.
pub const CELL_SIDE: usize = 32;
/// An item's pixel is one of its pixels when brighter than this.
pub const INK_THRESHOLD: u8 = 40;
/// The mask value of pixels that count as neither item nor background.
pub const IGNORE: u8 = 255;

/// One-word names of the ten Fashion-MNIST classes, as captions use them.
pub const CLASS_WORDS: [&str; 10] = [
    "top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot",
];

/// Where items go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// One item per cell of a 2x2 grid (captioning: relations are well defined).
    Grid,
    /// Anywhere on the canvas; items may overlap (segmentation).
    Overlap,
}

/// How scenes are generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SceneOptions {
    /// Where items go.
    pub layout: Layout,
    /// Fewest items in a scene (at least 1).
    pub min_items: usize,
    /// Most items in a scene (at most 4).
    pub max_items: usize,
}

impl SceneOptions {
    /// Checks the item counts.
    pub fn validate(&self) -> Result<()> {
        if self.min_items == 0 || self.min_items > self.max_items || self.max_items > 4 {
            return Err(Error::invalid(
                "items",
                format!(
                    "{}-{} items per scene; a scene holds 1 to 4",
                    self.min_items, self.max_items
                ),
            ));
        }
        Ok(())
    }
}

/// One item of a scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Fashion-MNIST class.
    pub class: u8,
    /// Index of the item's image in the source split.
    pub source_index: usize,
    /// Left edge of its 28x28 box.
    pub x: usize,
    /// Top edge of its 28x28 box.
    pub y: usize,
    /// Grid cell `(row, column)`, in the grid layout.
    pub cell: Option<(usize, usize)>,
}

/// A generated scene.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// Grey pixels, `64 * 64`, row-major.
    pub image: Vec<u8>,
    /// 0 background, class + 1, [`IGNORE`].
    pub class_mask: Vec<u8>,
    /// 0 background, drawing index + 1, [`IGNORE`].
    pub instance_mask: Vec<u8>,
    /// The items in drawing order (grid scenes: reading order of their cells).
    pub items: Vec<Item>,
}

/// Scene `index` of the generator seeded `seed`, with items from `source`.
pub fn generate(
    source: &ImageDataset,
    options: &SceneOptions,
    seed: u64,
    index: usize,
) -> Result<Scene> {
    options.validate()?;
    if source.is_empty() || source.rows != ITEM_SIDE || source.cols != ITEM_SIDE {
        return Err(Error::invalid(
            "scene items",
            format!(
                "scenes take 28x28 items; the source holds {} images of {}x{}",
                source.len(),
                source.rows,
                source.cols
            ),
        ));
    }
    let mut r = rng(SampleSeeds {
        run: seed,
        epoch: 0,
    }
    .of(index));
    let n = r.random_range(options.min_items..=options.max_items);
    let mut items = Vec::with_capacity(n);
    match options.layout {
        Layout::Grid => {
            let mut cells: Vec<usize> = (0..4).collect();
            // A seeded choice of n distinct cells, kept in reading order.
            for i in 0..n {
                let j = r.random_range(i..4);
                cells.swap(i, j);
            }
            let mut chosen = cells[..n].to_vec();
            chosen.sort_unstable();
            for cell in chosen {
                let (row, col) = (cell / 2, cell % 2);
                let slack = CELL_SIDE - ITEM_SIDE;
                let k = r.random_range(0..source.len());
                items.push(Item {
                    class: source.labels[k],
                    source_index: k,
                    x: col * CELL_SIDE + r.random_range(0..=slack),
                    y: row * CELL_SIDE + r.random_range(0..=slack),
                    cell: Some((row, col)),
                });
            }
        }
        Layout::Overlap => {
            for _ in 0..n {
                let k = r.random_range(0..source.len());
                items.push(Item {
                    class: source.labels[k],
                    source_index: k,
                    x: r.random_range(0..=SCENE_SIDE - ITEM_SIDE),
                    y: r.random_range(0..=SCENE_SIDE - ITEM_SIDE),
                    cell: None,
                });
            }
        }
    }
    Ok(draw(source, items))
}

/// Draws `items` in order.
fn draw(source: &ImageDataset, items: Vec<Item>) -> Scene {
    let size = SCENE_SIDE * SCENE_SIDE;
    let mut image = vec![0u8; size];
    let mut class_mask = vec![0u8; size];
    let mut instance_mask = vec![0u8; size];
    for (k, item) in items.iter().enumerate() {
        let pixels = source.image(item.source_index);
        for dy in 0..ITEM_SIDE {
            for dx in 0..ITEM_SIDE {
                let p = pixels[dy * ITEM_SIDE + dx];
                let at = (item.y + dy) * SCENE_SIDE + item.x + dx;
                if p > INK_THRESHOLD {
                    // The item's own pixel: it occludes whatever was drawn before.
                    image[at] = p;
                    class_mask[at] = item.class + 1;
                    instance_mask[at] = k as u8 + 1;
                } else if p > 0 && class_mask[at] == 0 {
                    // A faint edge over background: visible, but neither item nor background.
                    image[at] = image[at].max(p);
                    class_mask[at] = IGNORE;
                    instance_mask[at] = IGNORE;
                }
            }
        }
    }
    Scene {
        image,
        class_mask,
        instance_mask,
        items,
    }
}

impl Scene {
    /// Writes `<stem>.png` (the image), `<stem>-class.png` and `<stem>-instance.png` (index
    /// masks) into `dir`. Returns the three paths.
    pub fn write_pngs(&self, dir: &Path, stem: &str) -> Result<[PathBuf; 3]> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let side = SCENE_SIDE as u32;
        let paths = [
            dir.join(format!("{stem}.png")),
            dir.join(format!("{stem}-class.png")),
            dir.join(format!("{stem}-instance.png")),
        ];
        for (path, pixels) in paths
            .iter()
            .zip([&self.image, &self.class_mask, &self.instance_mask])
        {
            image::GrayImage::from_raw(side, side, pixels.clone())
                .expect("64x64 pixels")
                .save(path)
                .map_err(|e| Error::bad_data(path, format!("cannot write PNG: {e}")))?;
        }
        Ok(paths)
    }
}

/// How two consecutive items of a grid scene stand: the first `LeftOf` or `Above` the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relation {
    /// Same row, the first on the left.
    LeftOf,
    /// The first in the upper row.
    Above,
}

/// One fact a caption states: `(first class, relation, second class)`, or a lone item's class
/// with no relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Clause {
    /// The first item's class.
    pub first: u8,
    /// Relation and second item's class; `None` for a scene of one item.
    pub relation: Option<(Relation, u8)>,
}

/// The facts of a grid scene: one clause per pair of consecutive items in reading order (a
/// lone item: its class).
pub fn clauses(scene: &Scene) -> Vec<Clause> {
    let items = &scene.items;
    if items.len() == 1 {
        return vec![Clause {
            first: items[0].class,
            relation: None,
        }];
    }
    items
        .windows(2)
        .map(|w| {
            let (a, b) = (w[0].cell.unwrap_or((0, 0)), w[1].cell.unwrap_or((0, 0)));
            let relation = if a.0 == b.0 {
                Relation::LeftOf
            } else {
                Relation::Above
            };
            Clause {
                first: w[0].class,
                relation: Some((relation, w[1].class)),
            }
        })
        .collect()
}

/// The phrasings of one clause.
fn phrasings(c: &Clause) -> Vec<String> {
    let name = |k: u8| CLASS_WORDS[k as usize];
    match c.relation {
        None => vec![
            format!("a {}", name(c.first)),
            format!("one {}", name(c.first)),
        ],
        Some((Relation::LeftOf, second)) => vec![
            format!("a {} left of a {}", name(c.first), name(second)),
            format!("a {} right of a {}", name(second), name(c.first)),
        ],
        Some((Relation::Above, second)) => vec![
            format!("a {} above a {}", name(c.first), name(second)),
            format!("a {} below a {}", name(second), name(c.first)),
            format!("a {} under a {}", name(second), name(c.first)),
        ],
    }
}

/// Every caption of a grid scene: the clauses' phrasings in every combination, joined by
/// "and" (2 to 18 captions).
pub fn captions(scene: &Scene) -> Vec<String> {
    let mut out = vec![String::new()];
    for clause in clauses(scene) {
        let mut next = Vec::new();
        for prefix in &out {
            for p in phrasings(&clause) {
                next.push(if prefix.is_empty() {
                    p
                } else {
                    format!("{prefix} and {p}")
                });
            }
        }
        out = next;
    }
    out
}

/// The clauses a caption states, as [`clauses`] would give them (each phrasing mapped back),
/// or `None` for a clause outside the grammar.
pub fn parse_caption(caption: &str) -> Vec<Option<Clause>> {
    let class = |w: &str| CLASS_WORDS.iter().position(|c| *c == w).map(|k| k as u8);
    caption
        .split(" and ")
        .map(|part| {
            let w: Vec<&str> = part.split_whitespace().collect();
            match w.as_slice() {
                ["a" | "one", x] => Some(Clause {
                    first: class(x)?,
                    relation: None,
                }),
                ["a", x, "left", "of", "a", y] => Some(Clause {
                    first: class(x)?,
                    relation: Some((Relation::LeftOf, class(y)?)),
                }),
                ["a", x, "right", "of", "a", y] => Some(Clause {
                    first: class(y)?,
                    relation: Some((Relation::LeftOf, class(x)?)),
                }),
                ["a", x, "above", "a", y] => Some(Clause {
                    first: class(x)?,
                    relation: Some((Relation::Above, class(y)?)),
                }),
                ["a", x, "below" | "under", "a", y] => Some(Clause {
                    first: class(y)?,
                    relation: Some((Relation::Above, class(x)?)),
                }),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> ImageDataset {
        // Ten items: item k is a filled square of intensity 100 + k, with a faint ring.
        let mut images = Vec::new();
        for k in 0..10u8 {
            for y in 0..ITEM_SIDE {
                for x in 0..ITEM_SIDE {
                    let inner = (4..24).contains(&x) && (4..24).contains(&y);
                    let ring = (2..26).contains(&x) && (2..26).contains(&y);
                    images.push(if inner {
                        100 + k
                    } else if ring {
                        10
                    } else {
                        0
                    });
                }
            }
        }
        ImageDataset {
            images,
            labels: (0..10).collect(),
            rows: ITEM_SIDE,
            cols: ITEM_SIDE,
            class_names: CLASS_WORDS.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn scenes_are_seeded_and_masks_follow_the_ink() {
        let src = source();
        let grid = SceneOptions {
            layout: Layout::Grid,
            min_items: 1,
            max_items: 4,
        };
        let mut counts = [0usize; 5];
        for i in 0..200 {
            let s = generate(&src, &grid, 7, i).unwrap();
            assert_eq!(s, generate(&src, &grid, 7, i).unwrap());
            counts[s.items.len()] += 1;
            for (k, item) in s.items.iter().enumerate() {
                // Inside its box's core: its class and instance; at its faint ring: ignore.
                let at = (item.y + 10) * SCENE_SIDE + item.x + 10;
                assert_eq!(s.class_mask[at], item.class + 1);
                assert_eq!(s.instance_mask[at], k as u8 + 1);
                let ring = (item.y + 2) * SCENE_SIDE + item.x + 2;
                assert_eq!(s.class_mask[ring], IGNORE);
                let (row, col) = item.cell.unwrap();
                assert!(item.x >= col * CELL_SIDE && item.x + ITEM_SIDE <= (col + 1) * CELL_SIDE);
                assert!(item.y >= row * CELL_SIDE && item.y + ITEM_SIDE <= (row + 1) * CELL_SIDE);
            }
            // Reading order, distinct cells.
            assert!(s.items.windows(2).all(|w| w[0].cell < w[1].cell));
        }
        assert!(counts[1..].iter().all(|&c| c > 20), "{counts:?}");
        assert_ne!(
            generate(&src, &grid, 7, 0).unwrap(),
            generate(&src, &grid, 8, 0).unwrap()
        );
    }

    #[test]
    fn a_later_item_occludes_an_earlier_one() {
        let src = source();
        let items = vec![
            Item {
                class: 1,
                source_index: 1,
                x: 0,
                y: 0,
                cell: None,
            },
            Item {
                class: 2,
                source_index: 2,
                x: 10,
                y: 10,
                cell: None,
            },
        ];
        let s = draw(&src, items);
        let overlap = 16 * SCENE_SIDE + 16;
        assert_eq!(s.class_mask[overlap], 3);
        assert_eq!(s.instance_mask[overlap], 2);
        assert_eq!(s.image[overlap], 102);
        // The later item's faint ring does not hide the earlier item's ink.
        let ring_over_ink = 12 * SCENE_SIDE + 15;
        assert_eq!(s.class_mask[ring_over_ink], 2);
    }

    #[test]
    fn captions_have_several_phrasings_that_parse_back() {
        let src = source();
        let grid = SceneOptions {
            layout: Layout::Grid,
            min_items: 1,
            max_items: 4,
        };
        for i in 0..100 {
            let s = generate(&src, &grid, 3, i).unwrap();
            let truth = clauses(&s);
            let caps = captions(&s);
            assert!(caps.len() >= 2);
            for c in &caps {
                let parsed: Vec<Clause> =
                    parse_caption(c).into_iter().map(Option::unwrap).collect();
                assert_eq!(parsed, truth, "{c}");
            }
        }
        // The example, both ways.
        let s = draw(
            &src,
            vec![
                Item {
                    class: 8,
                    source_index: 8,
                    x: 0,
                    y: 0,
                    cell: Some((0, 0)),
                },
                Item {
                    class: 7,
                    source_index: 7,
                    x: 0,
                    y: 32,
                    cell: Some((1, 0)),
                },
            ],
        );
        let caps = captions(&s);
        assert!(caps.contains(&"a bag above a sneaker".to_string()));
        assert!(caps.contains(&"a sneaker under a bag".to_string()));
        assert_eq!(parse_caption("a bag beside a sneaker"), vec![None]);
    }

    #[test]
    fn bad_options_are_refused() {
        let src = source();
        for (lo, hi) in [(0, 2), (3, 2), (1, 5)] {
            let o = SceneOptions {
                layout: Layout::Grid,
                min_items: lo,
                max_items: hi,
            };
            assert!(generate(&src, &o, 1, 0).is_err());
        }
    }
}
