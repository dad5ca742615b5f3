//! steerbench's causal-LM runtime. See docs/ARCHITECTURE.md for the contract.
//!
//! Module owners: add `pub mod` lines with small edits; never rewrite this file.

pub mod error;

pub use candle_core::{DType, Device, Tensor};
pub use error::{ModelError, Result};

pub mod config;
pub mod decoder;
pub mod generate;
pub mod hooks;
pub mod kv_cache;
pub mod weights;
mod gpt2;
mod layers;
mod llama;

pub use config::{Activation, Arch, ModelConfig, NormKind, RopeConfig, RopeScaling};
pub use decoder::{ForwardOutput, Model, Sequence};
pub use generate::{Detokenizer, EosOnly, GenerateOptions, Sampling};
pub use hooks::{HookPoint, Hooks, Intervention, MapFn, Positions, Site};
pub use kv_cache::KvCache;
