//! Looking inside trained networks: what the layers learned, drawn as pictures.

pub mod visualize;

pub use visualize::{visualize_activations, visualize_filters};
