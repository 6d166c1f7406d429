//! kubectl-servicecidr: status, orphan audit and safe deletion of Kubernetes Service CIDRs.
//!
//! `cli` parses and resolves the `settings` once. Data flows one way: `cluster` (the only code
//! that talks to Kubernetes) -> `model` -> `audit` (pure) -> `render` (all wording). `commands`
//! join them.

pub mod audit;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod complete;
pub mod exit;
pub mod model;
pub mod render;
pub mod settings;
