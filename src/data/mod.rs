//! Data: MNIST-format data sets, image folders, image files, generated scenes and moving items,
//! augmentation, batching. (The IDX and `.npy` file formats live in [`crate::io`].)

pub mod augment;
pub mod batch;
pub mod folder;
pub mod image_file;
pub mod image_set;
pub mod mnist;
pub mod moving;
pub mod scenes;
pub mod source;
pub mod text;

pub use crate::io::idx::{read_idx, IdxArray};
pub use augment::Augment;
pub use batch::{shuffled_indices, train_val_split, ImageBatch, SampleSeeds};
pub use folder::{FolderAugment, FolderImages, ImageFolder, ImageTransform};
pub use image_set::{load_images, FolderData, ImageData, LoadedImages, MnistData};
pub use mnist::{
    load_dataset_pair, DatasetKind, FashionMnist, ImageDataset, Mnist, Normalization, Split,
    DEFAULT_FASHION_MNIST_DIR,
};
pub use source::{ImageSource, InMemoryImages};
