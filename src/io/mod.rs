//! Files, at the bottom of the crate: atomic writes and the formats deepnet reads and writes
//! (IDX, `.npy`, safetensors headers, TensorBoard event files). Nothing here imports anything
//! of deepnet but its error type, so every other layer (weights, data, training) can use it.

pub mod atomic;
pub mod bounded;
pub mod idx;
pub mod npy;
pub mod pth;
pub mod safetensors_header;
pub mod tfevents;

pub use atomic::{write_atomic, StagedFile};
pub use bounded::{read_file, read_text, Limit};
