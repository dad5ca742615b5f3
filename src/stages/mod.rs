//! Stage kinds: each module reads its inputs (typed tables, [`crate::tables`]), calls
//! pure functions (the steerbench-* crates, [`crate::analysis`]) and writes its tables.
//! Adding a kind: docs/ARCHITECTURE.md, "How to add … a stage kind".

pub mod common;
pub mod degradation;
pub mod evaluate;
pub mod extract;
pub mod finetune;
pub mod icl;
pub mod report;
pub mod vectors;

use crate::exec::Registry;
use crate::spec::StageKind;

pub use common::Services;

/// Every stage kind with its implementation.
pub fn registry() -> Registry<Services> {
    let mut r = Registry::new();
    r.register(StageKind::Extract, extract::Extract)
        .register(StageKind::Vectors, vectors::Vectors)
        .register(StageKind::Finetune, finetune::Finetune)
        .register(StageKind::Evaluate, evaluate::Evaluate)
        .register(StageKind::Degradation, degradation::Degradation)
        .register(StageKind::Report, report::Report);
    r
}
