//! Stage kinds: each file is a thin I/O shell around pure functions in the
//! steerbench-* crates. Adding a kind is one file here plus one line in [`registry`].

pub mod common;
pub mod degradation;
pub mod evaluate;
pub mod extract;
pub mod generation;
pub mod icl;
pub mod report;
pub mod table;
pub mod vectors;

use crate::exec::Registry;
use crate::spec::StageKind;

pub use common::Services;

/// Every stage kind with its implementation.
pub fn registry() -> Registry<Services> {
    let mut r = Registry::new();
    r.register(StageKind::Extract, extract::Extract)
        .register(StageKind::Vectors, vectors::Vectors)
        .register(StageKind::Evaluate, evaluate::Evaluate)
        .register(StageKind::Degradation, degradation::Degradation)
        .register(StageKind::Report, report::Report);
    r
}
