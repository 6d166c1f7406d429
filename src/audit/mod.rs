//! Pure logic over the model: no I/O, no kube types, so every rule is a fast unit test.

pub mod doctor;
pub mod explain;
pub mod findings;
pub mod fleet;
pub mod index;
pub mod journal;
pub mod migrate;
pub mod range;
pub mod retire;
pub mod safety;
pub mod suggest;
pub mod usage;
