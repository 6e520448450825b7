//! Times one convolution, forward and backward, on each lowering of `deepnet::ops`
//! (`packed`, `gemm`, `winograd`: F(2x2, 3x3) where it applies, `shifted`: shifted planes where they apply, `auto`: the choice by shape) and on burn's own conv (`burn`), for the
//! convolutions of LeNet-5, ResNet-20 and ResNet-18 (stride 1, and the strided ones: `s2`). Rounds interleave the paths in one
//! process; prints one JSON line per shape with the median milliseconds of each path.
//!
//! cargo run --release --example conv_paths -- [ROUNDS] [FILTER]
//! (FILTER keeps the shapes whose name contains it, e.g. `lenet`).

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use deepnet::ops::{conv2d_im2col, set_conv_path, set_reference_ops, ConvPath};

/// `(name, x [N, C, H, W], weight [O, C, K, K], padding, input needs a gradient, train)`; a
/// name with `s2` is a stride-2 convolution.
type Shape = (&'static str, [usize; 4], [usize; 4], usize, bool, bool);

const SHAPES: &[Shape] = &[
    ("lenet.conv1", [64, 1, 28, 28], [6, 1, 5, 5], 2, false, true),
    ("lenet.conv2", [64, 6, 14, 14], [16, 6, 5, 5], 0, true, true),
    (
        "lenet.conv3",
        [64, 16, 5, 5],
        [120, 16, 5, 5],
        0,
        true,
        true,
    ),
    (
        "resnet20.conv1",
        [128, 1, 28, 28],
        [16, 1, 3, 3],
        1,
        false,
        true,
    ),
    (
        "resnet20.stage1",
        [128, 16, 28, 28],
        [16, 16, 3, 3],
        1,
        true,
        true,
    ),
    (
        "resnet20.stage2",
        [128, 32, 14, 14],
        [32, 32, 3, 3],
        1,
        true,
        true,
    ),
    (
        "resnet20.stage3",
        [128, 64, 7, 7],
        [64, 64, 3, 3],
        1,
        true,
        true,
    ),
    (
        "resnet18.layer1.b1",
        [1, 64, 56, 56],
        [64, 64, 3, 3],
        1,
        false,
        false,
    ),
    (
        "resnet18.layer4.b1",
        [1, 512, 7, 7],
        [512, 512, 3, 3],
        1,
        false,
        false,
    ),
    (
        "resnet18.layer1.b16",
        [16, 64, 56, 56],
        [64, 64, 3, 3],
        1,
        false,
        false,
    ),
    (
        "resnet18.layer2.b16",
        [16, 128, 28, 28],
        [128, 128, 3, 3],
        1,
        false,
        false,
    ),
    (
        "resnet18.layer2.b1",
        [1, 128, 28, 28],
        [128, 128, 3, 3],
        1,
        false,
        false,
    ),
    (
        "resnet18.layer3.b1",
        [1, 256, 14, 14],
        [256, 256, 3, 3],
        1,
        false,
        false,
    ),
    (
        "resnet18.layer3.b16",
        [16, 256, 14, 14],
        [256, 256, 3, 3],
        1,
        false,
        false,
    ),
    (
        "resnet18.layer4.b16",
        [16, 512, 7, 7],
        [512, 512, 3, 3],
        1,
        false,
        false,
    ),
    (
        "resnet20.stage2.s2",
        [128, 16, 28, 28],
        [32, 16, 3, 3],
        1,
        true,
        true,
    ),
    (
        "resnet20.stage3.s2",
        [128, 32, 14, 14],
        [64, 32, 3, 3],
        1,
        true,
        true,
    ),
    (
        "resnet18.conv1.s2.b1",
        [1, 3, 224, 224],
        [64, 3, 7, 7],
        3,
        false,
        false,
    ),
    (
        "resnet18.conv1.s2.b16",
        [16, 3, 224, 224],
        [64, 3, 7, 7],
        3,
        false,
        false,
    ),
    (
        "resnet18.layer2.s2.b16",
        [16, 64, 56, 56],
        [128, 64, 3, 3],
        1,
        false,
        false,
    ),
    (
        "resnet18.layer2.downsample.s2.b16",
        [16, 64, 56, 56],
        [128, 64, 1, 1],
        0,
        false,
        false,
    ),
    (
        "resnet18.layer4.s2.b16",
        [16, 256, 14, 14],
        [512, 256, 3, 3],
        1,
        false,
        false,
    ),
];

const PATHS: [&str; 6] = ["packed", "gemm", "winograd", "shifted", "auto", "burn"];

fn select(path: &str) {
    set_reference_ops(path == "burn");
    set_conv_path(match path {
        "packed" => ConvPath::Packed,
        "gemm" => ConvPath::Gemm,
        "winograd" => ConvPath::Winograd,
        "shifted" => ConvPath::Shifted,
        _ => ConvPath::Auto,
    });
}

/// Median milliseconds of `reps` runs of the convolution (forward, and backward when training).
fn time(shape: &Shape, reps: usize) -> f64 {
    let &(name, xs, ws, p, need_x, train) = shape;
    let stride = if name.contains("s2") { 2 } else { 1 };
    let device = if train {
        Device::flex().autodiff()
    } else {
        Device::flex()
    };
    let mut x = Tensor::<4>::random(xs, Distribution::Default, &device);
    let mut w = Tensor::<4>::random(ws, Distribution::Default, &device);
    let mut b = Tensor::<1>::random([ws[0]], Distribution::Default, &device);
    if train {
        w = w.require_grad();
        b = b.require_grad();
        if need_x {
            x = x.require_grad();
        }
    }
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        let y = conv2d_im2col(x.clone(), w.clone(), b.clone(), [stride, stride], [p, p]);
        if train {
            let grads = y.sum().backward();
            let _ = w.grad(&grads).map(|g| g.into_data());
        } else {
            let _ = y.into_data();
        }
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    deepnet::ops::tune_allocator();
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let filter = args.get(2).cloned().unwrap_or_default();
    // Optional third argument: a comma-separated subset of PATHS (e.g. `auto` for a profile).
    let only: Vec<String> = args
        .get(3)
        .map(|a| a.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let paths: Vec<&str> = PATHS
        .iter()
        .copied()
        .filter(|p| only.is_empty() || only.iter().any(|o| o == p))
        .collect();
    for shape in SHAPES.iter().filter(|s| s.0.contains(&filter)) {
        let reps = if shape.1[0] * shape.2[0] * shape.1[2] * shape.1[3] > 2_000_000 {
            3
        } else {
            9
        };
        let mut ms = vec![Vec::new(); paths.len()];
        for &path in &paths {
            select(path);
            time(shape, 1); // warm-up
        }
        for r in 0..rounds {
            for k in 0..paths.len() {
                // Alternate the order between rounds.
                let k = if r % 2 == 0 { k } else { paths.len() - 1 - k };
                select(paths[k]);
                ms[k].push(time(shape, reps));
            }
        }
        let fields: Vec<String> = paths
            .iter()
            .zip(ms.iter_mut())
            .map(|(p, v)| format!("\"{p}\": {:.3}", median(v)))
            .collect();
        println!("{{\"shape\": \"{}\", {}}}", shape.0, fields.join(", "));
    }
    select("auto");
}
