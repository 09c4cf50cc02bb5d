//! A final Softmax: refused by default with the flag that leaves it out named; with
//! `strip_softmax`, the network of the logits. A Softmax elsewhere, and other operators that
//! are not piecewise linear, stay refused naming the node.

use super::*;

/// Gemm(W1, B1), Relu, Gemm(W2, B2) giving `logits`, then `last` (its nodes, reading
/// `logits` and writing `output`); no `last` nodes: the logits are the output.
fn with_last(last: Vec<NodeProto>) -> ModelProto {
    let output = if last.is_empty() { "output" } else { "logits" };
    let mut nodes = vec![
        node(
            "Gemm",
            "/fc1/Gemm",
            &["input", "w1", "b1"],
            &["h"],
            vec![attr_i("transB", 1)],
        ),
        node("Relu", "/relu/Relu", &["h"], &["r"], vec![]),
        node(
            "Gemm",
            "/fc2/Gemm",
            &["r", "w2", "b2"],
            &[output],
            vec![attr_i("transB", 1)],
        ),
    ];
    nodes.extend(last);
    let inits = vec![
        floats("w1", &[3, 2], &W1),
        floats("b1", &[3], &B1),
        floats("w2", &[1, 3], &W2),
        floats("b2", &[1], &B2),
    ];
    model(nodes, inits, batch(2), out(1))
}

fn softmax(input: &str, output: &str) -> NodeProto {
    node(
        "Softmax",
        "/softmax/Softmax",
        &[input],
        &[output],
        vec![attr_i("axis", -1)],
    )
}

fn stripped(m: &ModelProto) -> Result<Network> {
    let bytes = m.write_to_bytes().expect("serialise");
    let options = OnnxOptions {
        strip_softmax: true,
        ..OnnxOptions::default()
    };
    load_bytes_with(&bytes, Path::new("model.onnx"), options)
}

#[test]
fn a_final_softmax_is_refused_naming_the_flag_and_left_out_with_it() {
    let m = with_last(vec![softmax("logits", "output")]);
    let message = load_err(&m);
    assert_has(
        &message,
        &[
            "'/softmax/Softmax'",
            "Softmax",
            "not piecewise linear",
            "--strip-softmax",
        ],
    );
    let net = stripped(&m).unwrap();
    reference_output(&net);
    let logits = load_model(&with_last(vec![])).unwrap();
    assert_eq!(net, logits);
    assert_eq!(net.fingerprint(), logits.fingerprint());
}

#[test]
fn strip_softmax_refuses_what_it_cannot_leave_out() {
    // No Softmax at the end.
    let e = stripped(&with_last(vec![])).unwrap_err().to_string();
    assert_has(
        &e,
        &[
            "--strip-softmax",
            "'output'",
            "'/fc2/Gemm'",
            "Gemm",
            "not by a Softmax",
        ],
    );
    // A Softmax followed by another operator: the end is not the Softmax, and the Softmax
    // inside stays refused as not piecewise linear.
    let inside = with_last(vec![
        softmax("logits", "p"),
        node("Relu", "/after/Relu", &["p"], &["output"], vec![]),
    ]);
    let e = stripped(&inside).unwrap_err().to_string();
    assert_has(&e, &["'/after/Relu'", "not by a Softmax"]);
    let e = load_err(&inside);
    assert_has(&e, &["'/softmax/Softmax'", "not piecewise linear"]);
    assert!(!e.contains("--strip-softmax"), "{e}");
}

#[test]
fn operators_that_are_not_piecewise_linear_are_named_so() {
    for op in ["Sigmoid", "Tanh", "Elu", "Gelu"] {
        let m = with_last(vec![node(
            op,
            "/act/last",
            &["logits"],
            &["output"],
            vec![],
        )]);
        assert_has(&load_err(&m), &["'/act/last'", op, "not piecewise linear"]);
    }
}
