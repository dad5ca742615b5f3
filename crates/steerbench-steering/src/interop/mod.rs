//! Interop: model fingerprints, llama.cpp / repeng GGUF control vectors, and
//! a safetensors export of steering vectors.

pub mod fingerprint;
pub mod gguf;
pub mod safetensors;
