//! Graphs that move elements: relation networks, MatMul on batched rows, sums of tensors, carried values.

use super::*;
use crate::model::forward::output;
use crate::model::ir::Affine;
use crate::model::kind::LayerKind;

/// Values of f32 with few bits, so that self-pair sums are exact.
fn quarter(k: usize) -> f32 {
    ((k * 5 + 3) % 9) as f32 * 0.25 - 1.0
}

fn weights(name: &str, rows: usize, cols: usize, offset: usize) -> TensorProto {
    let w: Vec<f32> = (0..rows * cols).map(|k| quarter(k + offset)).collect();
    floats(name, &[rows as i64, cols as i64], &w)
}

fn linear(input: &str, w: &str, b: &str, output: &str) -> NodeProto {
    node(
        "Gemm",
        output,
        &[input, w, b],
        &[output],
        vec![attr_i("transB", 1)],
    )
}

/// A relation network as the dynamo exporter writes one: 2×2×2 image (4 objects of 2
/// channels), a question of 1 value, g = 5 → 3 → 3, sum, f = 3 → 2.
fn tiny_relation_network() -> ModelProto {
    let nodes = vec![
        node("Reshape", "view", &["x", "s1"], &["v"], vec![]),
        node(
            "Transpose",
            "permute",
            &["v"],
            &["objs"],
            vec![attr_is("perm", &[0, 2, 1])],
        ),
        node("Unsqueeze", "unsqueeze", &["objs", "a1"], &["u1"], vec![]),
        node("Expand", "expand_i", &["u1", "e"], &["xi"], vec![]),
        node("Unsqueeze", "unsqueeze_1", &["objs", "a2"], &["u2"], vec![]),
        node("Expand", "expand_j", &["u2", "e"], &["xj"], vec![]),
        node("Reshape", "view_q", &["q", "s2"], &["q1"], vec![]),
        node("Expand", "expand_q", &["q1", "e2"], &["qe"], vec![]),
        node(
            "Concat",
            "cat",
            &["xi", "xj", "qe"],
            &["pairs"],
            vec![attr_i("axis", 3)],
        ),
        node("Reshape", "view_pairs", &["pairs", "s3"], &["p2"], vec![]),
        linear("p2", "w1", "b1", "g1"),
        node("Relu", "relu1", &["g1"], &["r1"], vec![]),
        linear("r1", "w2", "b2", "g2"),
        node("Relu", "relu2", &["g2"], &["r2"], vec![]),
        node("Reshape", "view_g", &["r2", "s4"], &["r3"], vec![]),
        node(
            "ReduceSum",
            "sum",
            &["r3", "a1"],
            &["s"],
            vec![attr_i("keepdims", 0)],
        ),
        linear("s", "w3", "b3", "output"),
    ];
    let inits = vec![
        int64s("s1", &[1, 2, 4]),
        int64s("a1", &[1]),
        int64s("a2", &[2]),
        int64s("e", &[1, 4, 4, 2]),
        int64s("s2", &[1, 1, 1, -1]),
        int64s("e2", &[1, 4, 4, 1]),
        int64s("s3", &[16, -1]),
        int64s("s4", &[1, 16, -1]),
        weights("w1", 3, 5, 0),
        weights("b1", 1, 3, 7),
        weights("w2", 3, 3, 2),
        weights("b2", 1, 3, 4),
        weights("w3", 2, 3, 5),
        weights("b3", 1, 2, 1),
    ];
    let mut m = model(
        nodes,
        inits,
        value("x", &[None, Some(2), Some(2), Some(2)]),
        out(2),
    );
    m.graph
        .mut_or_insert_default()
        .input
        .push(value("q", &[None, Some(1)]));
    m
}

fn load_with_question(m: &ModelProto, question: Option<Vec<f64>>) -> Result<Network> {
    let bytes = m.write_to_bytes().expect("serialise");
    let options = OnnxOptions {
        question,
        ..OnnxOptions::default()
    };
    load_bytes_with(&bytes, Path::new("rn.onnx"), options)
}

/// The tiny relation network written out: pair `i·4 + j` is `[object j, object i, q]`.
fn tiny_by_hand(x: &[f64], q: f64) -> Vec<f64> {
    let w = |rows: usize, cols: usize, offset: usize| -> Vec<Vec<f64>> {
        (0..rows)
            .map(|r| {
                (0..cols)
                    .map(|c| f64::from(quarter(r * cols + c + offset)))
                    .collect()
            })
            .collect()
    };
    let (w1, b1, w2, b2, w3, b3) = (
        w(3, 5, 0),
        w(1, 3, 7),
        w(3, 3, 2),
        w(1, 3, 4),
        w(2, 3, 5),
        w(1, 2, 1),
    );
    let object = |o: usize| [x[o], x[4 + o]];
    let mut sum = [0.0; 3];
    for i in 0..4 {
        for j in 0..4 {
            let (a, b) = (object(j), object(i));
            let pair = [a[0], a[1], b[0], b[1], q];
            let h1: Vec<f64> = (0..3)
                .map(|k| (b1[0][k] + (0..5).map(|m| w1[k][m] * pair[m]).sum::<f64>()).max(0.0))
                .collect();
            for k in 0..3 {
                sum[k] += (b2[0][k] + (0..3).map(|m| w2[k][m] * h1[m]).sum::<f64>()).max(0.0);
            }
        }
    }
    (0..2)
        .map(|k| b3[0][k] + (0..3).map(|m| w3[k][m] * sum[m]).sum::<f64>())
        .collect()
}

#[test]
fn graphs_that_move_elements_are_read_tensor_by_tensor() {
    let m = tiny_relation_network();
    for (s, q) in [0.5, -1.25, 2.0].into_iter().enumerate() {
        let net = load_with_question(&m, Some(vec![q])).expect("loads");
        // The pairs' first layer (sparse, constants in the bias), g's second layer (one
        // block for all 16 pairs), the sum (no ReLU), f.
        assert_eq!(net.widths(), vec![8, 48, 48, 3, 2]);
        let relu: Vec<bool> = net.layers().iter().map(|l| l.relu).collect();
        assert_eq!(relu, vec![true, true, false, false]);
        let layers = net.layers();
        assert!(matches!(layers[0].affine, Affine::Sparse(_)));
        assert!(matches!(&layers[1].affine, Affine::Shared(sh) if sh.copies() == 16));
        assert!(matches!(layers[2].affine, Affine::Sparse(_)));
        assert!(matches!(layers[3].affine, Affine::Dense(_)));
        // A self-pair lists each of its object's features once, with the summed weight.
        assert_eq!(layers[0].affine.row(0).entries().count(), 2);
        assert_eq!(layers[0].affine.row(3).entries().count(), 4);
        for t in 0..4 {
            let x: Vec<f64> = (0..8)
                .map(|i| ((i + 3 * t + s) as f64 * 0.7).sin())
                .collect();
            let (got, want) = (output(&net, &x), tiny_by_hand(&x, q));
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                    "{got:?} vs {want:?}"
                );
            }
        }
    }
}

/// g's second layer as MatMul + Add (the bias the same for every pair), and a sum of two
/// computed tensors: the same functions.
#[test]
fn matmul_on_batched_rows_and_sums_of_tensors_compose() {
    let mut m = tiny_relation_network();
    let g = m.graph.mut_or_insert_default();
    g.node[12] = node("MatMul", "mm", &["r1", "w2t"], &["m2"], vec![]);
    g.node
        .insert(13, node("Add", "bias", &["m2", "b2"], &["g2"], vec![]));
    let w2: Vec<f32> = (0..9).map(|k| quarter(k + 2)).collect();
    g.initializer
        .push(floats("w2t", &[3, 3], &transposed(&w2, 3, 3)));
    let net = load_with_question(&m, Some(vec![0.5])).expect("loads");
    assert!(matches!(&net.layers()[1].affine, Affine::Shared(sh) if sh.copies() == 16));
    let x: Vec<f64> = (0..8).map(|i| (i as f64 * 0.9).cos()).collect();
    let (got, want) = (output(&net, &x), tiny_by_hand(&x, 0.5));
    for (a, b) in got.iter().zip(&want) {
        assert!(
            (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
            "{got:?} vs {want:?}"
        );
    }

    // x + x through Unsqueeze/Squeeze: one input listed once with weight 2.
    let nodes = vec![
        node("Unsqueeze", "u", &["input", "a1"], &["u"], vec![]),
        node("Squeeze", "s", &["u", "a1"], &["v"], vec![]),
        node("Add", "twice", &["v", "input"], &["y"], vec![]),
        linear("y", "w", "b", "output"),
    ];
    let inits = vec![
        int64s("a1", &[1]),
        weights("w", 1, 2, 0),
        weights("b", 1, 1, 3),
    ];
    let net = load_with_question(&model(nodes, inits, batch(2), out(1)), None).unwrap();
    let x = [0.75, -1.5];
    let (w0, w1, b) = (
        f64::from(quarter(0)),
        f64::from(quarter(1)),
        f64::from(quarter(3)),
    );
    assert_eq!(output(&net, &x), vec![w0 * 1.5 + w1 * -3.0 + b]);
    assert_eq!(
        net.layers()[0].affine.row(0).entries().collect::<Vec<_>>(),
        vec![(0, &2.0)]
    );
}

#[test]
fn graph_problems_name_the_node_and_what_is_missing() {
    let m = tiny_relation_network();
    let e = load_with_question(&m, None).unwrap_err().to_string();
    assert_has(
        &e,
        &["rn.onnx", "second input 'q'", "1 values", "--question"],
    );
    let e = load_with_question(&m, Some(vec![1.0, 2.0]))
        .unwrap_err()
        .to_string();
    assert_has(&e, &["'q' takes 1 values", "--question gives 2"]);

    // A tensor read again after a later ReLU: a connection that skips a layer.
    let nodes = vec![
        linear("input", "w", "b", "a"),
        node("Relu", "relu_a", &["a"], &["r"], vec![]),
        linear("r", "w", "b", "c"),
        node("Relu", "relu_c", &["c"], &["d"], vec![]),
        node(
            "Concat",
            "skip",
            &["d", "r"],
            &["e"],
            vec![attr_i("axis", 1)],
        ),
        linear("e", "w4", "b1", "output"),
    ];
    let inits = vec![
        weights("w", 2, 2, 0),
        weights("b", 1, 2, 3),
        weights("w4", 1, 4, 1),
        weights("b1", 1, 1, 2),
    ];
    // 'r' is carried past relu_c as two outputs without ReLU, and read from there.
    let skip = model(nodes, inits, batch(2), out(1));
    let net = load_with_question(&skip, None).expect("loads");
    let tails: Vec<usize> = net.layers().iter().map(|l| l.linear_tail).collect();
    assert_eq!(tails, vec![0, 2, 0]);
    let q = |k: usize| f64::from(quarter(k));
    let layer = |x: &[f64]| -> Vec<f64> {
        (0..2)
            .map(|o| q(2 * o) * x[0] + q(2 * o + 1) * x[1] + q(o + 3))
            .collect()
    };
    for x in [[0.5, -1.25], [2.0, 0.75], [-1.0, -0.5]] {
        let r: Vec<f64> = layer(&x).iter().map(|v| v.max(0.0)).collect();
        let d: Vec<f64> = layer(&r).iter().map(|v| v.max(0.0)).collect();
        let e = [d[0], d[1], r[0], r[1]];
        let want = (0..4).map(|i| q(i + 1) * e[i]).sum::<f64>() + q(2);
        assert_eq!(output(&net, &x), vec![want]);
    }
    // A Shape of a tensor after a later cut reads only its (static) sizes: nothing carried.
    let nodes = vec![
        linear("input", "w", "b", "a"),
        node("Relu", "relu_a", &["a"], &["r"], vec![]),
        node("Shape", "size", &["a"], &["s"], vec![]),
        node("Reshape", "view", &["r", "s"], &["v"], vec![]),
        node(
            "Concat",
            "same",
            &["v"],
            &["output"],
            vec![attr_i("axis", 1)],
        ),
    ];
    let inits = vec![weights("w", 2, 2, 0), weights("b", 1, 2, 3)];
    let sized = model(nodes, inits, batch(2), out(2));
    let net = load_with_question(&sized, None).expect("loads");
    assert!(net.layers().iter().all(|l| l.linear_tail == 0));
    assert_eq!(net.widths(), vec![2, 2]);
    // Values are not carried past a max-pool layer.
    let nodes = vec![
        node(
            "MaxPool",
            "pool",
            &["input"],
            &["p"],
            vec![attr_is("kernel_shape", &[1, 2])],
        ),
        node("Add", "join", &["p", "input"], &["output"], vec![]),
    ];
    let image = value("input", &[None, Some(1), Some(1), Some(2)]);
    let e = load_with_question(&model(nodes, vec![], image, out(1)), None)
        .unwrap_err()
        .to_string();
    assert_has(&e, &["node 'join'", "'input'", "not past a max-pool layer"]);

    // Two weights on one input whose sum rounds.
    let nodes = vec![
        node(
            "Concat",
            "twice",
            &["input", "input"],
            &["xx"],
            vec![attr_i("axis", 1)],
        ),
        node(
            "Gemm",
            "fc",
            &["xx", "w"],
            &["output"],
            vec![attr_i("transB", 1)],
        ),
    ];
    let inits = vec![doubles("w", &[1, 2], &[1.0, 1e-30])];
    let rounding = model(nodes, inits, batch(1), out(1));
    let e = load_with_question(&rounding, None).unwrap_err().to_string();
    assert_has(&e, &["node 'fc'", "do not sum exactly"]);

    // An operator outside the list, in a graph read tensor by tensor.
    let mut m = tiny_relation_network();
    let g = m.graph.mut_or_insert_default();
    g.node[11] = node("Sigmoid", "squash", &["g1"], &["r1"], vec![]);
    let e = load_with_question(&m, Some(vec![1.0]))
        .unwrap_err()
        .to_string();
    assert_has(&e, &["node 'squash'", "unsupported operator 'Sigmoid'"]);

    // The output read again by a later ReLU whose result is unused.
    let mut m = tiny_relation_network();
    let g = m.graph.mut_or_insert_default();
    g.node
        .push(node("Relu", "after", &["output"], &["unused"], vec![]));
    let e = load_with_question(&m, Some(vec![1.0]))
        .unwrap_err()
        .to_string();
    assert_has(&e, &["graph output 'output'", "a later node reads it"]);

    // An expansion that would make a batch.
    let mut m = tiny_relation_network();
    let g = m.graph.mut_or_insert_default();
    g.initializer[3] = int64s("e", &[2, 4, 4, 2]);
    let e = load_with_question(&m, Some(vec![1.0]))
        .unwrap_err()
        .to_string();
    assert_has(&e, &["node 'expand_i'", "batch of 2"]);
}

/// `relu(W2 relu(W1 x + b1) + b2 + (Ws x + bs))` (a block whose shortcut is an affine map of
/// the block input, as a downsampling convolution is), then a Gemm to one output. Folded,
/// the sum is one layer with the bias `b2 + bs`; with `split_residual` the summands are a
/// layer of their own, each with its own bias, and the addition a layer of kind `add`.
#[test]
fn a_residual_addition_read_apart_keeps_each_summands_bias() {
    let nodes = vec![
        linear("input", "w1", "b1", "z1"),
        node("Relu", "r1", &["z1"], &["h"], vec![]),
        linear("h", "w2", "b2", "main"),
        linear("input", "ws", "bs", "short"),
        node("Add", "sum", &["main", "short"], &["s"], vec![]),
        node("Relu", "r2", &["s"], &["a"], vec![]),
        linear("a", "w3", "b3", "output"),
    ];
    let inits = vec![
        weights("w1", 2, 2, 0),
        weights("b1", 1, 2, 4),
        weights("w2", 2, 2, 6),
        weights("b2", 1, 2, 12),
        weights("ws", 2, 2, 16),
        weights("bs", 1, 2, 14),
        weights("w3", 1, 2, 20),
        weights("b3", 1, 1, 22),
    ];
    let bytes = model(nodes, inits, batch(2), out(1))
        .write_to_bytes()
        .expect("serialise");
    let read = |split_residual| {
        let options = OnnxOptions {
            split_residual,
            ..OnnxOptions::default()
        };
        load_bytes_with(&bytes, Path::new("block.onnx"), options).expect("loads")
    };
    let (folded, split) = (read(false), read(true));
    let bias = |offset: usize| [0, 1].map(|k| f64::from(quarter(k + offset)));
    let (b2, bs) = (bias(12), bias(14));
    assert!(b2.iter().chain(&bs).all(|&b| b != 0.0));
    let biases = |net: &Network, l: usize| {
        let affine = &net.layers()[l].affine;
        (0..affine.out_dim())
            .map(|j| *affine.bias(j))
            .collect::<Vec<_>>()
    };
    assert_eq!(folded.widths(), vec![2, 4, 2, 1]);
    assert_eq!(biases(&folded, 1), vec![b2[0] + bs[0], b2[1] + bs[1]]);
    assert_eq!(split.widths(), vec![2, 4, 4, 2, 1]);
    assert_eq!(
        split.kinds(),
        &[
            LayerKind::Dense,
            LayerKind::Dense,
            LayerKind::Add,
            LayerKind::Dense
        ]
    );
    let (parts, sum) = (&split.layers()[1], &split.layers()[2]);
    assert!(!parts.relu && sum.relu);
    assert_eq!(biases(&split, 1), vec![b2[0], b2[1], bs[0], bs[1]]);
    assert_eq!(biases(&split, 2), vec![0.0; 2]);
    for j in 0..2 {
        let row: Vec<_> = sum.affine.row(j).entries().map(|(i, &w)| (i, w)).collect();
        assert_eq!(row, vec![(j, 1.0), (2 + j, 1.0)]);
        // The block's part reads h alone, the shortcut's the carried x alone.
        assert!(parts.affine.row(j).entries().all(|(i, _)| i < 2));
        assert!(parts.affine.row(2 + j).entries().all(|(i, _)| i >= 2));
    }
    for x in [[1.0, -2.0], [0.5, 0.25], [-1.5, 3.0]] {
        assert_eq!(output(&split, &x), output(&folded, &x));
    }
}
