//! The paper's experiments (PAPER.md): the small-MLP root study (claim C6) and the data,
//! roots and sanity check of the relation-network study (claim C7).

pub mod clevr;
pub mod mlp_roots;
pub mod relnet_roots;
pub mod resize;
pub mod sanity;
pub mod sanity_report;
pub mod sanity_sets;
pub mod sort_of_clevr;
