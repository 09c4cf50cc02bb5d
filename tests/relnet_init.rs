//! The relation network starts from PyTorch's default initialisation (feature `torch`), layer
//! by layer, for both tasks and for the sanity check's re-initialised copies:
//!
//! - convolution and linear weights, linear biases and the LSTM's tensors uniform in
//!   `±1/√fan_in` (the LSTM: `±1/√hidden`): every value inside the bound, the extremes near it,
//!   mean and variance those of the uniform distribution;
//! - batch norm the identity: scale 1, shift 0, running mean 0, running variance 1;
//! - the word embedding N(0, 1).

#![cfg(feature = "torch")]

use std::collections::BTreeMap;

use dtdcert::model::vocabulary::Vocabulary;
use dtdcert::torch::relnet::{Task, TorchRelationNet};
use tch::{Device, Kind, Tensor};

/// The values of `t` as f64.
fn values(t: &Tensor) -> Vec<f64> {
    let flat = t.detach().to_kind(Kind::Double).flatten(0, -1);
    Vec::<f64>::try_from(&flat).unwrap()
}

/// Mean and (population) variance.
fn moments(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (mean, v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n)
}

/// `v` looks drawn from U(−b, b): inside the bound, its extremes within a few spacings of the
/// bound, mean and variance within six standard errors of 0 and b²/3.
fn assert_uniform(name: &str, v: &[f64], b: f64) {
    let n = v.len() as f64;
    assert!(
        v.iter().all(|x| x.abs() <= b),
        "{name}: a value outside ±{b}"
    );
    let (lo, hi) = v
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
    // The gap between the bound and the extreme of n uniform draws exceeds 2b·10/n with
    // probability e^-10.
    let slack = 2.0 * b * 10.0 / n;
    assert!(
        hi > b - slack && lo < -b + slack,
        "{name}: extremes {lo}, {hi} far inside ±{b}"
    );
    let (mean, var) = moments(v);
    let variance = b * b / 3.0;
    assert!(
        mean.abs() < 6.0 * (variance / n).sqrt(),
        "{name}: mean {mean}"
    );
    // The variance of (x − μ)² for U(−b, b) is b⁴/5 − b⁴/9 = 4b⁴/45.
    let spread = 6.0 * (4.0 * b.powi(4) / 45.0 / n).sqrt();
    assert!(
        (var - variance).abs() < spread,
        "{name}: variance {var}, not {variance}"
    );
}

fn assert_constant(name: &str, v: &[f64], c: f64) {
    assert!(v.iter().all(|&x| x == c), "{name}: not all {c}");
}

/// Checks every parameter and buffer of `net` against PyTorch's defaults; the names it knows
/// must cover all of them.
fn assert_pytorch_defaults(net: &TorchRelationNet) {
    let variables: BTreeMap<String, Tensor> = net.variables().into_iter().collect();
    let shape = |name: &str| variables[name].size();
    for (name, t) in &variables {
        let v = values(t);
        let parts: Vec<&str> = name.split('.').collect();
        match parts[..] {
            ["conv", k, field] => {
                let k: usize = k.parse().unwrap();
                match (k % 3, field) {
                    (0, "weight") => {
                        let s = shape(name);
                        let fan_in = (s[1] * s[2] * s[3]) as f64;
                        assert_uniform(name, &v, 1.0 / fan_in.sqrt());
                    }
                    (1, "weight") | (1, "running_var") => assert_constant(name, &v, 1.0),
                    (1, "bias") | (1, "running_mean") => assert_constant(name, &v, 0.0),
                    _ => panic!("{name}: not a parameter of a convolution block"),
                }
            }
            ["g" | "f", k, field] => {
                let weight = format!("{}.{k}.weight", parts[0]);
                let fan_in = shape(&weight)[1] as f64;
                assert!(matches!(field, "weight" | "bias"), "{name}");
                assert_uniform(name, &v, 1.0 / fan_in.sqrt());
            }
            ["text", "lstm", _] => {
                let hidden = shape("text.lstm.weight_hh")[1] as f64;
                assert_uniform(name, &v, 1.0 / hidden.sqrt());
            }
            ["text", "embedding", "weight"] => {
                let (mean, var) = moments(&v);
                let n = v.len() as f64;
                assert!(mean.abs() < 6.0 / n.sqrt(), "{name}: mean {mean}");
                assert!(
                    (var - 1.0).abs() < 6.0 * (2.0 / n).sqrt(),
                    "{name}: variance {var}"
                );
            }
            _ => panic!("{name}: a variable this test does not know"),
        }
    }
    let blocks = variables
        .keys()
        .filter(|n| n.ends_with("running_var"))
        .count();
    assert_eq!(blocks, 4, "four batch norms");
}

fn clevr() -> Task {
    let words = ["what", "color", "is", "the", "cube"];
    let index = |list: &[&str]| {
        list.iter()
            .enumerate()
            .map(|(i, w)| (w.to_string(), i + 1))
            .collect()
    };
    Task::Clevr {
        vocabulary: Vocabulary {
            words: index(&words),
            answers: index(&["red", "blue"]),
        },
    }
}

#[test]
fn a_seeded_network_starts_from_pytorchs_defaults() {
    for seed in [0, 3, 11] {
        assert_pytorch_defaults(&TorchRelationNet::seeded(
            seed,
            Task::SortOfClevr,
            Device::Cpu,
        ));
    }
    assert_pytorch_defaults(&TorchRelationNet::seeded(5, clevr(), Device::Cpu));
}

#[test]
fn re_initialised_layers_start_from_pytorchs_defaults() {
    // A network whose batch norms and weights were moved away from the defaults, then every
    // layer re-initialised: the copy starts where a fresh network does.
    let net = TorchRelationNet::seeded(1, Task::SortOfClevr, Device::Cpu);
    {
        let _guard = tch::no_grad_guard();
        for (_, mut t) in net.variables() {
            let moved = &t * 3.0 + 0.25;
            t.copy_(&moved);
        }
    }
    let all = net.layers_from_top().len();
    assert_pytorch_defaults(&net.randomised(all, 9));
}
