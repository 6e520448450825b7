//! Tasks: what is learned from which data, each one file on the one training loop
//! ([`crate::train::fit`]). A task says how a batch is built, what its loss and statistics are
//! and what its report shows; the loop does the rest.

pub mod caption;
pub mod char_lm;
pub mod classification;
pub mod forecast;
pub mod g2p;
pub mod instances;
pub mod langid;
pub mod memory;
pub mod segment;
