//! The relation network as a chain of IR layers: its forward pass equals the network written
//! out pair by pair, its verdicts in f64 equal the exact ones, and the Taylor expansion is
//! exact at its inside roots; a description written as PyTorch writes its weights loads.

mod util;

use dtdcert::dtd::{DtdSettings, Rule};
use dtdcert::model::forward::output;
use dtdcert::model::ir::Dense;
use dtdcert::model::relnet::{BatchNorm, ConvBlock, Options, RelationNetwork};
use dtdcert::model::{Affine, LoadOptions, Model};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use util::{taylor_exact_at_inside_roots, verdicts_agree};

/// Values exactly representable in f32, as trained weights are.
fn draw(rng: &mut ChaCha8Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|_| (rng.random_range(-1.0..1.0) * scale) as f32 as f64)
        .collect()
}

fn dense(rng: &mut ChaCha8Rng, out: usize, inp: usize) -> Dense {
    let scale = 1.5 / (inp as f64).sqrt();
    Dense::new(
        Array2::from_shape_vec((out, inp), draw(rng, out * inp, scale)).unwrap(),
        Array1::from(draw(rng, out, 0.1)),
    )
    .unwrap()
}

/// 2×side×side images; conv 2→4 and 4→4 (3×3, stride 2, pad 1, batch norm): 3×3 = 9
/// objects for side 9, 2×2 = 4 for side 7, of 4 channels and 2 coordinates; a question of 3
/// values; g = 15→8→8, f = 8→6→4.
fn small(
    seed: u64,
    with_bias: bool,
    side: usize,
) -> (RelationNetwork, Vec<ConvBlock>, Vec<Dense>, Vec<Dense>) {
    let rng = &mut ChaCha8Rng::seed_from_u64(seed);
    let mut conv = Vec::new();
    for (out, inp) in [(4, 2), (4, 4)] {
        let kernel = draw(rng, out * inp * 9, 0.6);
        conv.push(ConvBlock {
            kernel,
            shape: [out, inp, 3, 3],
            bias: with_bias.then(|| draw(rng, out, 0.1)),
            stride: 2,
            padding: 1,
            batch_norm: Some(BatchNorm {
                scale: draw(rng, out, 1.0).iter().map(|v| 1.0 + v / 2.0).collect(),
                shift: draw(rng, out, 0.2),
                mean: draw(rng, out, 0.2),
                var: draw(rng, out, 0.5).iter().map(|v| 1.0 + v).collect(),
                eps: 1e-5,
            }),
        });
    }
    let g = vec![dense(rng, 8, 15), dense(rng, 8, 8)];
    let f = vec![dense(rng, 6, 8), dense(rng, 4, 6)];
    let rn =
        RelationNetwork::new([2, side, side], conv.clone(), None, 3, g.clone(), f.clone()).unwrap();
    (rn, conv, g, f)
}

/// The network written out: convolutions by their definition, objects, every ordered pair
/// `[object a, object b, question]` through g, the sum, and f.
fn by_hand(
    conv: &[ConvBlock],
    g: &[Dense],
    f: &[Dense],
    x: &[f64],
    side: usize,
    q: &[f64],
) -> Vec<f64> {
    let (mut maps, mut h) = (x.to_vec(), side);
    let mut c = 2;
    for block in conv {
        let [out, inp, k, _] = block.shape;
        let ho = (h + 2 * block.padding - k) / block.stride + 1;
        let bn = block.batch_norm.as_ref().unwrap();
        let mut next = vec![0.0; out * ho * ho];
        for o in 0..out {
            for i in 0..ho {
                for j in 0..ho {
                    let mut z = block.bias.as_ref().map_or(0.0, |b| b[o]);
                    for ch in 0..inp {
                        for u in 0..k {
                            for v in 0..k {
                                let r = (i * block.stride + u) as i64 - block.padding as i64;
                                let s = (j * block.stride + v) as i64 - block.padding as i64;
                                if r >= 0 && s >= 0 && (r as usize) < h && (s as usize) < h {
                                    z += block.kernel[((o * inp + ch) * k + u) * k + v]
                                        * maps[(ch * h + r as usize) * h + s as usize];
                                }
                            }
                        }
                    }
                    let y =
                        (z - bn.mean[o]) / (bn.var[o] + bn.eps).sqrt() * bn.scale[o] + bn.shift[o];
                    next[(o * ho + i) * ho + j] = y.max(0.0);
                }
            }
        }
        assert_eq!(inp, c);
        (maps, h, c) = (next, ho, out);
    }
    let n = h * h;
    let coord = |k: usize| -4.0 + 8.0 * k as f64 / (h - 1) as f64;
    let object = |o: usize| -> Vec<f64> {
        let mut v: Vec<f64> = (0..c).map(|ch| maps[ch * n + o]).collect();
        v.push(coord(o % h));
        v.push(coord(o / h));
        v
    };
    let mlp = |layers: &[Dense], mut v: Vec<f64>, last_relu: bool| {
        for (i, d) in layers.iter().enumerate() {
            v = (0..d.weight().nrows())
                .map(|r| {
                    let z = d.row(r).iter().zip(&v).map(|(w, x)| w * x).sum::<f64>() + d.bias()[r];
                    if last_relu || i + 1 < layers.len() {
                        z.max(0.0)
                    } else {
                        z
                    }
                })
                .collect();
        }
        v
    };
    let width = g.last().unwrap().weight().nrows();
    let mut sum = vec![0.0; width];
    for a in 0..n {
        for b in 0..n {
            let mut pair = object(a);
            pair.extend(object(b));
            pair.extend_from_slice(q);
            for (s, v) in sum.iter_mut().zip(mlp(g, pair, true)) {
                *s += v;
            }
        }
    }
    mlp(f, sum, false)
}

#[test]
fn the_chain_computes_the_relation_network() {
    for seed in 0..6u64 {
        let (rn, conv, g, f) = small(seed, seed % 2 == 0, 9);
        assert_eq!((rn.objects(), rn.outputs(), rn.question_width()), (9, 4, 3));
        let mut rng = ChaCha8Rng::seed_from_u64(100 + seed);
        for keep in [false, true] {
            let options = Options {
                keep_batch_norm: keep,
            };
            let q = [1.0, 0.0, rng.random_range(-1.0..1.0)];
            let net = rn.network(&q, options).unwrap();
            // conv, [bn,] conv, [bn,] pairs + g[0], g[1], sum, f[0], f[1]
            assert_eq!(net.layers().len(), if keep { 9 } else { 7 });
            let kinds: Vec<String> = net.kinds().iter().map(ToString::to_string).collect();
            let blocks = if keep {
                "conv batchnorm conv batchnorm"
            } else {
                "conv conv"
            };
            assert_eq!(
                kinds.join(" "),
                format!("{blocks} dense dense pool dense dense")
            );
            let shared = net
                .layers()
                .iter()
                .filter(|l| matches!(l.affine, Affine::Shared(_)))
                .count();
            assert_eq!(shared, 1);
            for _ in 0..4 {
                let x = draw(&mut rng, 2 * 81, 1.0);
                let got = output(&net, &x);
                let want = by_hand(&conv, &g, &f, &x, 9, &q);
                for (a, b) in got.iter().zip(&want) {
                    assert!(
                        (a - b).abs() <= 1e-10 * (1.0 + b.abs()),
                        "seed {seed}, keep {keep}: {got:?} vs {want:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn verdicts_and_taylor_exactness_on_relation_networks() {
    let (mut compared, mut inside) = (0, 0);
    for seed in 0..2u64 {
        let (rn, ..) = small(seed, true, 7);
        let mut rng = ChaCha8Rng::seed_from_u64(200 + seed);
        let q = [0.0, 1.0, 0.5];
        let model = Model::new(rn.network(&q, Options::default()).unwrap());
        for rule in [Rule::ZPlus, Rule::Z, Rule::WSquare] {
            let settings = DtdSettings {
                rule,
                ..DtdSettings::default()
            };
            let x = draw(&mut rng, 2 * 49, 1.0);
            compared += verdicts_agree(&model, &x, &settings).unwrap();
            // The exact expansions cost a rational forward pass per root: one rule, one net.
            if seed == 0 && rule == Rule::ZPlus {
                inside += taylor_exact_at_inside_roots(&model, &x, &settings).unwrap();
            }
        }
    }
    // Not vacuous: roots were compared and expansions checked.
    assert!(compared > 300, "{compared} roots compared");
    assert!(inside > 10, "{inside} inside roots checked");
}

#[test]
fn mismatched_relation_networks_are_refused() {
    let rng = ChaCha8Rng::seed_from_u64(9);
    let (rn, ..) = small(9, false, 9);
    let e = rn
        .network(&[1.0, 0.0], Options::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the question has 2 values; the network takes 3"),
        "{e}"
    );
    let conv = || ConvBlock {
        kernel: vec![0.5; 4 * 2 * 9],
        shape: [4, 2, 3, 3],
        bias: None,
        stride: 2,
        padding: 1,
        batch_norm: None,
    };
    let g = |inp| vec![dense(&mut rng.clone(), 8, inp)];
    let f = || vec![dense(&mut ChaCha8Rng::seed_from_u64(1), 4, 8)];
    // 4 channels + 2 coordinates per object, twice, plus a question of 3: 15 inputs.
    let e = RelationNetwork::new([2, 9, 9], vec![conv()], None, 3, g(14), f())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("g[0] takes 14 inputs") && e.contains("need 15"),
        "{e}"
    );
    let e = RelationNetwork::new([3, 9, 9], vec![conv()], None, 3, g(15), f())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("conv[0]") && e.contains("3 input channels"),
        "{e}"
    );
    let e = RelationNetwork::new(
        [2, 9, 9],
        vec![conv()],
        Some(vec![[0.0, 0.0]; 4]),
        3,
        g(15),
        f(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("4 coordinate pairs for 25 objects"), "{e}");
}

/// tests/data/relnet/ (scripts/make_relnet_fixture.py): a relation network built and run in
/// PyTorch 2.11.0, with batch norm in eval mode; its outputs on four images and questions.
#[test]
fn a_relation_network_written_by_pytorch_loads_and_matches_its_outputs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/relnet");
    let rn = RelationNetwork::load(&dir.join("rn.json")).unwrap();
    assert_eq!(
        (rn.image(), rn.objects(), rn.question_width()),
        ([3, 20, 20], 9, 5)
    );
    let read = |name: &str| -> Array2<f64> { ndarray_npy::read_npy(dir.join(name)).unwrap() };
    let (images, questions, outputs) = (
        read("images.npy"),
        read("questions.npy"),
        read("outputs.npy"),
    );
    let mut spread = 0.0f64;
    for s in 0..images.nrows() {
        let q = questions.row(s).to_vec();
        for keep in [false, true] {
            let net = rn
                .network(
                    &q,
                    Options {
                        keep_batch_norm: keep,
                    },
                )
                .unwrap();
            let got = output(&net, &images.row(s).to_vec());
            for (a, b) in got.iter().zip(outputs.row(s)) {
                assert!(
                    (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                    "sample {s}: {got:?} vs {:?}",
                    outputs.row(s)
                );
            }
        }
        // The question matters: the same image under another question answers differently.
        let other = rn
            .network(&questions.row((s + 1) % 4).to_vec(), Options::default())
            .unwrap();
        let moved = output(&other, &images.row(s).to_vec());
        spread = spread.max(
            moved
                .iter()
                .zip(outputs.row(s))
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max),
        );
    }
    assert!(spread > 1e-6, "outputs do not depend on the question");
}

/// The same network as `torch.onnx.export` writes it (tests/data/relnet/rn*.onnx: Conv with
/// the batch norm folded by the exporter, Concat with the coordinate channels, Transpose,
/// Unsqueeze, Expand, Concat with the question, Gemm on all pairs, ReduceSum): read tensor by
/// tensor with the question as a constant, it is the chain of the description, layer for layer,
/// and computes PyTorch's outputs.
#[test]
fn the_relation_network_exported_to_onnx_is_the_chain_of_its_description() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/relnet");
    let rn = RelationNetwork::load(&dir.join("rn.json")).unwrap();
    let read = |name: &str| -> Array2<f64> { ndarray_npy::read_npy(dir.join(name)).unwrap() };
    let (images, questions, outputs) = (
        read("images.npy"),
        read("questions.npy"),
        read("outputs.npy"),
    );
    let kind = |a: &Affine| match a {
        Affine::Dense(_) => "dense",
        Affine::Sparse(_) => "sparse",
        Affine::Shared(_) => "shared",
        Affine::Conv(_) => "conv",
        Affine::Blocks(_) => "blocks",
    };
    // The dynamo export, and the TorchScript export with a static and with a dynamic batch,
    // whose shape arithmetic (Shape, Gather, ConstantOfShape, Equal, Where, Range, Cast, ...)
    // is folded into constants.
    let files = ["rn.onnx", "rn_legacy.onnx", "rn_legacy_dynamic.onnx"];
    for (s, file) in (0..images.nrows()).flat_map(|s| files.map(|f| (s, f))) {
        let q = questions.row(s).to_vec();
        let options = LoadOptions {
            question: Some(q.clone()),
            ..LoadOptions::default()
        };
        let onnx =
            Model::load_with(&dir.join(file), &options).unwrap_or_else(|e| panic!("{file}: {e}"));
        let described = rn.network(&q, Options::default()).unwrap();
        let (a, b) = (onnx.net().layers(), described.layers());
        assert_eq!(onnx.net().widths(), described.widths());
        assert_eq!(a.len(), b.len());
        // Both readings tag each layer with the same kind of operator.
        assert_eq!(onnx.net().kinds(), described.kinds(), "{file}");
        for (k, (la, lb)) in a.iter().zip(b).enumerate() {
            assert_eq!(la.relu, lb.relu, "layer {}", k + 1);
            assert_eq!(kind(&la.affine), kind(&lb.affine), "layer {}", k + 1);
            assert_eq!(
                la.affine.stored_weights(),
                lb.affine.stored_weights(),
                "layer {}",
                k + 1
            );
            for j in 0..la.affine.out_dim() {
                let (ra, rb) = (la.affine.row(j), lb.affine.row(j));
                let (ea, eb): (Vec<_>, Vec<_>) = (ra.entries().collect(), rb.entries().collect());
                assert_eq!(ea.len(), eb.len(), "layer {} row {j}", k + 1);
                for ((ia, wa), (ib, wb)) in ea.iter().zip(&eb) {
                    assert_eq!(ia, ib, "layer {} row {j}", k + 1);
                    // The exporter folds batch norm in its own arithmetic.
                    assert!(
                        (**wa - **wb).abs() <= 1e-12 * (1.0 + wb.abs()),
                        "layer {} row {j}: {wa} vs {wb}",
                        k + 1
                    );
                }
                let (ba, bb) = (la.affine.bias(j), lb.affine.bias(j));
                assert!((ba - bb).abs() <= 1e-12 * (1.0 + bb.abs()));
            }
        }
        let got = output(onnx.net(), &images.row(s).to_vec());
        for (a, b) in got.iter().zip(outputs.row(s)) {
            assert!(
                (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                "sample {s}: {got:?} vs {:?}",
                outputs.row(s)
            );
        }
    }
    // The graph's second input is the question: it must be given, with its width.
    let path = dir.join("rn.onnx");
    let e = Model::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("rn.onnx") && e.contains("'question'") && e.contains("--question"),
        "{e}"
    );
    let short = LoadOptions {
        question: Some(vec![1.0; 4]),
        ..LoadOptions::default()
    };
    let e = Model::load_with(&path, &short).unwrap_err().to_string();
    assert!(e.contains("takes 5 values") && e.contains("gives 4"), "{e}");
}

#[test]
fn broken_relation_network_descriptions_name_the_file_and_place() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/relnet");
    std::fs::copy(
        src.join("rn.safetensors"),
        dir.path().join("rn.safetensors"),
    )
    .unwrap();
    let good = std::fs::read_to_string(src.join("rn.json")).unwrap();
    for (edit, words) in [
        (
            good.replace("\"g.2.weight\"", "\"g.9.weight\""),
            vec!["rn.json", "g[1]", "g.9.weight"],
        ),
        (
            good.replace("\"question\": 5", "\"question\": 4"),
            vec!["rn.json", "g[0] takes 25 inputs"],
        ),
        (
            good.replace("\"conv.0.weight\"", "\"g.0.weight\""),
            vec!["rn.json", "conv[0]", "not [out, in, k, k]"],
        ),
        (
            good.replace("\"stride\": 2", "\"stride\": 2, \"dilation\": 2"),
            vec!["rn.json", "unknown field `dilation`"],
        ),
        (
            good.replace("dtdcert-relation-network", "dtdcert-mlp"),
            vec!["rn.json", "expected \"dtdcert-relation-network\""],
        ),
    ] {
        let path = dir.path().join("rn.json");
        std::fs::write(&path, edit).unwrap();
        let e = format!("{:#}", RelationNetwork::load(&path).unwrap_err());
        for w in words {
            assert!(e.contains(w), "{e} lacks {w}");
        }
    }
}

/// Sizes are checked before anything is built: 4096² objects would make 2.8·10^14 pairs.
#[test]
fn relation_networks_too_large_to_store_are_refused_before_building() {
    let conv = ConvBlock {
        kernel: vec![1.0],
        shape: [1, 1, 1, 1],
        bias: None,
        stride: 1,
        padding: 0,
        batch_norm: None,
    };
    let rng = &mut ChaCha8Rng::seed_from_u64(5);
    let e = RelationNetwork::new(
        [1, 4096, 4096],
        vec![conv],
        None,
        1,
        vec![dense(rng, 4, 7)],
        vec![dense(rng, 2, 4)],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("g[0] on all 16777216² pairs") && e.contains("2^26"),
        "{e}"
    );
}

/// The reference code's convention, batch norm passing relevance through unchanged: batch
/// norm kept as its own layer, the z rule there and biases ignored. Each kept relevance is
/// `w · (R / (w a)) · a` in f64, so equal to `R` within a few rounding errors.
#[test]
fn kept_batch_norm_with_the_z_rule_passes_relevance_through_unchanged() {
    use dtdcert::dtd::{explain, BiasMode, LayerRule};
    use dtdcert::model::forward::forward;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/relnet");
    let rn = RelationNetwork::load(&dir.join("rn.json")).unwrap();
    let images: Array2<f64> = ndarray_npy::read_npy(dir.join("images.npy")).unwrap();
    let q = [1.0, 0.0, 0.0, 1.0, 0.0];
    let net = rn
        .network(
            &q,
            Options {
                keep_batch_norm: true,
            },
        )
        .unwrap();
    // conv, bn, conv, bn, conv, bn, pairs, g, sum, f, f: batch norm at layers 2, 4 and 6.
    let bn_layers = [2, 4, 6];
    let settings = DtdSettings {
        rule: Rule::ZPlus,
        bias: BiasMode::Ignore,
        layer_rules: bn_layers
            .iter()
            .map(|&layer| LayerRule {
                layer,
                rule: Rule::Z,
            })
            .collect(),
        ..DtdSettings::default()
    };
    let mut passed = 0;
    for s in 0..images.nrows() {
        let trace = forward(&net, &images.row(s).to_vec());
        let e = explain(&net, &trace, &settings, 0, false);
        for layer in bn_layers {
            let step = &e.layers[layer - 1];
            for (i, (lo, up)) in step.lower.iter().zip(&step.upper).enumerate() {
                // A zero input has no root: its relevance stays with the neuron.
                if trace.layer_input(layer - 1)[i] != 0.0 {
                    assert!(
                        (lo - up).abs() <= 1e-14 * up.abs(),
                        "sample {s}, layer {layer}, position {i}: {lo} vs {up}"
                    );
                    passed += usize::from(*up != 0.0);
                }
            }
        }
    }
    assert!(passed > 500, "{passed} nonzero relevances compared");
}
