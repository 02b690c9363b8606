//! Layers applied around handlers, one per file.

pub mod count;
