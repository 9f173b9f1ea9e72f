//! Control plane: configuration, validation and the `pmdlb check` summary.

pub mod config;
pub mod summary;
