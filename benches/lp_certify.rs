//! Certified answers to root questions, timed per answer (`Certifier::answer`: LP solves,
//! multipliers, exact check), on
//!
//! - the C6 network (examples/c6/model.onnx, examples/c6/inputs.npy): every first-layer
//!   neuron of several samples, free domain; exists, nearest-l1, nearest-linf;
//! - a 784-256-256-128-10 MLP with Gaussian weights scaled 1/sqrt(fan_in) and one random
//!   input in [0,1]^784 (seeded), layer 1, a sample of the neurons with nonzero relevance,
//!   domain [0,1]; exists, nearest-l1, nearest-linf.
//!
//! Each in three modes: `cold` (a fresh certifier per question: the region's composed rows
//! are built for it), `warm` (one certifier for the questions of a region, which differ only
//! in the hyperplane: composed rows and layered programs are reused) and `full programs`
//! (constraint generation off: the full layered programs and, for microlp, the explicit dual
//! programs — the path every answer falls back to). The check column times the exact check
//! of the answer's certificate on its own (the answer includes it already).
//!
//! Run with `cargo bench --bench lp_certify` (add `--features highs` for the HiGHS backend
//! too). Options after `--`: `--backend microlp|highs` (repeatable; default every backend of
//! the build), `--samples N` (C6 samples, default 10), `--neurons N` (MLP neurons, default
//! 20), `--linf-neurons N` (MLP L∞ neurons, default 10), `--full-neurons N` (MLP neurons in
//! the full-programs mode, default 2), `--time-limit S` (seconds per question, default 30),
//! `--only c6|mlp`, `--mlp-domain box|free` (default box).

mod common;

use std::path::Path;
use std::time::Instant;

use common::{wide_mlp, WIDTHS};
use dtdcert::check::{check, ExplanationRef, Problem};
use dtdcert::dtd::{explain, DtdSettings};
use dtdcert::lp::certify::{Answer, Certifier, QuestionRelevance, RegionCache, RegionQuestion};
use dtdcert::lp::{Backend, SolveOptions};
use dtdcert::model::forward::{argmax, forward};
use dtdcert::model::inputs::load_inputs;
use dtdcert::model::Model;
use dtdcert::region::problem::Domain;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Settings {
    backends: Vec<Backend>,
    samples: usize,
    neurons: usize,
    linf_neurons: usize,
    full_neurons: usize,
    time_limit: f64,
    only: Option<String>,
    mlp_free: bool,
}

impl Settings {
    fn from_args() -> Self {
        let mut s = Settings {
            backends: Vec::new(),
            samples: 10,
            neurons: 20,
            linf_neurons: 10,
            full_neurons: 2,
            time_limit: 30.0,
            only: None,
            mlp_free: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
            match a.as_str() {
                "--backend" => s.backends.push(Backend::parse(&value()).unwrap()),
                "--samples" => s.samples = value().parse().unwrap(),
                "--neurons" => s.neurons = value().parse().unwrap(),
                "--linf-neurons" => s.linf_neurons = value().parse().unwrap(),
                "--full-neurons" => s.full_neurons = value().parse().unwrap(),
                "--time-limit" => s.time_limit = value().parse().unwrap(),
                "--only" => s.only = Some(value()),
                "--mlp-domain" => {
                    s.mlp_free = match value().as_str() {
                        "free" => true,
                        "box" => false,
                        other => panic!("--mlp-domain: expected free or box, got {other}"),
                    }
                }
                // What cargo passes to every bench target.
                "--bench" => {}
                other => panic!("unknown option {other}"),
            }
        }
        if s.backends.is_empty() {
            s.backends.push(Backend::Microlp);
            #[cfg(feature = "highs")]
            s.backends.push(Backend::Highs);
        }
        s
    }

    fn runs(&self, workload: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == workload)
    }
}

/// How the certifier meets a question.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// A fresh certifier: nothing of the region is reused.
    Cold,
    /// One certifier for all questions, primed with one question on the same region: the
    /// region's composed rows and layered programs are reused.
    Warm,
    /// The full layered programs only (no constraint generation), fresh each time.
    Full,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Cold => "cold",
            Mode::Warm => "warm",
            Mode::Full => "full programs",
        }
    }
}

/// Times of one question, in seconds.
struct Timing {
    answer: f64,
    check: Option<f64>,
    screened: bool,
    kind: &'static str,
    /// Why the answer is Unknown.
    reason: Option<String>,
}

fn kind(a: &Answer) -> &'static str {
    match a {
        Answer::Found { .. } => "found",
        Answer::None => "none",
        Answer::Unknown { .. } => "unknown",
        _ => "other",
    }
}

fn certify_one(certifier: &Certifier, q: &RegionQuestion) -> Timing {
    let certified = certifier.answer(q);
    // The exact check of the certificate on its own (the answer ran it already).
    let check = certified.certificate.as_ref().map(|c| {
        let started = Instant::now();
        check(certifier.model, c).expect("a certificate from answer checks");
        started.elapsed().as_secs_f64()
    });
    Timing {
        answer: certified.seconds,
        check,
        screened: certified.screened,
        kind: kind(&certified.answer),
        reason: match certified.answer {
            Answer::Unknown { reason } => Some(reason),
            _ => None,
        },
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median_ms(values: impl Iterator<Item = f64>) -> String {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return "—".into();
    }
    v.sort_by(f64::total_cmp);
    format!("{:.2}", percentile(&v, 50.0) * 1e3)
}

fn report(workload: &str, backend: Backend, problem: Problem, mode: Mode, timings: &[Timing]) {
    let mut answers: Vec<f64> = timings.iter().map(|t| t.answer).collect();
    answers.sort_by(f64::total_cmp);
    let count = |k: &str| timings.iter().filter(|t| t.kind == k).count();
    println!(
        "| {workload} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {}/{}/{} |",
        backend.name(),
        problem.name(),
        mode.name(),
        timings.len(),
        percentile(&answers, 50.0) * 1e3,
        percentile(&answers, 90.0) * 1e3,
        answers[0] * 1e3,
        answers[answers.len() - 1] * 1e3,
        median_ms(timings.iter().filter_map(|t| t.check)),
        timings.iter().filter(|t| t.screened).count(),
        count("found"),
        count("none"),
        count("unknown"),
    );
}

/// Times `problem` on every question in `mode`, prints its table row, and adds the reasons of
/// Unknown answers to `unknown` (labelled with the backend and problem).
fn run(
    workload: &str,
    model: &Model,
    opts: SolveOptions,
    problem: Problem,
    mode: Mode,
    questions: &[RegionQuestion],
    unknown: &mut Vec<String>,
) {
    let certifier = |cache| Certifier {
        model,
        opts,
        model_path: None,
        inputs_path: None,
        cache,
    };
    let shared = certifier(RegionCache::default());
    let timings: Vec<Timing> = questions
        .iter()
        .map(|q| {
            let q = RegionQuestion {
                problem,
                ..q.clone()
            };
            match mode {
                Mode::Cold => certify_one(&certifier(RegionCache::default()), &q),
                Mode::Full => certify_one(&certifier(RegionCache::full_programs()), &q),
                Mode::Warm => {
                    // Primes the cache with the region of this question (a no-op when the
                    // previous question was on the same region).
                    let _ = shared.answer(&RegionQuestion {
                        problem: Problem::Exists,
                        ..q.clone()
                    });
                    certify_one(&shared, &q)
                }
            }
        })
        .collect();
    report(workload, opts.backend, problem, mode, &timings);
    let label = format!("{} {} {}", opts.backend.name(), problem.name(), mode.name());
    unknown.extend(
        timings
            .into_iter()
            .filter_map(|t| t.reason)
            .map(|r| format!("{label}: {r}")),
    );
}

/// Root questions for `neurons` of layer 1 of `x` (relevance: z+ rule, top output), without
/// those whose relevance is 0 when `relevant_only`.
fn questions(
    model: &Model,
    sample_index: usize,
    x: &[f64],
    domain: Domain,
    neurons: &[usize],
    relevant_only: bool,
) -> Vec<RegionQuestion> {
    let trace = forward(model.net(), x);
    let k = argmax(trace.output());
    let e = explain(model.net(), &trace, &DtdSettings::default(), k, false);
    let explained = ExplanationRef {
        output: k,
        settings: DtdSettings::default(),
    };
    neurons
        .iter()
        .filter(|&&j| !relevant_only || e.layers[0].upper[j] != 0.0)
        .map(|&j| RegionQuestion {
            sample_index,
            sample: x.to_vec(),
            layer: 1,
            neuron: Some(j),
            relevance: Some(QuestionRelevance::Explained(explained.clone())),
            domain,
            problem: Problem::Exists,
            constraint: None,
            centre: None,
        })
        .collect()
}

fn header() {
    println!(
        "| workload | backend | problem | mode | questions | median ms | p90 ms | min ms | max ms | check ms (median) | by constraint generation | found/none/unknown |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
}

fn main() {
    let s = Settings::from_args();
    let opts_for = |backend| SolveOptions {
        backend,
        time_limit: Some(s.time_limit),
    };
    println!(
        "certified root answers, time limit {} s per question",
        s.time_limit
    );
    header();
    let mut unknown = Vec::new();

    if s.runs("c6") {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/c6");
        let model = Model::load(&root.join("model.onnx")).unwrap();
        let inputs = load_inputs(&root.join("inputs.npy"), None).unwrap();
        let width = model.net().layers()[0].affine.out_dim();
        let neurons: Vec<usize> = (0..width).collect();
        let qs: Vec<RegionQuestion> = (0..s.samples.min(inputs.len()))
            .flat_map(|i| {
                let x = inputs.row(i).unwrap();
                questions(&model, i, &x, Domain::Free, &neurons, false)
            })
            .collect();
        let workload = format!("C6 10-10-10-2, {} samples × {width} neurons", s.samples);
        for &backend in &s.backends {
            for problem in [Problem::Exists, Problem::NearestL1, Problem::NearestLinf] {
                for mode in [Mode::Cold, Mode::Warm, Mode::Full] {
                    let opts = opts_for(backend);
                    run(&workload, &model, opts, problem, mode, &qs, &mut unknown);
                }
            }
        }
    }

    if s.runs("mlp") {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let model = Model::new(wide_mlp(&mut rng));
        let x: Vec<f64> = (0..WIDTHS[0]).map(|_| rng.random::<f32>() as f64).collect();
        let domain = if s.mlp_free {
            Domain::Free
        } else {
            Domain::Box { lo: 0.0, hi: 1.0 }
        };
        // Neurons with relevance 0 have the centre itself as their root: skip them.
        let neurons: Vec<usize> = (0..WIDTHS[1]).collect();
        let relevant = questions(&model, 0, &x, domain, &neurons, true);
        let stride = (relevant.len() / s.neurons.max(1)).max(1);
        let sample: Vec<RegionQuestion> = relevant
            .iter()
            .step_by(stride)
            .take(s.neurons)
            .cloned()
            .collect();
        let workload = format!(
            "MLP 784-256-256-128-10, layer 1, {} of {} relevant neurons, {}",
            sample.len(),
            relevant.len(),
            if s.mlp_free { "free" } else { "box [0,1]" }
        );
        for &backend in &s.backends {
            let opts = opts_for(backend);
            for problem in [Problem::Exists, Problem::NearestL1, Problem::NearestLinf] {
                let qs = if problem == Problem::NearestLinf {
                    &sample[..s.linf_neurons.min(sample.len())]
                } else {
                    &sample[..]
                };
                if qs.is_empty() {
                    continue;
                }
                for mode in [Mode::Cold, Mode::Warm] {
                    run(&workload, &model, opts, problem, mode, qs, &mut unknown);
                }
                let few = &qs[..s.full_neurons.min(qs.len())];
                if !few.is_empty() {
                    run(
                        &workload,
                        &model,
                        opts,
                        problem,
                        Mode::Full,
                        few,
                        &mut unknown,
                    );
                }
            }
        }
    }

    // Unknown answers by reason, most frequent first.
    let mut reasons: Vec<(String, usize)> = Vec::new();
    for r in unknown {
        match reasons.iter_mut().find(|(seen, _)| *seen == r) {
            Some((_, n)) => *n += 1,
            None => reasons.push((r, 1)),
        }
    }
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    if !reasons.is_empty() {
        println!("\nUnknown answers:");
    }
    for (r, n) in reasons {
        println!("  {n} × {r}");
    }
}
