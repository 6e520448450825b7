//! Data: the IDX reader, MNIST-format data sets, image files, batching.

pub mod augment;
pub mod batch;
pub mod idx;
pub mod image_file;
pub mod mnist;
pub mod npy;

pub use augment::Augment;
pub use batch::{shuffled_indices, train_val_split, ImageBatch, ImageBatcher};
pub use idx::{read_idx, IdxArray};
pub use mnist::{
    load_dataset_pair, DatasetKind, FashionMnist, ImageDataset, Mnist, Normalization, Split,
    DEFAULT_FASHION_MNIST_DIR,
};
