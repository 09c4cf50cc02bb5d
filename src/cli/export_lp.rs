//! `dtdcert export-lp`: one region question of one input (DESIGN.md §1.5) as an LP file, for
//! other solvers and for solver test suites.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::certify::check_layer_neuron;
use super::{check_sample, parse_domain, DataArgs, Outcome, RuleArgs, TargetArgs};
use crate::audit::resolve_target;
use crate::dtd::explain;
use crate::error::{Error, Result};
use crate::exact::program::LinearProgram;
use crate::exact::{Rational, Scalar};
use crate::lp::lpfile::write_lp_file;
use crate::model::forward;
use crate::region::problem::{
    chebyshev_program, composed_row_norms, root_program, Domain, Norm, NormSide, RegionView,
    RootPlane, Tightening,
};
use crate::region::{trace_and_pattern, Centre};

/// Which question the program answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LpProblem {
    /// Is there a valid root of the neuron? A zero objective: optimum 0, or infeasible.
    Exists,
    /// The valid root nearest to the layer input in the L1 norm (infeasible: none exists).
    NearestL1,
    /// The valid root nearest to the layer input in the L∞ norm (infeasible: none exists).
    NearestLinf,
    /// The largest Euclidean ball inside the region and the domain, as `min −r`.
    Chebyshev,
}

impl LpProblem {
    fn name(self) -> &'static str {
        match self {
            LpProblem::Exists => "exists",
            LpProblem::NearestL1 => "nearest-l1",
            LpProblem::NearestLinf => "nearest-linf",
            LpProblem::Chebyshev => "chebyshev",
        }
    }
}

/// Write one region problem of one input as an LP file (CPLEX LP format).
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  dtdcert export-lp --model examples/c6/model.onnx --inputs examples/c6/inputs.npy \\\n      --sample 3 --layer 2 --neuron 4 --problem nearest-l1 -o nearest.lp\n  \
dtdcert export-lp ... --sample 3 --layer 1 --problem chebyshev --domain 0:1 -o ball.lp\n  \
glpsol --lp nearest.lp -o nearest.txt\n\n\
The root problems are about neuron J of layer L: its roots are the points ã of layer L's input \
on the hyperplane w_J·ã = w_J·a − R_J, where a is the layer input of the sample and R_J the \
neuron's relevance in the train-free explanation of the explained output under the given \
rules; a root is valid in the region P_L(x) and the domain. Variables: ã = a + p − n \
(p_i, n_i >= 0), h<l>_<j> for active neurons feeding the next layer; rows z<l>_<j> are \
pre-activations, `root` the hyperplane. Under Clip, LeakyRelu and PRelu, a neuron feeding the \
next layer has u<l>_<j> = z (row z<l>_<j>) and, below 0, h<l>_<j> = slope · u (row a<l>_<j>); \
its faces are rows f<l>_<j> (at 0) or f<l>_<j>_lo and f<l>_<j>_hi (at a Clip's bounds), and a \
neuron at a Clip bound passes the bound on in the next layer's constants. `exists` is a pure feasibility problem (zero objective; \
`certify` poses the same question as nearest-l1, which solvers settle faster). The chebyshev problem (variables c_i and r) needs no \
neuron; --neuron is ignored for it. The file's header comments name the model fingerprint, the \
sample, layer, neuron, problem and relevance. Exit code 2 for bad input (a sample, layer or \
neuron out of range); nothing is written then."
)]
pub struct ExportLpArgs {
    /// `--model`, `--inputs`, `--inputs-key` and how the model is read.
    #[command(flatten)]
    pub data: DataArgs,
    /// `--rule`, `--input-rule`, `--layer-rule` and the rules' numerical options.
    #[command(flatten)]
    pub rules: RuleArgs,
    /// `--explain` or `--targets`: which output is explained for each input.
    #[command(flatten)]
    pub target: TargetArgs,
    /// The input (row), 0-based.
    #[arg(long, value_name = "I")]
    pub sample: usize,
    /// The layer of the neuron, 1-based (1: roots in the network input space).
    #[arg(long, value_name = "L")]
    pub layer: usize,
    /// The neuron of layer L, 0-based (not needed for chebyshev).
    #[arg(long, value_name = "J")]
    pub neuron: Option<usize>,
    /// The question the program answers.
    #[arg(long, value_enum)]
    pub problem: LpProblem,
    /// The input domain box LO:HI (layer 1 only; hidden layers use the non-negative orthant).
    #[arg(long, value_name = "LO:HI", allow_hyphen_values = true)]
    pub domain: Option<String>,
    /// The LP file to write.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub out: PathBuf,
}

/// The program of one export and the header comments describing it.
pub struct Exported {
    /// The linear program, as written to the LP file.
    pub program: LinearProgram,
    /// The header comment lines (model fingerprint, sample, layer, neuron, problem, sizes).
    pub comments: Vec<String>,
    /// The neuron's relevance `R_J` (root problems only).
    pub relevance: Option<f64>,
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Builds the program `args` describe (everything but writing it).
pub fn build(args: &ExportLpArgs) -> Result<Exported> {
    let mut dtd = args.rules.resolve_with(args.domain.as_deref())?;
    let input_box = args.domain.as_deref().map(parse_domain).transpose()?;
    let (model, inputs) = args.data.load()?;
    super::fit_rules(&mut dtd, &model)?;
    check_sample(&args.data.inputs, args.sample, inputs.len())?;
    let neuron = match args.problem {
        LpProblem::Chebyshev => None,
        _ => Some(args.neuron.ok_or_else(|| {
            Error::Usage(format!("--problem {} needs --neuron", args.problem.name()))
        })?),
    };
    check_layer_neuron(&model, args.layer, neuron)?;
    let targets = args.target.resolve(inputs.len())?;
    targets.validate(model.net().output_dim())?;
    let net = model.net();
    let m = args.layer - 1;
    let x = inputs.row(args.sample)?;
    // The sample's pattern, and its f64 trace as the centre: an LP file is an f64 program
    // (certificates centre on the exact layer input instead).
    let (trace, pattern, _) = trace_and_pattern(&model, &x);
    let traced = trace.layer_input(m);
    if let Some((i, v)) = traced.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::Invalid(format!(
            "input {} of layer {} is {v} for sample {}: the forward pass overflows",
            i, args.layer, args.sample
        )));
    }
    let centre = Centre::from_f64(traced).expect("checked finite");
    let domain = Domain::of_layer(model.net(), args.layer, input_box.map(|b| (b.lo, b.hi)));
    let view = RegionView {
        net,
        pattern: &pattern,
        layer: m,
        centre: &centre,
        domain,
    };
    let plain = forward(net, &x);
    let k = resolve_target(targets.for_sample(args.sample), plain.output());
    let mut comments = vec![
        format!("dtdcert {} export-lp", env!("CARGO_PKG_VERSION")),
        format!(
            "model {}: {}, {}",
            file_name(&args.data.model),
            net.describe(),
            model.fingerprint()
        ),
        format!(
            "sample {} of {}, layer {} (region P_{}(x) in its {}-dimensional input space)",
            args.sample,
            file_name(&args.data.inputs),
            args.layer,
            args.layer,
            centre.len()
        ),
        format!(
            "domain: {}",
            match domain {
                Domain::Free => "unbounded".to_string(),
                Domain::NonNegative => "non-negative".to_string(),
                Domain::Box { lo, hi } => format!("box [{lo:?}, {hi:?}]"),
            }
        ),
    ];
    let mut relevance = None;
    let (mut program, _) = match neuron {
        None => {
            comments.push(
                "problem chebyshev: the largest Euclidean ball (centre c, radius r) in the region \
                 and the domain, as min -r"
                    .into(),
            );
            let norms = composed_row_norms(net, &pattern, m);
            chebyshev_program(view, &norms, NormSide::Outer, Tightening::NONE)
        }
        Some(j) => {
            let explanation = explain(net, &plain, &dtd, k, false);
            let r = explanation.layers[m].upper[j];
            if !r.is_finite() {
                return Err(Error::Invalid(format!(
                    "the relevance of neuron {j} of layer {} is {r} for sample {}",
                    args.layer, args.sample
                )));
            }
            relevance = Some(r);
            let (norm, what) = match args.problem {
                LpProblem::Exists => (Norm::L1, "is there a valid root? (zero objective)"),
                LpProblem::NearestL1 => (Norm::L1, "the valid root nearest to a in L1"),
                LpProblem::NearestLinf => (Norm::Linf, "the valid root nearest to a in L-infinity"),
                LpProblem::Chebyshev => unreachable!("chebyshev has no neuron"),
            };
            let layer_rules = dtd.layer_rules_text();
            comments.push(format!(
                "neuron {j}, explained output {k}, rule {}{}{}, bias {}, initial relevance {}, relevance R = {r:?}",
                dtd.rule,
                dtd.input_rule
                    .map_or_else(String::new, |r| format!(", input rule {r}")),
                if layer_rules.is_empty() {
                    String::new()
                } else {
                    format!(", layer rules {layer_rules}")
                },
                serialised_name(&dtd.bias),
                serialised_name(&dtd.initial_relevance)
            ));
            comments.push(format!(
                "problem {}: {what}; roots: w_{j} . (a + p - n) = w_{j} . a - R",
                args.problem.name()
            ));
            let plane = RootPlane {
                neuron: j,
                relevance: Rational::from_f64(r),
            };
            root_program(view, Some(&plane), norm, Tightening::NONE)
        }
    };
    if args.problem == LpProblem::Exists {
        program.cost.iter_mut().for_each(|c| *c = 0.0);
    }
    if net.first_other_activation().is_some() {
        // Which piece each neuron's rows come from (ReLU files keep their header as it was).
        let bits = pattern.bit_strings();
        for (k, layer) in net.layers().iter().enumerate().skip(m) {
            if let Some(act) = layer.other_activation() {
                comments.push(format!(
                    "layer {} ({}) pieces: {}",
                    k + 1,
                    act.name(),
                    bits[k]
                ));
            }
        }
    }
    comments.push(format!(
        "{} variables, {} constraints, {} nonzeros",
        program.num_vars(),
        program.num_rows(),
        program.nonzeros()
    ));
    Ok(Exported {
        program,
        comments,
        relevance,
    })
}

/// Writes the program to `--out` and prints its size; always `Clean` when it succeeds.
pub fn run(args: ExportLpArgs) -> Result<Outcome> {
    let exported = build(&args)?;
    write_lp_file(&args.out, &exported.program, &exported.comments)?;
    println!(
        "{}: {} variables, {} constraints, {} nonzeros",
        args.out.display(),
        exported.program.num_vars(),
        exported.program.num_rows(),
        exported.program.nonzeros()
    );
    Ok(Outcome::Clean)
}

/// A unit enum's name as the settings files spell it (`ignore`, `output`, ...).
fn serialised_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => unreachable!("unit enums serialise to their names"),
    }
}
