//! Verdicts compared between audits: what a root's verdict decides, without the f64
//! renderings of margins and slacks, which may differ in the last unit.

use dtdcert::audit::{DomainCheck, SampleRecord};
use dtdcert::region::Membership;

/// What a verdict says, without the f64 renderings of margins and slacks.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// No root, and why.
    NoRoot(String),
    /// A root and what was decided about it.
    Root {
        /// Inside its region and domain.
        valid: bool,
        /// `None` inside; the first violated constraint outside.
        outside_at: Option<(usize, usize)>,
        /// On a face of its region.
        on_face: bool,
        /// `None` in the domain; the first coordinate outside.
        out_at: Option<usize>,
    },
}

/// Each root's verdict in `record`, layer by layer: what two audits must agree on.
pub fn verdicts(record: &SampleRecord) -> Vec<Vec<Verdict>> {
    record
        .layers
        .iter()
        .map(|layer| {
            layer
                .neurons
                .iter()
                .map(|n| match &n.root {
                    None => Verdict::NoRoot(format!("{:?}", n.no_root)),
                    Some(root) => Verdict::Root {
                        valid: root.valid,
                        outside_at: match root.region {
                            Membership::Inside { .. } => None,
                            Membership::Outside { layer, neuron, .. } => Some((layer, neuron)),
                        },
                        on_face: root.region.on_face(),
                        out_at: match root.domain {
                            DomainCheck::In => None,
                            DomainCheck::Out { coordinate, .. } => Some(coordinate),
                        },
                    },
                })
                .collect()
        })
        .collect()
}
