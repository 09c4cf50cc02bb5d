//! Dense networks: Gemm, MatMul and their biases, shape no-ops, constants, and the errors that name a node or a tensor.

use super::*;
use crate::model::forward::output;
use onnx_protobuf::tensor_proto::DataLocation;

#[test]
fn gemm_with_trans_b_1_as_torch_writes_it() {
    let m = model(
        vec![
            node(
                "Gemm",
                "/fc1/Gemm",
                &["input", "w1", "b1"],
                &["h"],
                vec![
                    attr_f("alpha", 1.0),
                    attr_f("beta", 1.0),
                    attr_i("transB", 1),
                ],
            ),
            node("Relu", "/relu/Relu", &["h"], &["r"], vec![]),
            node(
                "Gemm",
                "/fc2/Gemm",
                &["r", "w2", "b2"],
                &["output"],
                vec![attr_i("transB", 1)],
            ),
        ],
        vec![
            floats("w1", &[3, 2], &W1),
            floats("b1", &[3], &B1),
            floats("w2", &[1, 3], &W2),
            floats_listed("b2", &[1], &B2),
        ],
        batch(2),
        out(1),
    );
    reference_output(&load_model(&m).expect("loads"));
}

#[test]
fn gemm_with_trans_b_0_takes_in_by_out_weights() {
    let m = model(
        vec![
            node(
                "Gemm",
                "g1",
                &["input", "w1", "b1"],
                &["h"],
                vec![attr_i("transB", 0)],
            ),
            node("Relu", "r1", &["h"], &["r"], vec![]),
            node("Gemm", "g2", &["r", "w2", "b2"], &["output"], vec![]),
        ],
        vec![
            floats_listed("w1", &[2, 3], &transposed(&W1, 3, 2)),
            floats("b1", &[1, 3], &B1),
            floats("w2", &[3, 1], &W2),
            floats("b2", &[1, 1], &B2),
        ],
        batch(2),
        out(1),
    );
    reference_output(&load_model(&m).expect("loads"));
}

#[test]
fn gemm_alpha_and_beta_scale_exactly() {
    let m = model(
        vec![node(
            "Gemm",
            "g",
            &["input", "w", "b"],
            &["output"],
            vec![
                attr_f("alpha", 0.5),
                attr_f("beta", -3.0),
                attr_i("transB", 1),
            ],
        )],
        vec![floats("w", &[1, 2], &[3.0, 0.1]), floats("b", &[1], &[0.1])],
        batch(2),
        out(1),
    );
    let net = load_model(&m).expect("loads");
    let layer = &net.layers()[0].affine;
    // Every product of an f32 attribute and an f32 weight is exact in f64.
    assert_eq!(*layer.row(0).dense(), [1.5, 0.5 * f64::from(0.1f32)]);
    assert_eq!(*layer.bias(0), -3.0 * f64::from(0.1f32));
    assert_eq!(
        output(&net, &[2.0, 0.0]),
        vec![3.0 - 3.0 * f64::from(0.1f32)]
    );
}

#[test]
fn gemm_alpha_that_rounds_is_refused() {
    let m = model(
        vec![node(
            "Gemm",
            "g",
            &["input", "w"],
            &["output"],
            vec![attr_f("alpha", 0.1), attr_i("transB", 1)],
        )],
        vec![doubles("w", &[1, 2], &[1.0, 0.1])],
        batch(2),
        out(1),
    );
    assert_has(
        &load_err(&m),
        &[
            "model.onnx",
            "node 'g' (index 0)",
            "alpha",
            "weight [0, 1]",
            "not exactly representable",
        ],
    );
}

#[test]
fn gemm_beta_that_underflows_is_refused() {
    // 2^-1074 (the smallest subnormal) times 0.75 rounds to 2^-1074 or 0: not exact, though
    // the rounding error is too small for the fused test to see.
    let tiny = f64::from_bits(1);
    let m = model(
        vec![node(
            "Gemm",
            "g",
            &["input", "w", "b"],
            &["output"],
            vec![attr_f("beta", 0.75), attr_i("transB", 1)],
        )],
        vec![
            floats("w", &[1, 2], &[1.0, 1.0]),
            doubles("b", &[1], &[tiny]),
        ],
        batch(2),
        out(1),
    );
    assert_has(
        &load_err(&m),
        &[
            "node 'g' (index 0)",
            "beta = 0.75",
            "bias [0]",
            "not exactly representable",
        ],
    );
}

#[test]
fn gemm_trans_a_is_an_error_naming_the_node() {
    let m = model(
        vec![node(
            "Gemm",
            "/fc/Gemm",
            &["input", "w"],
            &["output"],
            vec![attr_i("transA", 1), attr_i("transB", 1)],
        )],
        vec![floats("w", &[1, 2], &[1.0, 2.0])],
        batch(2),
        out(1),
    );
    assert_has(&load_err(&m), &["node '/fc/Gemm' (index 0)", "transA"]);
}

#[test]
fn matmul_then_add_in_either_order() {
    reference_output(&load_model(&matmul_add_model(false)).expect("loads"));
    reference_output(&load_model(&matmul_add_model(true)).expect("loads"));
}

#[test]
fn matmul_without_add_and_affine_after_affine() {
    // Two affine nodes without a Relu between them stay two layers without ReLU.
    let m = model(
        vec![
            node("MatMul", "m", &["input", "w1"], &["a"], vec![]),
            node(
                "Gemm",
                "g",
                &["a", "w2", "b2"],
                &["output"],
                vec![attr_i("transB", 1)],
            ),
        ],
        vec![
            floats("w1", &[2, 3], &transposed(&W1, 3, 2)),
            floats("w2", &[1, 3], &W2),
            floats("b2", &[1], &B2),
        ],
        batch(2),
        out(1),
    );
    let net = load_model(&m).expect("loads");
    assert_eq!(net.widths(), vec![2, 3, 1]);
    assert!(net.layers().iter().all(|l| !l.relu));
    assert!(net.layers()[0].affine.bias(0) == &0.0);
    // z1 = [-3, -2, 6] (no bias, no ReLU), y = -3 + 4 + 1.5 + 2 = 4.5.
    assert_eq!(output(&net, &[1.0, -2.0]), vec![4.5]);
}

#[test]
fn shape_nodes_that_keep_the_vector_are_no_ops() {
    let shape_node = node(
        "Constant",
        "/Constant",
        &[],
        &["shape"],
        vec![attr_t("value", int64s("", &[-1, 3]))],
    );
    let m = model(
        vec![
            node(
                "Flatten",
                "/flatten/Flatten",
                &["input"],
                &["f"],
                vec![attr_i("axis", 1)],
            ),
            node("Identity", "/id", &["f"], &["i"], vec![]),
            node(
                "Gemm",
                "g1",
                &["i", "w1", "b1"],
                &["h"],
                vec![attr_i("transB", 1)],
            ),
            node("Relu", "r1", &["h"], &["r"], vec![]),
            node("Relu", "r2", &["r"], &["rr"], vec![]),
            node(
                "Dropout",
                "/drop/Dropout",
                &["rr", "ratio"],
                &["d", "mask"],
                vec![],
            ),
            shape_node,
            node("Reshape", "/Reshape", &["d", "shape"], &["s"], vec![]),
            node("Reshape", "/Reshape_1", &["s", "shape0"], &["s2"], vec![]),
            node(
                "Flatten",
                "/flatten_1",
                &["s2"],
                &["f2"],
                vec![attr_i("axis", -1)],
            ),
            node(
                "Gemm",
                "g2",
                &["f2", "w2", "b2"],
                &["output"],
                vec![attr_i("transB", 1)],
            ),
        ],
        vec![
            floats("w1", &[3, 2], &W1),
            floats("b1", &[3], &B1),
            floats("w2", &[1, 3], &W2),
            floats("b2", &[1], &B2),
            floats("ratio", &[], &[0.5]),
            int64s("shape0", &[0, -1]),
        ],
        batch(2),
        out(1),
    );
    let net = load_model(&m).expect("loads");
    assert_eq!(
        net.layers().len(),
        2,
        "consecutive Relus collapse and no-ops add no layer"
    );
    reference_output(&net);
}

#[test]
fn image_input_flattened_after_the_batch() {
    let m = model(
        vec![
            node("Flatten", "f", &["input"], &["flat"], vec![]),
            node(
                "Gemm",
                "g",
                &["flat", "w", "b"],
                &["output"],
                vec![attr_i("transB", 1)],
            ),
        ],
        vec![
            floats("w", &[1, 4], &[1.0, 2.0, 3.0, 4.0]),
            floats("b", &[1], &[0.0]),
        ],
        value("input", &[None, Some(1), Some(2), Some(2)]),
        out(1),
    );
    let net = load_model(&m).expect("loads");
    assert_eq!(output(&net, &[1.0, 1.0, 1.0, -1.0]), vec![2.0]);

    let mut wrong = m.clone();
    wrong.graph.as_mut().expect("graph").node[0].attribute = vec![attr_i("axis", 2)];
    assert_has(&load_err(&wrong), &["node 'f' (index 0)", "axis 2"]);
}

#[test]
fn constants_from_value_floats_and_identity_aliases() {
    let mut wf = AttributeProto::new();
    wf.name = "value_floats".into();
    wf.type_ = AttributeType::FLOATS.into();
    wf.floats = vec![0.5, -1.0];
    let m = model(
        vec![
            node("Constant", "c", &[], &["bias"], vec![wf]),
            node("Identity", "alias", &["w"], &["w_shared"], vec![]),
            node(
                "Gemm",
                "g",
                &["input", "w_shared", "bias"],
                &["output"],
                vec![attr_i("transB", 1)],
            ),
        ],
        vec![floats("w", &[2, 1], &[2.0, 3.0])],
        value("input", &[None, Some(1)]),
        out(2),
    );
    let net = load_model(&m).expect("loads");
    assert_eq!(output(&net, &[2.0]), vec![4.5, 5.0]);
}

#[test]
fn initializers_listed_as_inputs_are_not_data_inputs() {
    let mut m = model(
        vec![node(
            "Gemm",
            "g",
            &["input", "w", "b"],
            &["output"],
            vec![attr_i("transB", 1)],
        )],
        vec![floats("w", &[1, 2], &[1.0, 1.0]), floats("b", &[1], &[1.0])],
        batch(2),
        out(1),
    );
    let g = m.graph.as_mut().expect("graph");
    g.input.push(value("w", &[Some(1), Some(2)]));
    g.input.push(value("b", &[Some(1)]));
    assert_eq!(
        output(&load_model(&m).expect("loads"), &[1.0, 2.0]),
        vec![4.0]
    );
}

#[test]
fn unsupported_operator_names_node_and_operator() {
    let m = model(
        vec![
            node(
                "Gemm",
                "g",
                &["input", "w"],
                &["h"],
                vec![attr_i("transB", 1)],
            ),
            node("Sigmoid", "/act/Sigmoid", &["h"], &["output"], vec![]),
        ],
        vec![floats("w", &[1, 2], &[1.0, 2.0])],
        batch(2),
        out(1),
    );
    assert_has(
        &load_err(&m),
        &[
            "model.onnx: node '/act/Sigmoid' (index 1): unsupported operator 'Sigmoid'",
            "Gemm, MatMul",
        ],
    );
    let mut other_domain = m.clone();
    other_domain.graph.as_mut().expect("graph").node[1].domain = "com.microsoft".into();
    assert_has(
        &load_err(&other_domain),
        &["node '/act/Sigmoid' (index 1)", "'com.microsoft::Sigmoid'"],
    );
}

#[test]
fn branches_are_errors_naming_the_node() {
    // The second Gemm reads the first Gemm's output, skipping the Relu: a branch.
    let m = model(
        vec![
            node(
                "Gemm",
                "g1",
                &["input", "w1", "b1"],
                &["h"],
                vec![attr_i("transB", 1)],
            ),
            node("Relu", "r", &["h"], &["r"], vec![]),
            node(
                "Gemm",
                "g2",
                &["h", "w2", "b2"],
                &["output"],
                vec![attr_i("transB", 1)],
            ),
        ],
        vec![
            floats("w1", &[3, 2], &W1),
            floats("b1", &[3], &B1),
            floats("w2", &[1, 3], &W2),
            floats("b2", &[1], &B2),
        ],
        batch(2),
        out(1),
    );
    assert_has(
        &load_err(&m),
        &["node 'r' (index 1)", "'h' feeds 2 nodes", "branches"],
    );

    // A residual connection: Add of two computed tensors, read tensor by tensor.
    let m = model(
        vec![
            node(
                "Gemm",
                "g1",
                &["input", "w", "b"],
                &["h"],
                vec![attr_i("transB", 1)],
            ),
            node("Add", "res", &["h", "input"], &["output"], vec![]),
        ],
        vec![
            floats("w", &[2, 2], &[1.0, 0.0, 0.0, 1.0]),
            floats("b", &[2], &[0.0, 0.0]),
        ],
        batch(2),
        out(2),
    );
    let net = load_model(&m).expect("loads");
    assert_eq!(output(&net, &[0.5, -3.0]), vec![1.0, -6.0]);
}

#[test]
fn chain_shape_errors_name_the_node() {
    let w = || {
        vec![
            floats("w", &[1, 2], &[1.0, 2.0]),
            floats("w2", &[1, 1], &[1.0]),
        ]
    };
    let relu_first = model(
        vec![
            node("Relu", "/relu", &["input"], &["r"], vec![]),
            node(
                "Gemm",
                "g",
                &["r", "w"],
                &["output"],
                vec![attr_i("transB", 1)],
            ),
        ],
        w(),
        batch(2),
        out(1),
    );
    assert_has(
        &load_err(&relu_first),
        &["node '/relu' (index 0)", "Relu on the raw input"],
    );

    let init_as_data = model(
        vec![node("MatMul", "mm", &["w", "input"], &["output"], vec![])],
        w(),
        batch(2),
        out(1),
    );
    assert_has(
        &load_err(&init_as_data),
        &[
            "node 'mm' (index 0)",
            "initializer cannot be the data input",
        ],
    );

    let unordered = model(
        vec![
            node(
                "Gemm",
                "g2",
                &["h", "w2"],
                &["output"],
                vec![attr_i("transB", 1)],
            ),
            node(
                "Gemm",
                "g1",
                &["input", "w"],
                &["h"],
                vec![attr_i("transB", 1)],
            ),
        ],
        w(),
        batch(2),
        out(1),
    );
    assert_has(
        &load_err(&unordered),
        &["node 'g2' (index 0)", "topological order"],
    );

    let mut two_inputs = relu_first.clone();
    two_inputs
        .graph
        .as_mut()
        .expect("graph")
        .input
        .push(value("second", &[None, Some(2)]));
    // A second input is a question, which the caller must give.
    assert_has(
        &load_err(&two_inputs),
        &["second input 'second'", "2 values", "--question"],
    );
    let mut three_inputs = two_inputs.clone();
    three_inputs
        .graph
        .as_mut()
        .expect("graph")
        .input
        .push(value("third", &[None, Some(1)]));
    assert_has(&load_err(&three_inputs), &["3 data inputs", "'third'"]);

    let wrong_width = model(
        vec![node(
            "Gemm",
            "g",
            &["input", "w"],
            &["output"],
            vec![attr_i("transB", 1)],
        )],
        w(),
        batch(3),
        out(1),
    );
    assert_has(
        &load_err(&wrong_width),
        &[
            "node 'g' (index 0)",
            "declares 3 values per sample",
            "expects 2",
        ],
    );

    let batch_changing = model(
        vec![
            node("Reshape", "rs", &["input", "shape"], &["s"], vec![]),
            node(
                "Gemm",
                "g",
                &["s", "w"],
                &["output"],
                vec![attr_i("transB", 1)],
            ),
        ],
        vec![floats("w", &[1, 2], &[1.0, 2.0]), int64s("shape", &[1, -1])],
        batch(2),
        out(1),
    );
    assert_has(
        &load_err(&batch_changing),
        &["node 'rs' (index 0)", "batch dimension"],
    );
}

#[test]
fn tensor_problems_name_the_tensor() {
    let with = |t: TensorProto| {
        model(
            vec![node(
                "Gemm",
                "g",
                &["input", "w"],
                &["output"],
                vec![attr_i("transB", 1)],
            )],
            vec![t],
            batch(2),
            out(1),
        )
    };
    let mut half = floats("w", &[1, 2], &[]);
    half.data_type = DataType::FLOAT16 as i32;
    half.raw_data = vec![0, 60, 0, 60];
    assert_has(
        &load_err(&with(half)),
        &["node 'g' (index 0)", "tensor 'w'", "FLOAT16 (10)"],
    );

    let mut ints = int64s("w", &[1, 2]);
    ints.dims = vec![1, 2];
    assert_has(&load_err(&with(ints)), &["tensor 'w'", "INT64 (7)"]);

    let short = floats("w", &[1, 3], &[1.0, 2.0]);
    assert_has(
        &load_err(&with(short)),
        &["tensor 'w'", "8 bytes", "needs 12"],
    );

    let absurd = floats("w", &[1 << 40, 1 << 40], &[1.0]);
    assert_has(&load_err(&with(absurd)), &["tensor 'w'", "more than"]);

    let mut external = floats("w", &[1, 2], &[]);
    external.data_location = DataLocation::EXTERNAL.into();
    assert_has(&load_err(&with(external)), &["tensor 'w'", "external"]);

    let nan = floats("w", &[1, 2], &[1.0, f32::NAN]);
    assert_has(
        &load_err(&with(nan)),
        &["model.onnx", "layer 1: weight [0, 1] is NaN"],
    );
}

#[test]
fn dropout_in_training_mode_is_refused() {
    let mut flag = TensorProto::new();
    flag.name = "train".into();
    flag.data_type = DataType::BOOL as i32;
    flag.raw_data = vec![1];
    let m = model(
        vec![
            node(
                "Gemm",
                "g",
                &["input", "w"],
                &["h"],
                vec![attr_i("transB", 1)],
            ),
            node("Dropout", "d", &["h", "", "train"], &["output"], vec![]),
        ],
        vec![floats("w", &[1, 2], &[1.0, 2.0]), flag],
        batch(2),
        out(1),
    );
    assert_has(&load_err(&m), &["node 'd' (index 1)", "training_mode"]);
}
