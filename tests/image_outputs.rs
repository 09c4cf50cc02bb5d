//! Image networks as LRP libraries set them up: rules by kind of layer and by composite name
//! on the command line (with the rule each layer ran in the output), relevances in the input's
//! N×C×H×W shape, and one heatmap PNG per input.

use std::path::Path;

use assert_cmd::Command;
use dtdcert::dtd::{explain, DtdSettings, Rule};
use dtdcert::model::forward::{forward, output};
use dtdcert::model::ir::{dense_layer, Activation, Affine, Layer, Sparse};
use dtdcert::model::residual::split_residuals;
use dtdcert::model::{LayerKind, Network};
use ndarray::{Array1, Array2, Array4, ArrayD};
use ndarray_npy::read_npy;

const MODEL: &str = "tests/data/conformance/conv_2x6x6.onnx";
const INPUTS: &str = "tests/data/conformance/conv_2x6x6.inputs.npy";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn dtdcert(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_dtdcert"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("the binary runs");
    Run {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Decodes an 8-bit RGB PNG into (width, height, pixels).
fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn explain_shows_the_rule_each_layer_ran_and_refuses_unknown_kinds_and_composites() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.npy");
    let run = dtdcert(&[
        "explain",
        "--model",
        MODEL,
        "--inputs",
        INPUTS,
        "--composite",
        "epsilon-gamma-box",
        "--low",
        "0",
        "--high",
        "1",
        "--kind-rule",
        "dense=epsilon:0.25",
        "--out",
        s(&out),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "rules 1:conv=zb:0:1 2:pool=epsilon:0.000001 3:conv=gamma:0.25 4:dense=epsilon:0.25"
        ),
        "{}",
        run.stdout
    );
    for (flag, value, words) in [
        ("--kind-rule", "linear=z", "valid: input, conv, dense, pool"),
        ("--kind-rule", "conv", "KIND=RULE"),
        (
            "--composite",
            "lrp",
            "valid: epsilon-plus, epsilon-plus-flat",
        ),
        ("--composite", "epsilon-gamma-box", "--low and --high"),
    ] {
        let run = dtdcert(&[
            "explain",
            "--model",
            MODEL,
            "--inputs",
            INPUTS,
            flag,
            value,
            "--out",
            s(&out),
        ]);
        assert_eq!(run.code, 2, "{flag} {value}: {}", run.stderr);
        assert!(run.stderr.contains(words), "{flag} {value}: {}", run.stderr);
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
    }
}

#[test]
fn image_relevances_keep_the_input_shape_and_draw_one_heatmap_per_input() {
    let dir = tempfile::tempdir().unwrap();
    let (out, maps) = (dir.path().join("r.npy"), dir.path().join("maps"));
    let args = [
        "explain",
        "--model",
        MODEL,
        "--inputs",
        INPUTS,
        "--composite",
        "epsilon-plus",
        "--out",
        s(&out),
        "--heatmap",
        s(&maps),
    ];
    let run = dtdcert(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rel: ArrayD<f64> = read_npy(&out).unwrap();
    assert_eq!(rel.shape(), &[4, 2, 6, 6]);
    let rel: Array4<f64> = rel.into_dimensionality().unwrap();
    for i in 0..4 {
        let (w, h, px) = decode(&maps.join(format!("input_{i:05}.png")));
        assert_eq!((w, h, px.len()), (6, 6, 108));
        let sums: Vec<f64> = (0..36)
            .map(|p| rel[[i, 0, p / 6, p % 6]] + rel[[i, 1, p / 6, p % 6]])
            .collect();
        let largest = sums.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        assert!(largest > 0.0);
        for (p, &v) in sums.iter().enumerate() {
            let [r, g, b] = [px[3 * p], px[3 * p + 1], px[3 * p + 2]];
            if v == 0.0 {
                assert_eq!([r, g, b], [255, 255, 255]);
            } else if v > 0.0 {
                assert!(r == 255 && g == b && (v < largest || g == 0));
            } else {
                assert!(b == 255 && r == g && (-v < largest || r == 0));
            }
        }
        // The largest |relevance| is a full colour.
        assert!(px.chunks(3).any(|c| c == [255, 0, 0] || c == [0, 0, 255]));
    }
    // A finished heatmap folder is replaced only with --force.
    let again = dtdcert(&args);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("--heatmap") && again.stderr.contains("--force"),
        "{}",
        again.stderr
    );
    let forced = dtdcert(&[&args[..], &["--force"]].concat());
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    // An MLP's relevances stay N×features, and it has no image to draw.
    let mlp = [
        "explain",
        "--model",
        "tests/data/conformance/mlp_6_8_5_3.onnx",
        "--inputs",
        "tests/data/conformance/mlp_6_8_5_3.inputs.npy",
        "--out",
        s(&out),
    ];
    assert_eq!(dtdcert(&mlp).code, 0);
    let flat: Array2<f64> = read_npy(&out).unwrap();
    assert_eq!(flat.ncols(), 6);
    let run = dtdcert(&[&mlp[..], &["--heatmap", s(&dir.path().join("m"))]].concat());
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not an image"), "{}", run.stderr);
}

/// `h = relu(x)` carrying `x` (2 values), then `relu(W h + b + x)` (a convolution with its
/// residual addition, as the ONNX translator folds it), then a dense layer.
fn block() -> Network {
    let first = Layer {
        affine: Affine::Sparse(
            Sparse::from_rows(
                2,
                vec![
                    vec![(0, 1.0)],
                    vec![(1, 1.0)],
                    vec![(0, 1.0)],
                    vec![(1, 1.0)],
                ],
                Array1::zeros(4),
            )
            .unwrap(),
        ),
        relu: true,
        activation: Activation::Relu,
        max_pool: None,
        linear_tail: 2,
    };
    let sum = Layer::new(
        Affine::Sparse(
            Sparse::from_rows(
                4,
                vec![
                    vec![(0, 2.0), (1, -1.0), (2, 1.0)],
                    vec![(0, 0.5), (1, 1.5), (3, 1.0)],
                ],
                Array1::from(vec![0.25, -0.5]),
            )
            .unwrap(),
        ),
        true,
    );
    let last = dense_layer(1, 2, vec![1.0, 2.0], vec![0.0], false).unwrap();
    Network::new(vec![first, sum, last])
        .unwrap()
        .with_kinds(vec![LayerKind::Other, LayerKind::Conv, LayerKind::Dense])
        .unwrap()
}

#[test]
fn the_split_network_computes_the_same_and_tags_the_addition() {
    let net = block();
    let split = split_residuals(&net).unwrap();
    assert_eq!(split.layers().len(), 4);
    assert_eq!(
        split.kinds(),
        &[
            LayerKind::Other,
            LayerKind::Conv,
            LayerKind::Add,
            LayerKind::Dense
        ]
    );
    for x in [[1.0, 2.0], [0.5, -3.0], [-1.0, 0.25], [3.0, 1.0]] {
        assert_eq!(output(&split, &x), output(&net, &x));
    }
    // A network without additions is returned as it is.
    let plain = Network::new(vec![net.layers()[2].clone()]).unwrap();
    assert_eq!(split_residuals(&plain).unwrap(), plain);
}

/// A shortcut that is a map of the carried values (a downsampling convolution, say): after
/// the split, the first layer's outputs are each row's own part with the bias, then each
/// row's shortcut part alone, and the addition adds the two.
#[test]
fn a_mapped_shortcut_becomes_outputs_of_its_own() {
    let mut layers = block().layers().to_vec();
    layers[1] = Layer::new(
        Affine::Sparse(
            Sparse::from_rows(
                4,
                vec![
                    vec![(0, 2.0), (1, -1.0), (2, 0.5), (3, -2.0)],
                    vec![(1, 1.5), (3, 3.0)],
                ],
                Array1::from(vec![0.25, -0.5]),
            )
            .unwrap(),
        ),
        true,
    );
    let net = Network::new(layers).unwrap();
    let split = split_residuals(&net).unwrap();
    let parts = &split.layers()[1];
    assert!(!parts.relu);
    for x in [[1.0, 2.0], [0.5, -3.0], [-1.0, 0.25], [3.0, 1.0]] {
        assert_eq!(output(&split, &x), output(&net, &x));
        let trace = forward(&split, &x);
        let h = trace.layer_input(1).to_vec();
        let (h0, h1, x0, x1) = (h[0], h[1], h[2], h[3]);
        let mut a = Vec::new();
        parts.affine.apply_into(&h, &mut a);
        assert_eq!(
            a,
            vec![
                2.0 * h0 - h1 + 0.25,
                1.5 * h1 - 0.5,
                0.5 * x0 - 2.0 * x1,
                3.0 * x1
            ]
        );
    }
}

#[test]
fn the_sum_splits_relevance_in_proportion_to_its_summands_whatever_the_conv_rule() {
    let split = split_residuals(&block()).unwrap();
    let x = [1.0, 2.0];
    let trace = forward(&split, &x);
    // By hand: h = x = (1, 2); conv part c = (2 - 2 + 0.25, 0.5 + 3 - 0.5) = (0.25, 3);
    // sums s = (1.25, 5); output 1.25 + 10 = 11.25, R_s = (1.25, 10).
    let c = [0.25, 3.0];
    let s = [1.25, 5.0];
    let r_s = [1.25, 10.0];
    let settings = DtdSettings {
        rule: Rule::ZPlus,
        layer_rules: vec![dtdcert::dtd::LayerRule {
            layer: 3,
            rule: Rule::Z,
        }],
        ..DtdSettings::default()
    };
    // A composite sets Zennit's Norm (ε = 1e-6) on the addition and z+ on the convolution.
    let mut composite = DtdSettings {
        composite: Some(dtdcert::dtd::Composite::EpsilonPlus),
        ..DtdSettings::default()
    };
    composite.set_layer_kinds(split.kinds());
    assert_eq!(
        composite.resolved_rules(4)[1..],
        [Rule::ZPlus, Rule::Epsilon(1e-6), Rule::Epsilon(1e-6)]
    );
    let e = explain(&split, &trace, &settings, 0, false);
    // Layer 3 (the addition, z rule) gives the conv part c_j / s_j of R_j and the carried
    // value x_j / s_j.
    let at_add = &e.layers[2].lower;
    for j in 0..2 {
        let want_conv = c[j] / s[j] * r_s[j];
        let want_skip = x[j] / s[j] * r_s[j];
        assert!((at_add[j] - want_conv).abs() < 1e-12, "{at_add:?}");
        assert!((at_add[2 + j] - want_skip).abs() < 1e-12, "{at_add:?}");
    }
    // Conserved through the addition, and z+ on the conv part alone passes exactly it.
    let total: f64 = at_add.iter().sum();
    assert!((total - 11.25).abs() < 1e-12);
    let at_conv: f64 = e.layers[1].lower.iter().sum();
    assert!((at_conv - 11.25).abs() < 1e-12, "{}", at_conv);
    // The carried relevance reaches x unchanged through the copies.
    let carried = &e.layers[1].lower;
    let conv_share = |j: usize, i: usize| {
        let w: [[f64; 2]; 2] = [[2.0, -1.0], [0.5, 1.5]];
        let pos: f64 = (0..2).map(|k| x[k] * w[j][k].max(0.0)).sum();
        x[i] * w[j][i].max(0.0) / pos * (c[j] / s[j] * r_s[j])
    };
    for i in 0..2 {
        let want = conv_share(0, i) + conv_share(1, i) + x[i] / s[i] * r_s[i];
        assert!(
            (carried[i] + carried[2 + i] - want).abs() < 1e-12,
            "{carried:?}"
        );
    }
}

/// A residual network exported by PyTorch: read with `split_residual`, each block's addition
/// is a layer of kind `add` after its convolution, and the network computes what it computed.
#[test]
fn residual_additions_read_apart_compute_the_same_function() {
    use dtdcert::model::{forward::output, LoadOptions, Model};
    let path = Path::new("tests/data/onnx/residual_conv_2x6x6_f64_opset17.onnx");
    let merged = Model::load(path).unwrap();
    let options = LoadOptions {
        split_residual: true,
        ..LoadOptions::default()
    };
    let split = Model::load_with(path, &options).unwrap();
    let adds = split
        .net()
        .kinds()
        .iter()
        .filter(|&&k| k == LayerKind::Add)
        .count();
    assert_eq!(adds, 2, "{:?}", split.net().kinds());
    assert_eq!(
        split.net().layers().len(),
        merged.net().layers().len() + adds
    );
    let inputs = dtdcert::model::inputs::load_inputs(
        Path::new("tests/data/onnx/residual_conv_2x6x6_f64_opset17.inputs.npy"),
        None,
    )
    .unwrap();
    for i in 0..inputs.len() {
        let x = inputs.row(i).unwrap();
        let (a, b) = (output(merged.net(), &x), output(split.net(), &x));
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() <= 1e-12 * (1.0 + u.abs()), "{a:?} vs {b:?}");
        }
    }
}
