//! The default audit's verdicts are about the exact roots: on random small MLPs (1,000 cases)
//! and on the shipped C6 example, the default run (f64 with error bounds on the roots and on
//! the constraints, exact fallback) and `--exact` (rationals throughout) give the same
//! verdict for every root of every layer, the explained output's own root included: inside
//! or outside (and at which constraint), on a face or not, in or out of the domain (and at
//! which coordinate), and the same neurons without a root; and one layer judged alone
//! (`audit_layer`, what `repro mlp-roots` reads) gives that layer's verdicts, at the roots the
//! f64 recursion computes. The same on MLPs with carried values and max pooling.

mod util;

use dtdcert::audit::{audit_layer, audit_sample, AuditSettings, DomainBox, SampleRecord};
use dtdcert::dtd::{explain, BiasMode, DtdSettings, LayerRule, Rule};
use dtdcert::model::inputs::load_inputs;
use dtdcert::model::Model;
use dtdcert::region::trace_and_pattern;
use proptest::prelude::*;
use util::verdicts::verdicts;
use util::{mlp_with_tails_and_pools, network_and_input, weight};

/// The default and the exact audit of `x`; their verdicts must agree root for root.
fn default_equals_exact(
    model: &Model,
    x: &[f64],
    settings: &AuditSettings,
    target: Option<usize>,
) -> Result<SampleRecord, TestCaseError> {
    let default = audit_sample(model, settings, 0, x, target).unwrap();
    let exact_settings = AuditSettings {
        exact: true,
        ..settings.clone()
    };
    let exact = audit_sample(model, &exact_settings, 0, x, target).unwrap();
    prop_assert_eq!(default.explained, exact.explained);
    prop_assert_eq!(verdicts(&default), verdicts(&exact));
    Ok(default)
}

/// Every rule with roots, with parameters (the zB box around the inputs drawn below).
fn root_rules() -> impl Strategy<Value = Rule> {
    prop_oneof![
        Just(Rule::Zero),
        Just(Rule::Z),
        Just(Rule::ZPlus),
        Just(Rule::Gamma(0.25)),
        Just(Rule::Gamma(1.0)),
        Just(Rule::WSquare),
        Just(Rule::ZBox { lo: -1.0, hi: 1.0 }),
    ]
}

fn bias_modes() -> impl Strategy<Value = BiasMode> {
    prop_oneof![
        Just(BiasMode::Ignore),
        Just(BiasMode::Include),
        Just(BiasMode::Plain)
    ]
}

prop_compose! {
    /// Audit settings: a rule above, an input rule, both bias modes, sometimes a per-layer
    /// rule for layer 2, sometimes a domain box.
    fn audit_settings()(
        rule in root_rules(),
        input_rule in proptest::option::of(root_rules()),
        bias in bias_modes(),
        layer_two in proptest::option::of(root_rules()),
        domain in any::<bool>(),
    ) -> AuditSettings {
        AuditSettings {
            dtd: DtdSettings {
                rule,
                input_rule,
                bias,
                layer_rules: layer_two
                    .map(|rule| vec![LayerRule { layer: 2, rule }])
                    .unwrap_or_default(),
                ..DtdSettings::default()
            },
            domain: domain.then_some(DomainBox { lo: -1.0, hi: 1.0 }),
            ..AuditSettings::default()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Random MLPs whose weights and inputs are often on a dyadic grid, so that roots on faces
    /// and exact ties occur: every root's default verdict is its exact verdict.
    #[test]
    fn default_verdicts_are_exact_verdicts(
        (model, x) in network_and_input(-1.0, 1.0),
        settings in audit_settings(),
        top in any::<bool>(),
    ) {
        let layers = model.net().layers().len();
        prop_assume!(settings.dtd.check_layers(layers).is_ok());
        let target = (!top).then_some(0);
        let record = default_equals_exact(&model, &x, &settings, target)?;
        // One layer judged alone: the same verdicts, at the f64 recursion's roots.
        let layer = x.len() % layers;
        let alone = audit_layer(&model, &settings, &x, record.explained, layer).unwrap();
        let (trace, _, _) = trace_and_pattern(&model, &x);
        let f64_roots = explain(model.net(), &trace, &settings.dtd, record.explained, true);
        prop_assert_eq!(alone.output, trace.output()[record.explained]);
        // Against the audit of the same explained output (not the top output's, which the
        // audit must first know to be the exact top).
        let record = audit_sample(&model, &settings, 0, &x, Some(record.explained)).unwrap();
        let neurons = record.layers[layer].neurons.iter();
        for ((alone, n), f64_n) in alone.neurons.iter().zip(neurons).zip(&f64_roots.layers[layer].neurons) {
            prop_assert_eq!(&alone.outcome, &f64_n.outcome);
            prop_assert_eq!(&alone.verdict, &n.root);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The same on MLPs with carried values (tails without ReLU, copies of a layer's inputs
    /// carried beside its outputs, identity neurons among them, layers without activation)
    /// and max pooling: the default verdicts are the exact verdicts.
    #[test]
    fn default_verdicts_are_exact_verdicts_with_carried_values(
        (model, x) in mlp_with_tails_and_pools(1..=4, 1..=4, 1..=3, weight).prop_flat_map(|net| {
            let d = net.input_dim();
            (Just(Model::new(net)), prop::collection::vec(weight(), d))
        }),
        settings in audit_settings(),
        top in any::<bool>(),
    ) {
        let layers = model.net().layers().len();
        prop_assume!(settings.dtd.check_layers(layers).is_ok());
        default_equals_exact(&model, &x, &settings, (!top).then_some(0))?;
    }
}

/// The shipped example under the four rules of the paper's table, every input, output 0 and
/// the top output: the default verdicts are the exact ones, and the explained output's own
/// root, on its neuron's face under z+ with the bias ignored, is on a face whenever it is
/// inside (it may leave the region at another output neuron's face).
#[test]
fn the_shipped_example_is_judged_exactly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/c6");
    let model = Model::load(&dir.join("model.onnx")).unwrap();
    let inputs = load_inputs(&dir.join("inputs.npy"), None).unwrap();
    let mut top_layer_on_face = 0;
    for rule in [Rule::Zero, Rule::ZPlus, Rule::Gamma(1.0), Rule::WSquare] {
        let settings = AuditSettings {
            dtd: DtdSettings {
                rule,
                ..DtdSettings::default()
            },
            ..AuditSettings::default()
        };
        for i in 0..inputs.len() {
            let x = inputs.row(i).unwrap();
            for target in [Some(0), None] {
                let record = default_equals_exact(&model, &x, &settings, target).unwrap();
                let top = record.layers.last().unwrap();
                let own = top.neurons[record.explained].root.as_ref();
                if rule == Rule::ZPlus {
                    if let Some(root) = own.filter(|root| root.region.is_inside()) {
                        assert!(root.region.on_face(), "sample {i}: {root:?}");
                        top_layer_on_face += 1;
                    }
                }
            }
        }
    }
    assert!(top_layer_on_face > 0);
}
