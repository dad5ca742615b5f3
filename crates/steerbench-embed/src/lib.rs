//! steerbench's sentence embedder.
