//! Full-backward DTD (the paper's Algorithm 1): properties on random small networks in exact
//! rationals, the shipped C6 network (`examples/c6/`), and `dtdcert explain --full-backward`.

mod util;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use dtdcert::dtd::full_backward::{
    full_backward, full_backward_decided, upper_relevance, worst_case_evaluations, Decided,
    Expansion, FullBackward, FullBackwardSettings, RootFinder, RuleRoots,
};
use dtdcert::dtd::{explain, BiasMode, DtdSettings, RootOutcome, Rule};
use dtdcert::exact::scalar::dot;
use dtdcert::exact::{Rational, Scalar};
use dtdcert::model::forward::{argmax, forward};
use dtdcert::model::inputs::load_inputs;
use dtdcert::model::ir::dense_layer;
use dtdcert::model::{Model, Network};
use dtdcert::region::{membership, Pattern};
use dtdcert::{Error, Result};
use ndarray::{s, Array2};
use ndarray_npy::read_npy;
use proptest::prelude::*;
use rayon::prelude::*;
use serde_json::Value;
use util::{hyperplane_rules, network_and_input, to_exact, weight};

const MODEL: &str = "examples/c6/model.onnx";
const INPUTS: &str = "examples/c6/inputs.npy";

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn root_rules() -> impl Strategy<Value = Rule> {
    prop_oneof![
        Just(Rule::Zero),
        Just(Rule::Z),
        Just(Rule::ZPlus),
        Just(Rule::Gamma(0.25)),
        Just(Rule::WSquare),
        Just(Rule::ZBox { lo: -1.0, hi: 1.0 }),
    ]
}

fn dtd(rule: Rule) -> DtdSettings {
    DtdSettings {
        rule,
        input_rule: None,
        bias: BiasMode::Ignore,
        stabilizer: 0.0,
        denominator_threshold: 1e-5,
        ..DtdSettings::default()
    }
}

fn top(out: &[Rational]) -> usize {
    argmax(&out.iter().map(Scalar::to_f64).collect::<Vec<_>>())
}

fn sum(v: &[Rational]) -> Rational {
    v.iter().fold(Rational::zero(), |acc, x| acc + x)
}

/// One dense layer, with or without ReLU.
fn one_layer() -> impl Strategy<Value = (Network, Vec<f64>)> {
    (1usize..=5, 1usize..=3, any::<bool>())
        .prop_flat_map(|(d, m, relu)| {
            (
                prop::collection::vec(weight(), m * d),
                prop::collection::vec(weight(), m),
                Just((d, m, relu)),
                prop::collection::vec((-8i32..=8).prop_map(|k| k as f64 / 4.0), d),
            )
        })
        .prop_map(|(w, b, (d, m, relu), x)| {
            let net = Network::new(vec![dense_layer(m, d, w, b, relu).unwrap()]).unwrap();
            (net, x)
        })
}

/// A random MLP with generic f32 weights (no grid): exact ties between pre-activations do
/// not happen, so a piecewise-linear function is linear near any point it is evaluated at.
fn generic_network_and_input() -> impl Strategy<Value = (Network, Vec<f64>)> {
    let value = || (-2.0f64..2.0).prop_map(|v| v as f32 as f64);
    (
        1usize..=4,
        prop::collection::vec(1usize..=4, 1..=2),
        1usize..=2,
    )
        .prop_flat_map(move |(input, hidden, outputs)| {
            let mut widths = vec![input];
            widths.extend(hidden);
            widths.push(outputs);
            let shapes: Vec<(usize, usize)> = widths.windows(2).map(|w| (w[1], w[0])).collect();
            let params: Vec<_> = shapes
                .iter()
                .map(|&(r, c)| {
                    (
                        prop::collection::vec(value(), r * c),
                        prop::collection::vec(value(), r),
                    )
                })
                .collect();
            let x = prop::collection::vec((0.0f64..2.0).prop_map(|v| v as f32 as f64), input);
            (Just(shapes), params, x)
        })
        .prop_map(|(shapes, params, x)| {
            let layers = shapes
                .into_iter()
                .zip(params)
                .map(|((r, c), (w, b))| dense_layer(r, c, w, b, true).unwrap())
                .collect();
            (Network::new(layers).unwrap(), x)
        })
}

/// Roots that do not move: for every neuron, the train-free root at the explained input,
/// whatever point and relevance the recursion asks about. With them the upper relevance
/// function really has fixed roots.
struct PinnedRoots {
    roots: Vec<Vec<Option<Vec<Rational>>>>,
}

impl PinnedRoots {
    fn new(net: &Network<Rational>, x: &[Rational], k: usize, rule: Rule) -> Self {
        let trace = forward(net, x);
        let e = explain(net, &trace, &dtd(rule), k, true);
        Self {
            roots: e
                .layers
                .iter()
                .map(|l| {
                    l.neurons
                        .iter()
                        .map(|n| match &n.outcome {
                            RootOutcome::Root { point, .. } => Some(point.clone()),
                            RootOutcome::None(_) => None,
                        })
                        .collect()
                })
                .collect(),
        }
    }
}

impl RootFinder<Rational> for PinnedRoots {
    fn root(
        &self,
        layer: usize,
        neuron: usize,
        _: &[Rational],
        _: Rational,
    ) -> Result<Option<Vec<Rational>>> {
        Ok(self.roots[layer][neuron].clone())
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// On a one-layer network full-backward DTD is train-free DTD: the upper relevance
    /// function is the output itself, the root lies on the output's face (w_k · ã = w_k · a −
    /// f_k with the bias ignored), and the gradient on the side facing the input is w_k.
    #[test]
    fn one_layer_networks_equal_train_free((net, x) in one_layer(), rule in hyperplane_rules()) {
        let net = net.to_exact();
        let x = to_exact(&x);
        let trace = forward(&net, &x);
        let k = top(trace.output());
        let s = dtd(rule);
        let fb = full_backward(&net, &x, k, &FullBackwardSettings::default(), &RuleRoots::new(&net, &s)).unwrap();
        let f = trace.output()[k].clone();
        prop_assert_eq!(&fb.output, &f);
        if f.is_positive() {
            let tf = explain(&net, &trace, &s, k, false);
            prop_assert_eq!(fb.input_relevance(), tf.input_relevance());
        } else {
            // Nothing to expand: nothing passes down, all of f_k is remainder.
            prop_assert!(fb.input_relevance().iter().all(Scalar::is_zero));
            prop_assert_eq!(fb.remainder(), f);
        }
    }

}

proptest! {
    #![proptest_config(config(300))]

    /// The bookkeeping adds up exactly: each layer passes down what the layer below
    /// receives; per neuron and per layer relevance = passed + remainder + Taylor error; the
    /// conservation gap is the sum of the Taylor errors; the count stays within the bound.
    #[test]
    fn accounting_adds_up_exactly(
        (model, x) in network_and_input(-1.0, 1.0),
        rule in prop_oneof![root_rules(), Just(Rule::Epsilon(0.25)), Just(Rule::Flat)],
        input_rule in root_rules(),
    ) {
        let net = model.exact();
        let x = to_exact(&x);
        let trace = forward(net, &x);
        let k = top(trace.output());
        let mut s = dtd(rule);
        s.input_rule = Some(input_rule);
        let fb = full_backward(net, &x, k, &FullBackwardSettings::default(), &RuleRoots::new(net, &s)).unwrap();
        prop_assert_eq!(&fb.output, &trace.output()[k]);
        let top_layer = fb.layers.last().unwrap();
        for (j, r) in top_layer.upper.iter().enumerate() {
            prop_assert_eq!(r.clone(), if j == k { fb.output.clone() } else { Rational::zero() });
        }
        for pair in fb.layers.windows(2) {
            prop_assert_eq!(&pair[0].upper, &pair[1].lower);
        }
        let mut taylor = Rational::zero();
        for layer in &fb.layers {
            let passed: Rational = layer.neurons.iter().fold(Rational::zero(), |acc, n| acc + &n.passed);
            prop_assert_eq!(sum(&layer.lower), passed);
            for n in &layer.neurons {
                if !matches!(n.expansion, Expansion::Root { .. }) {
                    prop_assert!(n.passed.is_zero());
                    prop_assert_eq!(&n.remainder, &n.relevance);
                }
            }
            let per_neuron = layer.neurons.iter().fold(Rational::zero(), |acc, n| acc + n.taylor_error());
            prop_assert_eq!(layer.taylor_error(), per_neuron);
            taylor += layer.taylor_error();
        }
        prop_assert_eq!(fb.conservation_gap(), taylor);
        prop_assert!(fb.evaluations <= worst_case_evaluations(net, 0));
    }

}

proptest! {
    // Exact rationals through every nested root of up to four layers: the slow property.
    #![proptest_config(config(100))]

    /// Where a root lies in its input's linear region P_l(x), neuron j has one activation on
    /// the whole segment from the root to a, so the first-order expansion of the frozen upper
    /// relevance function is exact: R̂_j(a) = R_j(ã_j) + g_j · (a − ã_j), in rationals.
    #[test]
    fn roots_in_the_region_expand_the_frozen_function_exactly(
        (model, x) in network_and_input(0.0, 2.0),
        rule in root_rules(),
    ) {
        let net = model.exact();
        let x = to_exact(&x);
        check_frozen_expansion(net, &x, rule);
    }

}

proptest! {
    #![proptest_config(config(200))]

    /// The default f64 run decides every branch as exact arithmetic does: on random MLPs with
    /// grid weights (exact ties, roots on faces), with or without biases in the rules'
    /// denominators, its decisions (neurons expanded, sides of faces, zero gradient entries)
    /// are the exact run's and its values agree within `AGREE`.
    #[test]
    fn decided_f64_agrees_with_exact(
        (model, x) in network_and_input(-1.0, 1.0),
        rule in root_rules(),
        bias in prop_oneof![Just(BiasMode::Ignore), Just(BiasMode::Include), Just(BiasMode::Plain)],
    ) {
        let mut s = dtd(rule);
        s.bias = bias;
        let settings = FullBackwardSettings::default();
        let decided = full_backward_decided(&model, &x, None, &s, &settings).unwrap();
        let net = model.exact();
        let xr = to_exact(&x);
        let k = top(forward(net, &xr).output());
        let e = full_backward(net, &xr, k, &settings, &RuleRoots::new(net, &s)).unwrap();
        agrees_with_exact(&decided, &e);
    }
}

proptest! {
    #![proptest_config(config(300))]

    /// With roots that do not move, the upper relevance function (re-evaluated through the
    /// whole recursion) is piecewise linear, and g_j is its exact one-sided derivative at the
    /// root toward a: R_j(ã + ε (a − ã)) = R_j(ã) + ε g_j · (a − ã) for small ε, in rationals.
    #[test]
    fn gradient_is_the_derivative_of_the_upper_relevance_with_pinned_roots(
        (net, x) in generic_network_and_input(),
        rule in prop_oneof![Just(Rule::Z), Just(Rule::ZPlus), Just(Rule::Gamma(0.5)), Just(Rule::WSquare)],
    ) {
        let net = net.to_exact();
        let x = to_exact(&x);
        let k = top(forward(&net, &x).output());
        let pinned = PinnedRoots::new(&net, &x, k, rule);
        let settings = FullBackwardSettings::default();
        let fb = full_backward(&net, &x, k, &settings, &pinned).unwrap();
        let eps = Rational::from_f64(2f64.powi(-40));
        for (index, layer) in fb.layers.iter().enumerate() {
            let a = forward(&net, &x).layer_input(index).to_vec();
            for (j, n) in layer.neurons.iter().enumerate() {
                let Expansion::Root { point, gradient, .. } = &n.expansion else { continue };
                let at = |p: &[Rational]| {
                    upper_relevance(&net, index, p, k, &settings, &pinned).unwrap().relevance[j].clone()
                };
                prop_assert_eq!(at(point), n.remainder.clone());
                let d: Vec<Rational> = a.iter().zip(point).map(|(ai, pi)| ai - pi).collect();
                let near: Vec<Rational> = point.iter().zip(&d).map(|(pi, di)| pi + &eps * di).collect();
                prop_assert_eq!(
                    at(&near),
                    n.remainder.clone() + eps.clone() * dot(gradient, &d),
                    "layer {} neuron {}", index, j
                );
            }
        }
    }
}

/// Checks the frozen expansion at every root in its region; returns how many it checked.
fn check_frozen_expansion(net: &Network<Rational>, x: &[Rational], rule: Rule) -> usize {
    let trace = forward(net, x);
    let k = top(trace.output());
    let pattern = Pattern::from_pre(net, &trace.pre);
    let fb = full_backward(
        net,
        x,
        k,
        &FullBackwardSettings::default(),
        &RuleRoots::new(net, &dtd(rule)),
    )
    .unwrap();
    let mut checked = 0;
    for (index, layer) in fb.layers.iter().enumerate() {
        let a = trace.layer_input(index);
        for (j, n) in layer.neurons.iter().enumerate() {
            let Expansion::Root {
                point,
                gradient,
                frozen,
            } = &n.expansion
            else {
                continue;
            };
            if !membership(net, &pattern, index, point).is_inside() {
                continue;
            }
            let d: Vec<Rational> = a.iter().zip(point).map(|(ai, pi)| ai - pi).collect();
            assert_eq!(
                frozen.clone(),
                n.remainder.clone() + dot(gradient, &d),
                "layer {index} neuron {j}"
            );
            assert_eq!(n.passed, dot(gradient, &d));
            checked += 1;
        }
    }
    checked
}

// ---------------------------------------------------------------------------------------------
// The C6 network

fn c6() -> (Model, Vec<Vec<f64>>) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let model = Model::load(&root.join(MODEL)).unwrap();
    let inputs = load_inputs(&root.join(INPUTS), None).unwrap();
    let rows = (0..inputs.len()).map(|i| inputs.row(i).unwrap()).collect();
    (model, rows)
}

fn c6_f64(model: &Model, x: &[f64], rule: Rule) -> FullBackward<f64> {
    let net = model.net();
    full_backward(
        net,
        x,
        0,
        &FullBackwardSettings::default(),
        &RuleRoots::new(net, &dtd(rule)),
    )
    .unwrap()
}

/// What full-backward DTD decided, neuron by neuron: not expanded (and why), or expanded with
/// which gradient entries zero (the root's side of its face and the upper slope `c_j` decide
/// them).
fn decisions<T: Scalar>(fb: &FullBackward<T>) -> Vec<Vec<String>> {
    fb.layers
        .iter()
        .map(|l| {
            l.neurons
                .iter()
                .map(|n| match &n.expansion {
                    Expansion::NotPositive => "not-positive".to_string(),
                    Expansion::NoRoot(why) => format!("no-root {why:?}"),
                    Expansion::Root { gradient, .. } => gradient
                        .iter()
                        .map(|g| if g.is_zero() { '0' } else { 'g' })
                        .collect(),
                })
                .collect()
        })
        .collect()
}

/// The relative tolerance within which the f64 values of an explanation decided in f64 meet
/// the exact ones: every value (output, relevances, what each neuron passed, remainders,
/// gradients) within `AGREE · (|exact value| + max(1, |f_k(x)|))`.
const AGREE: f64 = 1e-9;

/// The default f64 run (`Decided`) and the exact one make the same decisions, so the same
/// neurons expand, on the same side of every face, with the same zero gradient entries and
/// the same number of evaluations; and their values agree within [`AGREE`]. Returns the
/// largest relative difference.
fn agrees_with_exact(decided: &Decided, e: &FullBackward<Rational>) -> f64 {
    let f = decided.to_f64();
    assert_eq!(f.explained, e.explained);
    assert_eq!(decisions(&f), decisions(e));
    assert_eq!(f.evaluations, e.evaluations);
    let scale = e.output.to_f64().abs().max(1.0);
    let mut worst: f64 = 0.0;
    let mut close = |a: f64, b: &Rational| {
        let b = b.to_f64();
        let rel = (a - b).abs() / (b.abs() + scale);
        assert!(rel <= AGREE, "{a} vs {b}");
        worst = worst.max(rel);
    };
    close(f.output, &e.output);
    for (fl, el) in f.layers.iter().zip(&e.layers) {
        for (a, b) in fl
            .upper
            .iter()
            .zip(&el.upper)
            .chain(fl.lower.iter().zip(&el.lower))
        {
            close(*a, b);
        }
        for (fnn, en) in fl.neurons.iter().zip(&el.neurons) {
            close(fnn.passed, &en.passed);
            close(fnn.remainder, &en.remainder);
            if let (Expansion::Root { gradient: gf, .. }, Expansion::Root { gradient: ge, .. }) =
                (&fnn.expansion, &en.expansion)
            {
                for (a, b) in gf.iter().zip(ge) {
                    close(*a, b);
                }
            }
        }
    }
    worst
}

/// On every input of the shipped example, the default f64 run (`explain --full-backward`) and
/// `--exact` make the same decisions (which neurons expand, each root's side of its face,
/// which gradient entries vanish) and agree within [`AGREE`]; full-backward DTD is not
/// conservative: the gap is reported, and equals the Taylor errors of the layers.
#[test]
fn c6_f64_agrees_with_exact_and_the_gap_is_reported() {
    let (model, rows) = c6();
    let s = dtd(Rule::ZPlus);
    let settings = FullBackwardSettings::default();
    let results: Vec<(bool, f64, bool)> = rows
        .par_iter()
        .enumerate()
        .map(|(i, x)| {
            let decided = full_backward_decided(&model, x, Some(0), &s, &settings).unwrap();
            let net = model.exact();
            let e =
                full_backward(net, &to_exact(x), 0, &settings, &RuleRoots::new(net, &s)).unwrap();
            // In f64, the decided run is the plain f64 recursion.
            if let Decided::Float(fd) = &decided {
                assert_eq!(*fd, c6_f64(&model, x, Rule::ZPlus), "input {i}");
            }
            let worst = agrees_with_exact(&decided, &e);
            let taylor = e
                .layers
                .iter()
                .fold(Rational::zero(), |acc, l| acc + l.taylor_error());
            assert_eq!(e.conservation_gap(), taylor, "input {i}");
            let scale = e.output.to_f64().abs().max(1.0);
            let gap = e.conservation_gap().abs().to_f64() > 1e-6 * scale;
            (matches!(decided, Decided::Float(_)), worst, gap)
        })
        .collect();
    // Agreement is no accident of falling back to rationals: inputs were decided in f64.
    assert!(results.iter().any(|r| r.0));
    assert!(
        results.iter().any(|r| r.2),
        "some input is not conservative"
    );
}

/// On the shipped network, every root that lies in its region expands the frozen function
/// exactly; and there are such roots.
#[test]
fn c6_roots_in_the_region_expand_the_frozen_function_exactly() {
    let (model, rows) = c6();
    let checked: usize = rows
        .iter()
        .step_by(20)
        .map(|x| check_frozen_expansion(model.exact(), &to_exact(x), Rule::ZPlus))
        .sum();
    assert!(checked > 10, "{checked}");
}

#[test]
fn the_evaluation_limit_is_enforced_up_front() {
    let (model, rows) = c6();
    let net = model.net();
    let worst = worst_case_evaluations(net, 0);
    let finder = RuleRoots::new(net, &dtd(Rule::ZPlus));
    let tight = FullBackwardSettings {
        max_evaluations: worst - 1,
        ..FullBackwardSettings::default()
    };
    let err = full_backward(net, &rows[0], 0, &tight, &finder).unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err}");
    assert!(err.to_string().contains(&worst.to_string()), "{err}");
    assert!(tight.check_network(net).is_err());
    let enough = FullBackwardSettings {
        max_evaluations: worst,
        ..FullBackwardSettings::default()
    };
    let fb = full_backward(net, &rows[0], 0, &enough, &finder).unwrap();
    assert!(fb.evaluations <= worst);
}

// ---------------------------------------------------------------------------------------------
// The command line

struct Run {
    code: i32,
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
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn explain_full_backward_writes_the_library_relevances_and_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = (dir.path().join("r.npy"), dir.path().join("r.json"));
    let run = dtdcert(&[
        "explain",
        "--model",
        MODEL,
        "--inputs",
        INPUTS,
        "--explain",
        "0",
        "--full-backward",
        "--report",
        p(&report),
        "--out",
        p(&out),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let got: Array2<f64> = read_npy(&out).unwrap();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(doc["rule"], "z+");
    assert_eq!(doc["exact"], false);
    assert_eq!(doc["full_backward"]["max_evaluations"], 1_000_000);
    assert!(doc["full_backward"]["face_tolerance"].is_null());
    let samples = doc["samples"].as_array().unwrap();
    let (model, rows) = c6();
    assert_eq!(got.dim(), (rows.len(), 10));
    assert_eq!(samples.len(), rows.len());
    let plain_train_free_differs = rows.iter().enumerate().any(|(i, x)| {
        let trace = forward(model.net(), x);
        let tf = explain(model.net(), &trace, &dtd(Rule::ZPlus), 0, false);
        got.slice(s![i, ..]).to_vec() != tf.input_relevance()
    });
    assert!(plain_train_free_differs);
    for (i, (x, sample)) in rows.iter().zip(samples).enumerate() {
        let decided = full_backward_decided(
            &model,
            x,
            Some(0),
            &dtd(Rule::ZPlus),
            &FullBackwardSettings::default(),
        )
        .unwrap();
        let fb = decided.to_f64();
        assert_eq!(
            got.slice(s![i, ..]).to_vec(),
            fb.input_relevance(),
            "row {i}"
        );
        let decided_by = match decided {
            Decided::Float(_) => "float",
            Decided::Exact(_) => "exact-fallback",
        };
        assert_eq!(sample["decided_by"], decided_by, "row {i}");
        let num = |v: &Value| v.as_f64().unwrap();
        assert_eq!(sample["sample"], i);
        assert_eq!(sample["explained"], 0);
        assert_eq!(sample["evaluations"], fb.evaluations);
        let (output, input, remainder, gap) = (
            num(&sample["output"]),
            num(&sample["input_relevance"]),
            num(&sample["remainder"]),
            num(&sample["conservation_gap"]),
        );
        assert_eq!(output, fb.output);
        let tol = 1e-12 * output.abs().max(1.0);
        assert!((input - got.slice(s![i, ..]).sum()).abs() <= tol, "row {i}");
        assert!((output - input - remainder - gap).abs() <= tol, "row {i}");
        let layers = sample["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 3);
        let taylor: f64 = layers.iter().map(|l| num(&l["taylor_error"])).sum();
        assert!((taylor - gap).abs() <= tol, "row {i}");
        for (l, layer) in layers.iter().enumerate() {
            assert_eq!(layer["layer"], l + 1);
            let neurons = layer["neurons"].as_array().unwrap();
            assert_eq!(neurons.len(), model.net().layers()[l].affine.out_dim());
            let rem: f64 = neurons.iter().map(|n| num(&n["remainder"])).sum();
            assert!((rem - num(&layer["remainder"])).abs() <= tol, "row {i}");
            for n in neurons {
                match n["status"].as_str().unwrap() {
                    "expanded" => assert!(n["frozen_relevance"].is_number()),
                    "not-positive" => assert!(num(&n["relevance"]) <= 0.0),
                    "no-root" => assert!(n["no_root"].is_string()),
                    other => panic!("status {other}"),
                }
            }
        }
    }
}

/// `--exact` computes in rationals and rounds once, with an explicit face tolerance too (on a
/// small network: exact full-backward DTD of C6 takes about a second per input).
#[test]
fn explain_full_backward_exact_rounds_the_rational_relevance_once() {
    const SMALL_MODEL: &str = "tests/data/safetensors/mlp_3_4_2.json";
    const SMALL_INPUTS: &str = "tests/data/npy/inputs_f64_4x3.npy";
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = (dir.path().join("r.npy"), dir.path().join("r.json"));
    let run = dtdcert(&[
        "explain",
        "--model",
        SMALL_MODEL,
        "--inputs",
        SMALL_INPUTS,
        "--explain",
        "0",
        "--rule",
        "gamma:0.5",
        "--full-backward",
        "--exact",
        "--face-tolerance",
        "1e-9",
        "--report",
        p(&report),
        "--out",
        p(&out),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let got: Array2<f64> = read_npy(&out).unwrap();
    // An explicit tolerance is used and recorded; every sample is computed in rationals.
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(doc["full_backward"]["face_tolerance"], 1e-9);
    let samples = doc["samples"].as_array().unwrap();
    assert!(samples.iter().all(|s| s["decided_by"] == "exact"));
    let tolerance = FullBackwardSettings {
        face_tolerance: Some(1e-9),
        ..FullBackwardSettings::default()
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let model = Model::load(&root.join(SMALL_MODEL)).unwrap();
    let inputs = load_inputs(&root.join(SMALL_INPUTS), None).unwrap();
    assert_eq!(got.dim(), (inputs.len(), 3));
    let net = model.exact();
    for i in 0..inputs.len() {
        let fb = full_backward(
            net,
            &to_exact(&inputs.row(i).unwrap()),
            0,
            &tolerance,
            &RuleRoots::new(net, &dtd(Rule::Gamma(0.5))),
        )
        .unwrap();
        let want: Vec<f64> = fb.input_relevance().iter().map(Scalar::to_f64).collect();
        assert_eq!(got.slice(s![i, ..]).to_vec(), want, "row {i}");
    }
}

#[test]
fn explain_full_backward_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.npy");
    let base = [
        "explain",
        "--model",
        MODEL,
        "--inputs",
        INPUTS,
        "--out",
        p(&out),
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        dtdcert(&args)
    };
    // Over the evaluation limit: one error line naming the option, nothing written.
    let run = with(&["--full-backward", "--max-evaluations", "10"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(run.stderr.contains("--max-evaluations"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert_eq!(entries(dir.path()), 0);
    // Full-backward options without --full-backward.
    for extra in [
        &["--report", "r.json"][..],
        &["--max-evaluations", "10"],
        &["--face-tolerance", "0"],
    ] {
        let run = with(extra);
        assert_eq!(run.code, 2, "{extra:?}: {}", run.stderr);
        assert!(run.stderr.contains("--full-backward"), "{}", run.stderr);
    }
    let run = with(&["--full-backward", "--face-tolerance=-1"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--face-tolerance"), "{}", run.stderr);
    let run = with(&["--full-backward", "--report", p(&out)]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(entries(dir.path()), 0);
}
