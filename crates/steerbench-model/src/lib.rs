//! steerbench's causal-LM runtime. See docs/ARCHITECTURE.md for the contract.

pub mod chat;
pub mod error;
pub mod fetch;
pub mod gguf;
mod gguf_meta;
pub mod hub;
pub mod registry;
pub mod source;
pub mod tokenizer;

pub use candle_core::{DType, Device, Tensor};
pub use error::{ModelError, Result};

mod block;
pub mod config;
pub mod decoder;
mod families;
pub mod generate;
pub mod hooks;
pub mod kv_cache;
mod layers;
pub mod lora;
pub mod session;
pub mod weights;

pub use chat::{ChatMessage, ChatTemplate};
pub use config::{
    Activation, Arch, AttentionKind, LongRope, ModelConfig, NormKind, RopeConfig, RopeScaling,
};
pub use decoder::{ForwardOutput, Model, Pass, Sequence, SharedPrefix};
pub use families::{supported_gguf_archs, supported_model_types};
pub use fetch::{pull, Pulled, WheelSource};
pub use generate::{Detokenizer, EosOnly, GenerateOptions, Sampling};
pub use hooks::{HookPoint, Hooks, Intervention, MapFn, Positions, Site};
pub use kv_cache::KvCache;
pub use layers::QuantWeights;
pub use lora::{Adapter, LoraDropout, LoraPair, Proj, ProjInfo};
pub use registry::{list, lookup, registry, steerbench_home, ModelStatus, RegistryEntry};
pub use session::Session;
pub use source::{
    model_info, resolve, resolve_with, LoadOptions, LoadedModel, ModelFormat, ModelInfo,
    ModelSource, ResolveOptions, ResolvedModel,
};
pub use tokenizer::Tokenizer;
