//! The forward pass of Clip, LeakyRelu and PRelu against ReLU networks that compute the same
//! function: each activation is a constant plus a sum of ReLUs,
//!
//! - LeakyRelu(α), PRelu: `relu(z) − α relu(−z)`
//! - Clip(lo, hi): `lo + relu(z − lo) − relu(z − hi)`; Clip(lo, ∞): `lo + relu(z − lo)`;
//!   Clip(−∞, hi): `hi − relu(hi − z)`,
//!
//! so widening each layer into one ReLU neuron per term, and folding the coefficients and the
//! constant into the next layer, gives a ReLU network with the same output. With weights,
//! constants and inputs small multiples of 1/8 every value is exact in f64, so the f64 forward
//! pass, the exact one, and the ReLU network's exact one must agree exactly.
//!
//! The audit of these networks: the default verdicts (f64 with error bounds, exact fallback)
//! are the exact ones; a root judged inside has every neuron of the layers above on the
//! closed piece of the input's pattern (checked in rationals on the network itself); the
//! region's membership is that brute-force check at random points; and LeakyRelu(0) and
//! Clip(0, ∞) audit as ReLU.

mod util;

use dtdcert::audit::{audit_sample, AuditSettings, DomainBox, DomainCheck, SampleRecord};
use dtdcert::dtd::{explain, BiasMode, DtdSettings, RootOutcome, Rule};
use dtdcert::exact::{Rational, Scalar};
use dtdcert::model::forward::{forward, output};
use dtdcert::model::ir::dense_layer;
use dtdcert::model::{Activation, Layer, Model, Network};
use dtdcert::region::{
    membership, membership_batch, membership_filtered, polytope, trace_and_pattern, Membership,
    Pattern, Piece,
};
use ndarray::Array2;
use proptest::prelude::*;
use util::activations::{
    eighths, mixed_network_and_input, mixed_params, network, weight, with_activations, Params,
    WIDTHS,
};
use util::verdicts::verdicts;

/// `act(z) = c + Σ coef · relu(σ z + θ)` for output `j`: `(c, [(coef, σ, θ)])`.
fn terms(act: &Activation, j: usize) -> (f64, Vec<(f64, f64, f64)>) {
    match act {
        Activation::Relu => (0.0, vec![(1.0, 1.0, 0.0)]),
        Activation::LeakyRelu { alpha } => (0.0, vec![(1.0, 1.0, 0.0), (-alpha, -1.0, 0.0)]),
        Activation::PRelu { slopes } => (0.0, vec![(1.0, 1.0, 0.0), (-slopes[j], -1.0, 0.0)]),
        Activation::Clip { lo: Some(lo), hi } => {
            let mut t = vec![(1.0, 1.0, -lo)];
            if let Some(hi) = hi {
                t.push((-1.0, 1.0, -hi));
            }
            (*lo, t)
        }
        Activation::Clip {
            lo: None,
            hi: Some(hi),
        } => (*hi, vec![(-1.0, -1.0, *hi)]),
        Activation::Clip { lo: None, hi: None } => unreachable!("a Clip has a bound"),
    }
}

/// The same function with ReLUs only: each hidden layer widened to one neuron per term, the
/// next layer's columns scaled by the coefficients and its bias shifted by the constants.
fn relu_only(layers: &[Params], acts: &[Activation]) -> Network {
    let mut built = Vec::new();
    // The next layer's input, as (column of the original layer's input, coefficient), and
    // the constant each original input contributes.
    let mut columns: Vec<(usize, f64)> = (0..WIDTHS[0]).map(|i| (i, 1.0)).collect();
    let mut constants = vec![0.0; WIDTHS[0]];
    for (i, (w, b)) in layers.iter().enumerate() {
        let (rows, cols) = (WIDTHS[i + 1], WIDTHS[i]);
        // The original layer on the widened input: z_j = Σ_k coef_k w_{j, col_k} h'_k + b'_j.
        let weight = |j: usize| -> Vec<f64> {
            columns
                .iter()
                .map(|&(c, coef)| coef * w[j * cols + c])
                .collect()
        };
        let bias = |j: usize| -> f64 {
            b[j] + (0..cols)
                .map(|c| w[j * cols + c] * constants[c])
                .sum::<f64>()
        };
        let Some(act) = acts.get(i) else {
            let weights: Vec<f64> = (0..rows).flat_map(weight).collect();
            let biases: Vec<f64> = (0..rows).map(bias).collect();
            built.push(dense_layer(rows, columns.len(), weights, biases, false).unwrap());
            break;
        };
        let (mut weights, mut biases) = (Vec::new(), Vec::new());
        let (mut next_columns, mut next_constants) = (Vec::new(), Vec::new());
        for j in 0..rows {
            let (c, t) = terms(act, j);
            next_constants.push(c);
            for (coef, sigma, theta) in t {
                weights.extend(weight(j).into_iter().map(|v| sigma * v));
                biases.push(sigma * bias(j) + theta);
                next_columns.push((j, coef));
            }
        }
        let width = biases.len();
        built.push(dense_layer(width, columns.len(), weights, biases, true).unwrap());
        columns = next_columns;
        constants = next_constants;
    }
    Network::new(built).unwrap()
}

fn exact(v: &[f64]) -> Vec<Rational> {
    v.iter().map(|&x| Rational::from_f64(x)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_forward_pass_equals_a_relu_network_computing_the_same_function(
        (layers, acts) in network(),
        x in prop::collection::vec(eighths(), WIDTHS[0]),
    ) {
        let net = with_activations(&layers, &acts);
        let twin = relu_only(&layers, &acts);
        prop_assert!(twin.layers().iter().all(|l| l.activation.is_relu()));
        let want = output(&twin.to_exact(), &exact(&x));
        prop_assert_eq!(&output(&net.to_exact(), &exact(&x)), &want);
        // Every value is a small multiple of a power of two, so f64 computes it exactly.
        prop_assert_eq!(exact(&output(&net, &x)), want);
    }
}

/// Weights: half from the grid of eighths (faces and ties occur), half f32 values (the error
/// bounds are at work).
fn rules() -> impl Strategy<Value = Rule> {
    prop_oneof![
        Just(Rule::Z),
        Just(Rule::ZPlus),
        Just(Rule::Gamma(0.25)),
        Just(Rule::WSquare),
        Just(Rule::ZBox { lo: -2.0, hi: 2.0 }),
    ]
}

fn settings() -> impl Strategy<Value = AuditSettings> {
    (
        rules(),
        prop::option::of(rules()),
        prop_oneof![Just(BiasMode::Ignore), Just(BiasMode::Include)],
        any::<bool>(),
    )
        .prop_map(|(rule, input_rule, bias, domain)| AuditSettings {
            dtd: DtdSettings {
                rule,
                input_rule,
                bias,
                ..DtdSettings::default()
            },
            domain: domain.then_some(DomainBox { lo: -2.0, hi: 2.0 }),
            ..AuditSettings::default()
        })
}

/// Whether `z` (a pre-activation of layer `k`, output `j`) lies on the closed piece of the
/// pattern: at or above 0 for an active neuron, at or below for an inactive one; at or below
/// `min`, between the bounds, or at or above `max` for a Clip neuron.
fn on_piece(pattern: &Pattern, layer: &Layer<Rational>, k: usize, j: usize, z: &Rational) -> bool {
    if let Some(&active) = pattern.layer(k).and_then(|mask| mask.get(j)) {
        return if active {
            !z.is_negative()
        } else {
            !z.is_positive()
        };
    }
    let Some(&piece) = pattern.pieces(k).and_then(|p| p.get(j)) else {
        return true;
    };
    let Activation::Clip { lo, hi } = &layer.activation else {
        panic!("Clip pieces on a {} layer", layer.activation.name());
    };
    let (above_lo, below_hi) = (
        lo.as_ref().is_none_or(|lo| z >= lo),
        hi.as_ref().is_none_or(|hi| z <= hi),
    );
    match piece {
        Piece::Below => lo.as_ref().is_some_and(|lo| z <= lo),
        Piece::Between => above_lo && below_hi,
        Piece::Above => hi.as_ref().is_some_and(|hi| z >= hi),
    }
}

/// The first neuron (1-based layer, neuron) from layer `m` (0-based) up whose exact
/// pre-activation at the layer input `a` leaves its closed piece, computing the network
/// itself; `None` when every one stays on its piece.
fn first_off_piece(
    net: &Network<Rational>,
    pattern: &Pattern,
    m: usize,
    a: &[Rational],
) -> Option<(usize, usize)> {
    let mut h = a.to_vec();
    for (k, layer) in net.layers().iter().enumerate().skip(m) {
        let mut z = Vec::new();
        layer.affine.apply_into(&h, &mut z);
        if let Some(j) = (0..z.len()).find(|&j| !on_piece(pattern, layer, k, j, &z[j])) {
            return Some((k + 1, j));
        }
        h = dtdcert::model::forward::activate(layer, &z);
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// The default audit's verdicts are the exact audit's, root for root, and every root
    /// judged inside its region has, computed exactly on the network itself, every neuron
    /// above it on the closed piece of the input's pattern (and one judged outside leaves
    /// it at the constraint named).
    #[test]
    fn default_verdicts_are_exact_and_inside_means_on_the_inputs_pieces(
        (model, x) in mixed_network_and_input(),
        settings in settings(),
    ) {
        let default = audit_sample(&model, &settings, 0, &x, None).unwrap();
        let exact_settings = AuditSettings { exact: true, ..settings.clone() };
        let exact = audit_sample(&model, &exact_settings, 0, &x, None).unwrap();
        prop_assert_eq!(default.explained, exact.explained);
        prop_assert_eq!(verdicts(&default), verdicts(&exact));
        // The exact roots, judged on the network.
        let net = model.exact();
        let xr = exact_of(&x);
        let trace = forward(net, &xr);
        let pattern = Pattern::from_pre(net, &trace.pre);
        let e = explain(net, &trace, &settings.dtd, default.explained, true);
        for (index, step) in e.layers.iter().enumerate() {
            for (j, n) in step.neurons.iter().enumerate() {
                let RootOutcome::Root { point, .. } = &n.outcome else { continue };
                let verdict = default.layers[index].neurons[j].root.as_ref().expect("a root");
                let off = first_off_piece(net, &pattern, index, point);
                match verdict.region {
                    Membership::Inside { .. } => prop_assert_eq!(off, None),
                    Membership::Outside { layer, neuron, .. } => {
                        prop_assert_eq!(off, Some((layer, neuron)))
                    }
                }
            }
        }
    }

    /// Membership of random points in the input's region (one at a time, batched, in
    /// rationals and as the materialised polytope) is the brute-force check: every neuron's
    /// exact pre-activation on the closed piece of the input's pattern.
    #[test]
    fn region_membership_is_the_brute_force_pieces_check(
        (model, x) in mixed_network_and_input(),
        points in prop::collection::vec(prop::collection::vec(weight(), WIDTHS[0]), 1..12),
    ) {
        let (_, pattern, _) = trace_and_pattern(&model, &x);
        let net = model.exact();
        let region = polytope(net, &pattern, 0);
        let rows: Vec<f64> = points.iter().flatten().copied().collect();
        let batch = Array2::from_shape_vec((points.len(), WIDTHS[0]), rows).unwrap();
        let batched = membership_batch(&model, &pattern, 0, &batch);
        for (p, (in_batch, _)) in points.iter().zip(&batched) {
            let exact_p = exact_of(p);
            let off = first_off_piece(net, &pattern, 0, &exact_p);
            let (filtered, _) = membership_filtered(&model, &pattern, 0, p);
            let exact = membership(net, &pattern, 0, &exact_p);
            for verdict in [&filtered, &exact, in_batch] {
                match verdict {
                    Membership::Inside { .. } => prop_assert_eq!(off, None),
                    Membership::Outside { layer, neuron, .. } => {
                        prop_assert_eq!(off, Some((*layer, *neuron)))
                    }
                }
            }
            prop_assert_eq!(region.contains(&exact_p), off.is_none());
        }
        // The input itself is inside.
        prop_assert_eq!(first_off_piece(net, &pattern, 0, &exact_of(&x)), None);
    }

    /// LeakyRelu(0) and Clip(0, ∞) compute ReLU, and the audit reads them as ReLU: the same
    /// record, relevances, verdicts and how each was decided (but the f64 readings of margins
    /// and slacks, which a ReLU layer's batched screen rounds in another order).
    #[test]
    fn zero_slope_leaky_relu_and_clip_from_zero_audit_as_relu(
        layers in WIDTHS.windows(2).map(|w| mixed_params(w[1], w[0])).collect::<Vec<_>>(),
        x in prop::collection::vec(weight(), WIDTHS[0]),
        settings in settings(),
        clip in any::<bool>(),
    ) {
        let relu = Model::new(with_activations(&layers, &[Activation::Relu, Activation::Relu]));
        let other = if clip {
            Activation::Clip { lo: Some(0.0), hi: None }
        } else {
            Activation::LeakyRelu { alpha: 0.0 }
        };
        let same = Model::new(with_activations(&layers, &[other.clone(), other]));
        for exact in [false, true] {
            let settings = AuditSettings { exact, ..settings.clone() };
            let want = audit_sample(&relu, &settings, 0, &x, None).unwrap();
            let got = audit_sample(&same, &settings, 0, &x, None).unwrap();
            prop_assert_eq!(without_renderings(got), without_renderings(want));
        }
    }
}

/// The record with each margin, slack and out-of-domain value, f64 readings of exact values,
/// replaced by its sign (a slack by whether it is 0: on a face).
fn without_renderings(mut record: SampleRecord) -> SampleRecord {
    let neurons = record.layers.iter_mut().flat_map(|l| l.neurons.iter_mut());
    for root in neurons.filter_map(|n| n.root.as_mut()) {
        match &mut root.region {
            Membership::Inside { slack } => *slack = slack.map(|s| f64::from(u8::from(s != 0.0))),
            Membership::Outside { margin, .. } => *margin = -1.0,
        }
        if let DomainCheck::Out { value, .. } = &mut root.domain {
            *value = value.signum();
        }
    }
    record
}

fn exact_of(v: &[f64]) -> Vec<Rational> {
    v.iter().map(|&x| Rational::from_f64(x)).collect()
}
