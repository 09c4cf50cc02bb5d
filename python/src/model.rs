//! A loaded model and the library calls on it: explain, audit, region, certify and the
//! certificate check. Every call first checks that the model's file still holds the model.

use std::path::{Path, PathBuf};

use dtdcert::audit::explain::{input_relevances_counted, Arithmetic};
use dtdcert::audit::spec::RunSpec;
use dtdcert::audit::{
    AuditSettings, CertifySettings, InMemoryFiles, LpSettings, RootSample, Runner,
};
use dtdcert::check::{check_with, Memo, Problem};
use dtdcert::cli::certify::ProblemArg;
use dtdcert::exact::Scalar;
use dtdcert::lp::certify::question::SampleQuestion;
use dtdcert::lp::certify::Certifier;
use dtdcert::model::onnx::{load_bytes_with, OnnxOptions};
use dtdcert::model::{LoadOptions, Model, ModelFile};
use dtdcert::region::polytope;
use dtdcert::region::report::RegionReport;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayDyn};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::convert::{self, Rules, Source};
use crate::errors::IntoPy;
use crate::results::{NativeAudit, NativeCertificate};
use crate::watch;

/// What stands for the model's file when it was exported in memory.
const IN_MEMORY: &str = "<onnx>";

/// A loaded model: the network, and the file it came from (or the ONNX bytes of a network
/// exported in memory).
#[pyclass(module = "dtdcert._dtdcert", frozen)]
pub struct NativeModel {
    model: Model,
    file: Option<ModelFile>,
    onnx: Option<Vec<u8>>,
}

/// `(report as JSON, pattern per layer, G, h, constraint labels)` of `region`.
type RegionParts<'py> = (
    String,
    Vec<Option<Bound<'py, PyAny>>>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray2<u64>>,
);

/// `(accepted, claim, lower, upper, point, reason)` of a certificate check.
type CheckParts = (
    bool,
    Option<String>,
    Option<f64>,
    Option<f64>,
    Option<Vec<f64>>,
    Option<String>,
);

impl NativeModel {
    /// Refuses to go on when the model's file no longer holds the model.
    fn check_file(&self, py: Python<'_>) -> PyResult<()> {
        match &self.file {
            Some(file) => file.check(&self.model).py_err(py),
            None => Ok(()),
        }
    }

    /// The model's path as runs and certificates record it.
    fn path_buf(&self) -> PathBuf {
        match &self.file {
            Some(file) => file.path().to_path_buf(),
            None => PathBuf::from(IN_MEMORY),
        }
    }

    /// The model's load options (recorded in a run's spec).
    fn options(&self) -> LoadOptions {
        self.file
            .as_ref()
            .map(|f| f.options().clone())
            .unwrap_or_default()
    }
}

#[pymethods]
impl NativeModel {
    /// Loads an `.onnx` file or a `.json` description with safetensors weights.
    #[staticmethod]
    #[pyo3(signature = (path, keep_batch_norm=false, question=None, strip_softmax=false, split_residual=false))]
    fn load(
        py: Python<'_>,
        path: PathBuf,
        keep_batch_norm: bool,
        question: Option<Vec<f64>>,
        strip_softmax: bool,
        split_residual: bool,
    ) -> PyResult<Self> {
        let options = LoadOptions {
            keep_batch_norm,
            split_residual,
            question,
            strip_softmax,
        };
        let (model, file) = py.detach(|| ModelFile::load(&path, &options)).py_err(py)?;
        Ok(Self {
            model,
            file: Some(file),
            onnx: None,
        })
    }

    /// Reads the bytes of an ONNX file (a network exported in memory).
    #[staticmethod]
    #[pyo3(signature = (onnx, keep_batch_norm=false, strip_softmax=false))]
    fn from_onnx(
        py: Python<'_>,
        onnx: &Bound<'_, PyBytes>,
        keep_batch_norm: bool,
        strip_softmax: bool,
    ) -> PyResult<Self> {
        let bytes = onnx.as_bytes().to_vec();
        let options = OnnxOptions {
            keep_batch_norm,
            strip_softmax,
            ..OnnxOptions::default()
        };
        let net = py
            .detach(|| load_bytes_with(&bytes, Path::new(IN_MEMORY), options))
            .py_err(py)?;
        Ok(Self {
            model: Model::new(net),
            file: None,
            onnx: Some(bytes),
        })
    }

    /// SHA-256 of the architecture and parameters.
    #[getter]
    fn fingerprint(&self) -> String {
        self.model.fingerprint().to_string()
    }

    /// The model file as an absolute path; `None` for a network exported in memory.
    #[getter]
    fn path(&self) -> Option<String> {
        self.file.as_ref().map(|f| f.path().display().to_string())
    }

    /// The layer widths, as reports describe them.
    #[getter]
    fn architecture(&self) -> String {
        self.model.net().describe()
    }

    /// The width of one input.
    #[getter]
    fn input_dim(&self) -> usize {
        self.model.net().input_dim()
    }

    /// The number of outputs.
    #[getter]
    fn output_dim(&self) -> usize {
        self.model.net().output_dim()
    }

    /// The number of layers (layer 1 takes the network input).
    #[getter]
    fn num_layers(&self) -> usize {
        self.model.net().layers().len()
    }

    /// Input relevances, one row per input, shaped as the model's declared input when it is an
    /// image (N×C×H×W), else as the inputs.
    #[pyo3(signature = (inputs, inputs_key, explain, targets, rules, exact, domain, lp_time_limit, lp_backend, progress))]
    #[allow(clippy::too_many_arguments)]
    fn explain<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        inputs_key: Option<String>,
        explain: Option<usize>,
        targets: Option<&Bound<'py, PyBytes>>,
        rules: (
            String,
            Option<String>,
            Vec<String>,
            String,
            f64,
            f64,
            String,
        ),
        exact: bool,
        domain: Option<String>,
        lp_time_limit: f64,
        lp_backend: String,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        self.check_file(py)?;
        let source = Source::from_py(inputs, inputs_key)?;
        let targets_npy = targets.map(|b| b.as_bytes().to_vec());
        let model = &self.model;
        let prepared = py.detach(|| -> dtdcert::Result<_> {
            let mut dtd = rules_of(rules).resolve()?;
            dtdcert::cli::fit_rules(&mut dtd, model)?;
            let how = Arithmetic::new(
                &dtd,
                exact,
                convert::domain(domain.as_deref())?,
                convert::lp(lp_time_limit, &lp_backend)?,
            )?;
            let inputs = source.load(model.net().input_dim())?;
            let targets = convert::targets(explain, targets_npy.as_deref(), inputs.len())?;
            targets.validate(model.net().output_dim())?;
            Ok((dtd, how, inputs, targets))
        });
        let (dtd, how, inputs, targets) = prepared.py_err(py)?;
        let total = inputs.len() as u64;
        let array = watch::run(py, progress, total, |done| {
            input_relevances_counted(model, &inputs, &targets, &dtd, how, done)
        })?;
        // As `explain --out` writes them: in the model's declared input shape where it has
        // more than one axis (an image), else in the inputs' own shape.
        let shape: Vec<usize> = match model.net().input_shape().filter(|s| s.len() > 1) {
            Some(sample) => std::iter::once(inputs.len())
                .chain(sample.iter().copied())
                .collect(),
            None => inputs.shape().to_vec(),
        };
        let shaped = array
            .into_shape_with_order(ndarray::IxDyn(&shape))
            .expect("one relevance per input value");
        Ok(shaped.into_pyarray(py))
    }

    /// An audit of every input, held in memory.
    #[pyo3(signature = (inputs, inputs_key, explain, targets, rules, domain, exact, roots, certify, certify_all, lp_time_limit, lp_backend, root_sample, progress))]
    #[allow(clippy::too_many_arguments)]
    fn audit<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        inputs_key: Option<String>,
        explain: Option<usize>,
        targets: Option<&Bound<'py, PyBytes>>,
        rules: (
            String,
            Option<String>,
            Vec<String>,
            String,
            f64,
            f64,
            String,
        ),
        domain: Option<String>,
        exact: bool,
        roots: bool,
        certify: Option<String>,
        certify_all: bool,
        lp_time_limit: f64,
        lp_backend: String,
        root_sample: Option<(usize, u64)>,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<NativeAudit> {
        self.check_file(py)?;
        let source = Source::from_py(inputs, inputs_key)?;
        let targets_npy = targets.map(|b| b.as_bytes().to_vec());
        let model = &self.model;
        let model_path = self.path_buf();
        let options = self.options();
        let prepared = py.detach(|| -> dtdcert::Result<_> {
            let lp = convert::lp(lp_time_limit, &lp_backend)?;
            let mut settings = AuditSettings {
                dtd: rules_of(rules).resolve()?,
                domain: convert::domain(domain.as_deref())?
                    .map(|(lo, hi)| dtdcert::audit::DomainBox { lo, hi }),
                exact,
                keep_points: roots,
                // Held in memory whole: every record, written plain by `write`.
                records: dtdcert::audit::RecordsKept::All,
                compress: false,
                certify: certify
                    .as_deref()
                    .map(|name| -> dtdcert::Result<CertifySettings> {
                        Ok(CertifySettings {
                            problem: CertifySettings::problem_named(name)?,
                            all: certify_all,
                            model_path: self.file.as_ref().map(|f| f.path().to_path_buf()),
                            inputs_path: match &source {
                                Source::File(path, _) => Some(dtdcert::cli::absolute(path)?),
                                Source::Npy(_) => None,
                            },
                        })
                    })
                    .transpose()?,
                lp: LpSettings {
                    time_limit: lp.time_limit.expect("resolve sets a limit"),
                    backend: lp.backend,
                },
                torch: None,
                root_sample: root_sample.map(|(roots_per_layer, seed)| RootSample {
                    roots_per_layer,
                    seed,
                }),
            };
            settings.dtd.set_layer_kinds(model.net().kinds());
            settings.check(model)?;
            let inputs = source.load(model.net().input_dim())?;
            let targets = convert::targets(explain, targets_npy.as_deref(), inputs.len())?;
            let mut spec = RunSpec::with_inputs_fingerprint(
                model,
                &model_path,
                &inputs,
                source.path(),
                source.fingerprint()?,
                targets,
                settings,
                None,
            )?;
            spec.model.question = options.question.clone();
            spec.model.keep_batch_norm = options.keep_batch_norm;
            spec.model.split_residual = options.split_residual;
            spec.model.strip_softmax = options.strip_softmax;
            // What is held in memory keeps its placeholder name until the run is written.
            if self.file.is_none() {
                spec.model.path = PathBuf::from(IN_MEMORY);
            }
            match &source {
                Source::File(_, key) => spec.inputs.key.clone_from(key),
                Source::Npy(_) => spec.inputs.path = PathBuf::from(convert::ARRAY),
            }
            Ok((inputs, spec))
        });
        let (inputs, spec) = prepared.py_err(py)?;
        let total = spec.samples().count() as u64;
        let mut run = watch::run(py, progress, total, |done| {
            runner(false, false).audit(model, &inputs, &spec, done)
        })?;
        run.in_memory = InMemoryFiles {
            model_onnx: self.onnx.clone(),
            inputs_npy: source.in_memory(),
            targets_npy,
        };
        Ok(NativeAudit::new(run))
    }

    /// The activation pattern of one input and its region seen from `layer`: the report of
    /// `dtdcert region --json`, the pattern per layer, and the polytope `G a + h >= 0` with
    /// the (layer, neuron) of each row.
    #[pyo3(signature = (inputs, inputs_key, sample, layer))]
    fn region<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        inputs_key: Option<String>,
        sample: Option<usize>,
        layer: usize,
    ) -> PyResult<RegionParts<'py>> {
        self.check_file(py)?;
        let source = Source::from_py(inputs, inputs_key)?;
        let model = &self.model;
        let computed = py.detach(|| -> dtdcert::Result<_> {
            let inputs = source.load(model.net().input_dim())?;
            let (i, x) = convert::sample(&inputs, source.path(), sample)?;
            let report = RegionReport::new(model, i, &x, layer)?;
            let p = polytope(model.net(), &report.pattern, layer - 1);
            Ok((report, p))
        });
        let (report, p) = computed.py_err(py)?;
        let pattern = (0..report.pattern.num_layers())
            .map(|k| {
                if let Some(mask) = report.pattern.layer(k) {
                    Some(mask.to_vec().into_pyarray(py).into_any())
                } else {
                    report.pattern.selection(k).map(|s| {
                        s.selected
                            .iter()
                            .map(|&w| u64::from(w))
                            .collect::<Vec<u64>>()
                            .into_pyarray(py)
                            .into_any()
                    })
                }
            })
            .collect();
        let rows = ndarray::Array2::from_shape_fn((p.rows.len(), 2), |(r, c)| match c {
            0 => p.rows[r].0 as u64,
            _ => p.rows[r].1 as u64,
        });
        let json = serde_json::to_string_pretty(&report).expect("reports serialise");
        Ok((
            json,
            pattern,
            p.g.into_pyarray(py),
            p.h.into_pyarray(py),
            rows.into_pyarray(py),
        ))
    }

    /// One region question for one input: the report `dtdcert certify` prints (as JSON) and
    /// the certificate, if the answer is certified.
    #[pyo3(signature = (inputs, inputs_key, sample, layer, neuron, problem, constraint, domain, explain, targets, rules, lp_time_limit, lp_backend, progress))]
    #[allow(clippy::too_many_arguments)]
    fn certify<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        inputs_key: Option<String>,
        sample: Option<usize>,
        layer: usize,
        neuron: Option<usize>,
        problem: String,
        constraint: Option<(usize, usize)>,
        domain: Option<String>,
        explain: Option<usize>,
        targets: Option<&Bound<'py, PyBytes>>,
        rules: (
            String,
            Option<String>,
            Vec<String>,
            String,
            f64,
            f64,
            String,
        ),
        lp_time_limit: f64,
        lp_backend: String,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(String, Option<NativeCertificate>)> {
        self.check_file(py)?;
        let source = Source::from_py(inputs, inputs_key)?;
        let targets_npy = targets.map(|b| b.as_bytes().to_vec());
        let model = &self.model;
        let model_path = self.path();
        let problem: ProblemArg = convert::value_enum("problem", &problem).py_err(py)?;
        let prepared = py.detach(|| -> dtdcert::Result<_> {
            let mut dtd = rules_of(rules).resolve()?;
            dtdcert::cli::fit_rules(&mut dtd, model)?;
            let opts = convert::lp(lp_time_limit, &lp_backend)?;
            let inputs = source.load(model.net().input_dim())?;
            let (i, x) = convert::sample(&inputs, source.path(), sample)?;
            let targets = convert::targets(explain, targets_npy.as_deref(), inputs.len())?;
            targets.validate(model.net().output_dim())?;
            let input_box = convert::domain(domain.as_deref())?;
            let inputs_path = match &source {
                Source::File(path, _) => Some(dtdcert::cli::absolute(path)?.display().to_string()),
                Source::Npy(_) => None,
            };
            Ok((
                dtd,
                opts,
                i,
                x,
                targets.for_sample(i),
                input_box,
                inputs_path,
            ))
        });
        let (dtd, opts, i, x, target, input_box, inputs_path) = prepared.py_err(py)?;
        let question = SampleQuestion {
            sample: i,
            x: &x,
            layer,
            neuron,
            constraint,
            input_box,
            dtd: &dtd,
            target,
        };
        if problem == ProblemArg::Step {
            let report = watch::run(py, progress, 1, |_| question.step(model))?;
            return Ok((
                serde_json::to_string_pretty(&report).expect("reports serialise"),
                None,
            ));
        }
        let certifier = Certifier {
            model,
            opts,
            model_path,
            inputs_path,
            cache: Default::default(),
        };
        let problem: Problem = problem.into();
        let (report, certificate) = watch::run(py, progress, 1, |done| {
            let answered = question.certify(&certifier, problem);
            done.store(1, std::sync::atomic::Ordering::Relaxed);
            answered
        })?;
        Ok((
            serde_json::to_string_pretty(&report).expect("reports serialise"),
            certificate.map(NativeCertificate::new),
        ))
    }

    /// Checks a certificate against this model, exactly and without any LP code: `(accepted,
    /// claim, lower, upper, point, reason)`. A certificate of another format, or for another
    /// model, is rejected with the reason.
    fn check_certificate(
        &self,
        py: Python<'_>,
        certificate: &NativeCertificate,
    ) -> PyResult<CheckParts> {
        self.check_file(py)?;
        let model = &self.model;
        let cert = certificate.certificate();
        let checked = watch::run(py, None, 1, |_| {
            Ok(check_with(model, &Memo::default(), cert))
        })?;
        Ok(match checked {
            Ok(acc) => (
                true,
                Some(claim_name(acc.claim)),
                acc.lower.as_ref().map(Scalar::to_f64),
                acc.upper.as_ref().map(Scalar::to_f64),
                acc.point,
                None,
            ),
            Err(rejection) => (false, None, None, None, None, Some(rejection.0)),
        })
    }
}

/// A claim as certificates spell it (`feasible`, `infeasible`, ...).
pub fn claim_name(claim: dtdcert::check::Claim) -> String {
    serde_json::to_value(claim)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{claim:?}"))
}

/// The rule options as the Python layer passes them: `(rule, input_rule, layer_rules, bias,
/// stabilizer, denominator_threshold, initial_relevance)`.
fn rules_of(
    r: (
        String,
        Option<String>,
        Vec<String>,
        String,
        f64,
        f64,
        String,
    ),
) -> Rules {
    Rules {
        rule: r.0,
        input_rule: r.1,
        layer_rules: r.2,
        bias: r.3,
        stabilizer: r.4,
        denominator_threshold: r.5,
        initial_relevance: r.6,
    }
}

/// The runner of audits held in memory and of their folders (exact engine, the reports of
/// `dtdcert audit`).
pub fn runner(csv: bool, force: bool) -> Runner<'static> {
    Runner {
        backend: None,
        reports: &dtdcert::report::Reports,
        options: dtdcert::audit::OutputOptions {
            progress: false,
            csv,
            force,
        },
    }
}
