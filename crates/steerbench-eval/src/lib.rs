//! Model-facing measurement for steerbench.
//!
//! Everything here runs forward passes and returns plain numbers; nothing reads or
//! writes files. The pipeline's stage files turn dataset records into [`prompt::Prompt`]s,
//! call these functions, and store the results.
//!
//! - [`prompt`]: chat/raw prompt encoding into token sequences.
//! - [`steer`]: a steering object (vector, affine map, MLP, ablation, ICV) → hooks.
//! - [`sweep`]: run items under a steering object at several strengths, reusing the
//!   unsteered residual below the steered layer and batching strengths as rows.
//! - [`dialogue`], [`turn_sweep`]: steering scopes over a conversation's turns, and
//!   conversations scored turn by turn on one growing KV cache per steering setting.
//! - [`finetune`]: LoRA adapters trained by SFT or DPO on the steering methods' pairs.
//! - [`capture`]: read residual-stream activations at declared layers and positions.
//! - [`function_vector`]: per-head mean outputs, indirect effects by head patching, and
//!   head contributions through the output projection (Function Vectors).

pub mod capture;
pub mod dialogue;
pub mod dialogue_gen;
pub mod error;
pub mod finetune;
pub mod function_vector;
pub mod prompt;
pub mod steer;
pub mod sweep;
pub mod turn_sweep;

pub use error::{EvalError, Result};
