//! The f64 audit's verdicts against pure rational arithmetic, on small random networks.
//!
//! The fuzz bytes build a network (1–4 inputs, 1–3 dense layers of width 1–4, each with or
//! without a ReLU, hidden layers mostly with), an input and the DTD settings. Weights, biases
//! and inputs come from a small dyadic grid (so that inputs and roots land exactly on region
//! faces often), mixed, for some cases, with f32 or f64 values from the bytes made finite. For
//! each root rule the default audit (with root coordinates kept) must give, for every root, the
//! verdict of the audit in rationals: status, and (layer, neuron) of the first violated
//! constraint, and the domain verdict; a verdict the f64 bounds settled is about the root f64
//! computes (explain's). The activation pattern must be the exact one, the input must lie in
//! its own region, and an audit in rationals (of one of the rules) must conserve relevance
//! exactly.
#![no_main]

use dtdcert::audit::{audit_sample, AuditSettings, DomainBox, DomainCheck, RootVerdict};
use dtdcert::dtd::{explain, BiasMode, DtdSettings, InitialRelevance, RootOutcome, Rule};
use dtdcert::exact::{Rational, Scalar};
use dtdcert::model::ir::{dense_layer, Affine, Layer, Sparse};
use dtdcert::model::{forward, Model, Network};
use dtdcert::region::{membership, trace_and_pattern, Decision, Membership, Pattern};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use ndarray::Array1;

/// A grid value `k/4`, `k` in -8..=8; with `spread` 1 or more, also an f32 from the bytes with
/// its exponent forced into [-8, 8]; with `spread` 2 or more, also any f32 from the bytes; with
/// `spread` 3, also any f64 from the bytes (for f64 weights, as ONNX doubles and F64 safetensors
/// give, down to where error bounds underflow). A non-finite value becomes 0. Half the values
/// come from the grid either way.
fn value(u: &mut Unstructured<'_>, spread: u8) -> Result<f64> {
    let kind = if spread == 0 {
        0
    } else {
        u.int_in_range(0..=2 * spread - 1)?
    };
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    Ok(match kind.checked_sub(spread) {
        None => f64::from(u.int_in_range(-8i8..=8)?) / 4.0,
        Some(0) => {
            let bits: u32 = u.arbitrary()?;
            let exponent = u32::from(u.int_in_range(119u8..=135)?);
            f64::from(f32::from_bits((bits & 0x807f_ffff) | (exponent << 23)))
        }
        Some(1) => finite(f64::from(f32::from_bits(u.arbitrary()?))),
        _ => finite(f64::from_bits(u.arbitrary()?)),
    })
}

/// Zero, or of magnitude within [2^-16, 2^16]: the exact audit's rationals stay small.
fn tame(v: f64) -> bool {
    v == 0.0 || (2f64.powi(-16)..=2f64.powi(16)).contains(&v.abs())
}

/// A non-negative grid value.
fn grid(u: &mut Unstructured<'_>) -> Result<f64> {
    Ok(f64::from(u.int_in_range(0u8..=8)?) / 4.0)
}

struct Case {
    model: Model,
    x: Vec<f64>,
    target: Option<usize>,
    base: DtdSettings,
    domain: Option<DomainBox>,
    /// The rule of the input layer, when it differs from the others.
    input_rule: Option<Rule>,
    /// The parameters of the γ and zB rules.
    gamma: f64,
    zbox: (f64, f64),
    /// Which rule (index into the six) is also audited in rationals, when every parameter
    /// and input is [`tame`]; that audit costs more than all the others together.
    exact_rule: usize,
    tame: bool,
}

fn root_rule(u: &mut Unstructured<'_>, spread: u8) -> Result<Rule> {
    Ok(match u.int_in_range(0u8..=5)? {
        0 => Rule::Zero,
        1 => Rule::Z,
        2 => Rule::ZPlus,
        3 => Rule::Gamma(grid(u)?),
        4 => Rule::WSquare,
        _ => {
            let (a, b) = (value(u, spread)?, value(u, spread)?);
            Rule::ZBox {
                lo: a.min(b),
                hi: a.max(b),
            }
        }
    })
}

fn case(u: &mut Unstructured<'_>) -> Result<Case> {
    // Grid values only (most inputs and roots on faces), grid and tame f32, any f32, any f64.
    let spread = u.int_in_range(0u8..=3)?;
    let n_in = u.int_in_range(1usize..=4)?;
    let depth = u.int_in_range(1usize..=3)?;
    let mut layers = Vec::with_capacity(depth);
    let mut width = n_in;
    for l in 0..depth {
        let out = u.int_in_range(1usize..=4)?;
        let mut weight = Vec::with_capacity(out * width);
        for _ in 0..out * width {
            weight.push(value(u, spread)?);
        }
        let mut bias = Vec::with_capacity(out);
        for _ in 0..out {
            bias.push(if u.arbitrary()? {
                value(u, spread)?
            } else {
                0.0
            });
        }
        // Mostly a ReLU after hidden layers; a linear hidden layer carries its rounding errors
        // and cancellations to the next layer unmasked.
        let relu = if l + 1 < depth {
            u.ratio(3, 4)?
        } else {
            u.arbitrary()?
        };
        let mut layer = dense_layer(out, width, weight, bias, relu).expect("shapes agree");
        // Sometimes the last outputs of a hidden ReLU layer skip the ReLU (values carried to
        // the next layer, as a residual connection's input), and sometimes a max-pool layer
        // (windows of 2 over copies of the outputs) follows.
        if relu && l + 1 < depth && u.ratio(1, 4)? {
            layer.linear_tail = u.int_in_range(1..=out)?;
        }
        layers.push(layer);
        width = out;
        if relu && l + 1 < depth && u.ratio(1, 4)? {
            let windows = u.int_in_range(1usize..=2)?;
            let mut rows = Vec::with_capacity(2 * windows);
            for _ in 0..2 * windows {
                rows.push(vec![(u.int_in_range(0..=width - 1)? as u32, 1.0)]);
            }
            let gather = Sparse::from_rows(width, rows, Array1::zeros(2 * windows))
                .expect("copies of the outputs");
            layers.push(Layer {
                affine: Affine::Sparse(gather),
                relu: false,
                activation: dtdcert::model::Activation::Relu,
                max_pool: Some(2),
                linear_tail: 0,
            });
            width = windows;
        }
    }
    let net = Network::new(layers).expect("finite weights, agreeing shapes");
    let mut x = Vec::with_capacity(n_in);
    for _ in 0..n_in {
        x.push(value(u, spread)?);
    }
    let target = if u.arbitrary()? {
        Some(u.int_in_range(0..=width - 1)?)
    } else {
        None
    };
    let base = DtdSettings {
        rule: Rule::ZPlus,
        input_rule: None,
        bias: if u.arbitrary()? {
            BiasMode::Include
        } else {
            BiasMode::Ignore
        },
        stabilizer: if u.ratio(1, 4)? { grid(u)? / 8.0 } else { 0.0 },
        denominator_threshold: match u.int_in_range(0u8..=2)? {
            0 => 1e-5,
            1 => 0.0,
            _ => grid(u)?,
        },
        initial_relevance: InitialRelevance::Output,
        layer_rules: Vec::new(),
        ..DtdSettings::default()
    };
    let domain = if u.ratio(1, 3)? {
        let (a, b) = (value(u, spread)?, value(u, spread)?);
        Some(DomainBox {
            lo: a.min(b),
            hi: a.max(b),
        })
    } else {
        None
    };
    let input_rule = if u.ratio(1, 3)? {
        Some(root_rule(u, spread)?)
    } else {
        None
    };
    let tame = x.iter().all(|&v| tame(v))
        && net.layers().iter().all(|l| {
            let a = &l.affine;
            (0..a.out_dim()).all(|j| tame(*a.bias(j)) && a.row(j).values().iter().all(|&v| tame(v)))
        });
    let gamma = grid(u)?;
    let (a, b) = (value(u, spread)?, value(u, spread)?);
    Ok(Case {
        model: Model::new(net),
        x,
        target,
        base,
        domain,
        input_rule,
        gamma,
        zbox: (a.min(b), a.max(b)),
        exact_rule: u.int_in_range(0usize..=5)?,
        tame,
    })
}

fn exact(point: &[f64]) -> Vec<Rational> {
    point.iter().map(|&v| Rational::from_f64(v)).collect()
}

fn same_region(f: &Membership, e: &Membership) -> bool {
    match (f, e) {
        (Membership::Inside { .. }, Membership::Inside { .. }) => true,
        (
            Membership::Outside { layer, neuron, .. },
            Membership::Outside {
                layer: l2,
                neuron: n2,
                ..
            },
        ) => layer == l2 && neuron == n2,
        _ => false,
    }
}

fn check(c: &Case) {
    let model = &c.model;
    let net_q = model.exact();
    let xq = exact(&c.x);

    // The pattern is the exact one, and the input lies in its own region.
    let (trace, pattern, _) = trace_and_pattern(model, &c.x);
    let exact_trace = forward::forward(net_q, &xq);
    assert_eq!(
        pattern,
        Pattern::from_pre(net_q, &exact_trace.pre),
        "the f64 pattern differs from the exact one"
    );
    let own = membership(net_q, &pattern, 0, &xq);
    assert!(
        own.is_inside(),
        "the input is outside its own region: {own:?}"
    );
    if trace.activations.iter().flatten().any(|v| !v.is_finite()) {
        return;
    }

    let rules = [
        Rule::Zero,
        Rule::Z,
        Rule::ZPlus,
        Rule::Gamma(c.gamma),
        Rule::WSquare,
        Rule::ZBox {
            lo: c.zbox.0,
            hi: c.zbox.1,
        },
    ];
    for (r, rule) in rules.into_iter().enumerate() {
        let settings = AuditSettings {
            dtd: DtdSettings {
                rule,
                input_rule: c.input_rule,
                ..c.base.clone()
            },
            domain: c.domain,
            exact: false,
            keep_points: true,
            records: Default::default(),
            compress: false,
            certify: None,
            lp: Default::default(),
            torch: None,
            root_sample: None,
        };
        let Ok(record) = audit_sample(model, &settings, 0, &c.x, c.target) else {
            continue;
        };
        // The reference: the same audit in rationals throughout, about the exact roots (for
        // values of tame magnitude: rationals from values near f64's range are too slow to
        // fuzz; there, the audit is checked against itself).
        let exact_settings = AuditSettings {
            exact: true,
            ..settings.clone()
        };
        let exact_record = if c.tame {
            match audit_sample(model, &exact_settings, 0, &c.x, c.target) {
                Ok(exact_record) => exact_record,
                Err(_) => continue,
            }
        } else {
            record.clone()
        };
        assert_eq!(
            record.explained, exact_record.explained,
            "{rule}: explained output"
        );
        let explanation = explain(model.net(), &trace, &settings.dtd, record.explained, true);
        for (index, (layer, exact_layer)) in
            record.layers.iter().zip(&exact_record.layers).enumerate()
        {
            assert_eq!(layer.layer, index + 1);
            for (j, (n, exact_n)) in layer.neurons.iter().zip(&exact_layer.neurons).enumerate() {
                let (Some(root), Some(exact_root)) = (&n.root, &exact_n.root) else {
                    assert_eq!(
                        n.root.is_some(),
                        exact_n.root.is_some(),
                        "{rule}: layer {} neuron {j}: root lost",
                        index + 1
                    );
                    assert_eq!(n.no_root, exact_n.no_root);
                    continue;
                };
                let RootVerdict {
                    valid,
                    region,
                    domain,
                    point,
                    decided_by,
                } = root;
                let point = point.as_ref().expect("keep_points");
                // A verdict the f64 bounds settled is about the root f64 computes, with its
                // error bound; what they could not settle was decided on the exact root.
                if matches!(decided_by, Decision::Float | Decision::Refined) {
                    let expected_point = match &explanation.layers[index].neurons[j].outcome {
                        RootOutcome::Root { point, .. } => Some(point),
                        RootOutcome::None(_) => None,
                    };
                    assert_eq!(
                        Some(point),
                        expected_point,
                        "layer {} neuron {j}: the audit's root is not explain's",
                        index + 1
                    );
                }
                assert!(
                    same_region(region, &exact_root.region),
                    "{rule}: layer {} neuron {j}: default verdict {region:?}, exact {:?}, root {point:?}",
                    index + 1,
                    exact_root.region
                );
                // The same side of the domain, at the same first coordinate (the value is the
                // f64 root's or the exact root's, rounded).
                let coordinate = |d: &DomainCheck| match d {
                    DomainCheck::In => None,
                    DomainCheck::Out { coordinate, .. } => Some(*coordinate),
                };
                assert_eq!(
                    coordinate(domain),
                    coordinate(&exact_root.domain),
                    "{rule}: layer {} neuron {j}: domain",
                    index + 1
                );
                assert_eq!(*valid, region.is_inside() && *domain == DomainCheck::In);
            }
        }

        // The audit in rationals conserves relevance exactly.
        if r != c.exact_rule || !c.tame {
            continue;
        }
        for layer in &exact_record.layers {
            assert_eq!(
                layer.conservation_error, 0.0,
                "{rule}: layer {}: conservation error in rationals",
                layer.layer
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    if let Ok(c) = case(&mut u) {
        check(&c);
    }
});
