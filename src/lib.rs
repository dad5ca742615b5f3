//! steerbench: reproducible evaluation of LLM activation-steering methods.
//!
//! The pipeline engine: `spec` (YAML → validated spec), `plan` (spec → DAG of
//! fingerprinted stage instances, environment checks), `exec` (runs stages
//! through registered `StageRunner`s into the content-addressed `store`).

pub mod analysis;
pub mod cli;
pub mod exec;
pub mod plan;
pub mod runtime;
pub mod slurm;
pub mod spec;
pub mod stages;
pub mod store;
pub mod tables;
