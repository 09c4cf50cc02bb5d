//! The paper's experiments (PAPER.md): the small-MLP root study (claim C6).

pub mod mlp_roots;
