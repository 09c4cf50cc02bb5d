//! Tests across the region's files, and the small network their tests share.

use crate::model::ir::dense_layer;
use crate::model::{Model, Network};

use super::*;

pub(super) fn tiny() -> Model {
    // 2 -> 2 (ReLU) -> 1 (ReLU)
    let l1 = dense_layer(2, 2, vec![1.0, -1.0, 0.5, 1.0], vec![0.0, -0.25], true).unwrap();
    let l2 = dense_layer(1, 2, vec![1.0, 1.0], vec![0.0], true).unwrap();
    Model::new(Network::new(vec![l1, l2]).unwrap())
}

#[test]
fn input_lies_in_its_own_region() {
    let model = tiny();
    let x = [1.0, 0.5];
    let (trace, pattern, decision) = trace_and_pattern(&model, &x);
    assert_eq!(decision, Decision::Float);
    assert_eq!(pattern.bit_strings(), vec!["11", "1"]);
    assert!(membership(model.net(), &pattern, 0, &x).is_inside());
    assert!(membership(model.net(), &pattern, 1, trace.layer_input(1)).is_inside());
    let poly = polytope(model.net(), &pattern, 0);
    assert_eq!(poly.num_constraints(), 3);
    assert!(poly.contains(&x));
}
