//! Hostile input, at the command line and in the numeric core.
//!
//! 1. Malformed files (DESIGN.md §3): truncated, foreign or empty files, absurd declared sizes,
//!    non-finite weights, mismatched shapes, unsupported operators, cyclic or unordered graphs,
//!    wrong dtypes and widths, empty inputs, unreadable paths. Every command that reads the file
//!    refuses it with exit code 2 and exactly one `error:` line naming the file and the problem,
//!    without a panic, within a time limit, and without writing anything: neither the `--out`
//!    target nor a staging entry (`.NAME.tmp-PID`, `.NAME.PID-N.tmp`) beside it.
//! 2. Adversarial numerics (DESIGN.md §1.4): networks and points where plain f64 evaluation gets
//!    the sign of a pre-activation wrong (cancellation, points a few ulps from a face, 1e150
//!    next to 1e-150, underflow, cancellation in a hidden layer carried to the next). The naive
//!    f64 verdict is computed here to show it is wrong; dtdcert's verdicts (`trace_and_pattern`,
//!    `membership_filtered`, `membership_batch`, `audit_sample`) must equal the exact rational
//!    ones and record `Compensated` (patterns), `Refined` or `ExactFallback` where the f64
//!    error bound could not decide (`ExactFallback` where neither later tier could).
//! 3. Resource limits: files declaring absurd sizes are refused quickly, naming the size, by a
//!    process whose address space is capped far below what the declared size would need.
//!
//! Fixtures: `tests/data/hostile/` (written by `tests/data/hostile/make_fixtures.py`, standard
//! library only), the invalid files of `tests/data/onnx/` and `tests/data/bad/`, and ONNX graphs
//! built here with the crate's own protobuf types.

mod util;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dtdcert::audit::{audit_sample, AuditSettings};
use dtdcert::dtd::DtdSettings;
use dtdcert::exact::{Rational, Scalar};
use dtdcert::model::ir::dense_layer;
use dtdcert::model::{forward, Layer, Model, Network};
use dtdcert::region::{
    membership, membership_batch, membership_filtered, trace_and_pattern, trace_with_errors_if,
    Decision, Membership, Pattern,
};
use ndarray::Array2;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{ModelProto, NodeProto, TensorProto, ValueInfoProto};
use protobuf::Message;
use tempfile::TempDir;
use util::onnx::{attr_int, floats};
use util::to_exact;

// =============================================================================================
// Running the binary
// =============================================================================================

/// The 3-4-2 network that the files of tests/data/hostile/ vary; 3-wide inputs pair with it.
const VALID_JSON: &str = "tests/data/hostile/valid.json";
const INPUTS_3: &str = "tests/data/npy/inputs_f64_4x3.npy";
/// A 4-8-3 ONNX export and its 4-wide inputs.
const ONNX_4: &str = "tests/data/onnx/mlp_4_8_3_opset13.onnx";
const INPUTS_4: &str = "tests/data/onnx/mlp_4_8_3_opset13.inputs.npy";
/// 10-wide inputs.
const INPUTS_10: &str = "examples/c6/inputs.npy";

/// No refusal may take longer than this (a hang is a failure, not a stuck test run).
const PATIENCE: Duration = Duration::from_secs(30);
/// A file declaring an absurd size must be refused within this.
const QUICK: Duration = Duration::from_secs(2);
/// The address-space cap for runs on files declaring absurd sizes: far below every declared
/// size below (8 GiB and up), far above what refusing a small file needs.
const ADDRESS_SPACE_KIB: u64 = 2 << 20;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How one run of the binary ended.
struct Run {
    /// `None`: killed by a signal (an abort on a failed allocation, a stack overflow).
    code: Option<i32>,
    status: String,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `dtdcert ARGS` from the package root, killing it after [`PATIENCE`]. With `capped`
/// (on Unix), the process runs under `ulimit -v` [`ADDRESS_SPACE_KIB`], so a loader that
/// allocates what a header declares dies instead of succeeding by luck.
fn dtdcert(args: &[OsString], capped: bool) -> Run {
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let bin = env!("CARGO_BIN_EXE_dtdcert");
    let mut cmd = if capped && cfg!(unix) {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!(
                "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""
            ))
            .arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args)
        .current_dir(root())
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("the binary starts");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > PATIENCE {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "dtdcert {} ran for more than {PATIENCE:?}: {}",
                shown(args),
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    Run {
        code: status.code(),
        status: format!("{status}"),
        stdout: String::from_utf8_lossy(&fs::read(&out_path).unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&fs::read(&err_path).unwrap()).into_owned(),
        elapsed,
    }
}

fn shown(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every entry under `dir` with its bytes (`None` for folders), relative to `dir`.
fn tree(dir: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    fn walk(base: &Path, dir: &Path, into: &mut Vec<(PathBuf, Option<Vec<u8>>)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(base).unwrap().to_path_buf();
            if path.is_dir() {
                into.push((rel, None));
                walk(base, &path, into);
            } else {
                into.push((rel, fs::read(&path).ok()));
            }
        }
    }
    let mut entries = Vec::new();
    walk(dir, dir, &mut entries);
    entries.sort();
    entries
}

/// Names in `dir` that look like dtdcert's staging entries: `.NAME.tmp-PID` folders and
/// `.NAME.PID-N.tmp` files.
fn staging_entries(dir: &Path) -> Vec<String> {
    let Ok(read) = fs::read_dir(dir) else {
        return Vec::new();
    };
    read.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with('.') && (n.contains(".tmp-") || n.ends_with(".tmp")))
        .collect()
}

/// What a refusal must say: every needle, case-insensitively; `a|b` accepts either.
#[derive(Clone, Copy)]
struct Expect<'a> {
    needles: &'a [&'a str],
    /// Run under the address-space cap and require an answer within [`QUICK`].
    absurd_size: bool,
}

fn says<'a>(needles: &'a [&'a str]) -> Expect<'a> {
    Expect {
        needles,
        absurd_size: false,
    }
}

fn says_quickly<'a>(needles: &'a [&'a str]) -> Expect<'a> {
    Expect {
        needles,
        absurd_size: true,
    }
}

/// Runs `dtdcert ARGS` (the output option is appended: `--out W/out` for `audit` and `repro`,
/// `--out W/out.npy` for `explain`, nothing for `region`) and checks the refusal: exit code 2,
/// no panic, exactly one stderr line starting `error: ` with every needle, the working folder
/// `W` still empty, and no staging entry beside the files read. Returns stderr.
#[track_caller]
fn expect_refusal(args: &[&OsStr], expect: Expect<'_>) -> String {
    let work = tempfile::tempdir().unwrap();
    let mut full: Vec<OsString> = args.iter().map(|a| a.to_os_string()).collect();
    match args[0].to_str() {
        Some("region") => {}
        Some("explain") => full.extend(["--out".into(), work.path().join("out.npy").into()]),
        _ => full.extend(["--out".into(), work.path().join("out").into()]),
    }
    let run = dtdcert(&full, expect.absurd_size);
    let context = format!(
        "dtdcert {}\n--- {} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
        shown(&full),
        run.status,
        run.elapsed,
        run.stdout,
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "a panic\n{context}");
    assert_eq!(run.code, Some(2), "exit status\n{context}");
    assert!(run.stderr.starts_with("error: "), "no `error:`\n{context}");
    assert_eq!(
        run.stderr.trim_end().lines().count(),
        1,
        "not exactly one line\n{context}"
    );
    let lower = run.stderr.to_lowercase();
    for needle in expect.needles {
        assert!(
            needle
                .split('|')
                .any(|alt| lower.contains(&alt.to_lowercase())),
            "stderr lacks {needle:?}\n{context}"
        );
    }
    if expect.absurd_size {
        assert!(
            run.elapsed < QUICK,
            "took {:?}, more than {QUICK:?}\n{context}",
            run.elapsed
        );
    }
    let left = tree(work.path());
    assert!(left.is_empty(), "written: {left:?}\n{context}");
    // Nothing staged beside the files read either (the command must not write there at all).
    for arg in args {
        let path = root().join(arg);
        if let Some(parent) = path.parent().filter(|_| path.exists()) {
            let staged = staging_entries(parent);
            assert!(
                staged.is_empty(),
                "staging entries {staged:?} in {parent:?}\n{context}"
            );
        }
    }
    run.stderr
}

fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

/// Every command that reads a model and inputs refuses them alike.
#[track_caller]
fn refused_by_every_command(model: &Path, inputs: &Path, expect: Expect<'_>) {
    refused_by_every_command_at(model, inputs, 0, expect)
}

/// As [`refused_by_every_command`], with `region` looking at `sample`.
#[track_caller]
fn refused_by_every_command_at(model: &Path, inputs: &Path, sample: usize, expect: Expect<'_>) {
    let sample = sample.to_string();
    let data = [os("--model"), os(model), os("--inputs"), os(inputs)];
    let commands: [&[&OsStr]; 4] = [
        &[os("audit"), os("-q")],
        &[os("explain")],
        &[os("region"), os("--sample"), os(&sample)],
        &[os("repro"), os("mlp-roots")],
    ];
    for cmd in commands {
        let args: Vec<&OsStr> = cmd.iter().chain(&data).copied().collect();
        expect_refusal(&args, expect);
    }
}

fn p(rel: &str) -> PathBuf {
    PathBuf::from(rel)
}

/// The control: the valid model of tests/data/hostile/ with 3-wide inputs is accepted, so
/// each refusal below is about the one thing its file changes.
#[test]
fn the_valid_hostile_fixture_is_accepted() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("run");
    let args: Vec<OsString> = [
        os("audit"),
        os("-q"),
        os("--model"),
        os(VALID_JSON),
        os("--inputs"),
        os(INPUTS_3),
        os("--out"),
        os(&out),
    ]
    .iter()
    .map(|a| a.to_os_string())
    .collect();
    let run = dtdcert(&args, false);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(out.join("summary.json").is_file());
    let model = Model::load(&root().join(VALID_JSON)).unwrap();
    assert_eq!(model.net().widths(), [3, 4, 2]);
}

// =============================================================================================
// ONNX graphs built here
// =============================================================================================

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    util::onnx::node(op, name, inputs, outputs, vec![])
}

/// `Gemm(data, w, b)` with `transB = 1`, as torch writes `nn.Linear`.
fn gemm(name: &str, data: &str, w: &str, b: &str, out: &str) -> NodeProto {
    util::onnx::node(
        "Gemm",
        name,
        &[data, w, b],
        &[out],
        vec![attr_int("transB", 1)],
    )
}

/// A tensor value `[batch, width]` of element type `elem`.
fn value(name: &str, width: i64, elem: DataType) -> ValueInfoProto {
    util::onnx::value(name, &[None, Some(width)], elem)
}

/// A model with the graph output `[batch, 2]` of floats.
fn onnx_model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, input: ValueInfoProto) -> ModelProto {
    util::onnx::model(nodes, inits, input, value("output", 2, DataType::FLOAT))
}

/// The 3-4-2 network's initializers (the values do not matter to these tests).
fn inits_3_4_2() -> Vec<TensorProto> {
    vec![
        floats("w1", &[4, 3], &[0.5; 12]),
        floats("b1", &[4], &[0.25; 4]),
        floats("w2", &[2, 4], &[-0.5; 8]),
        floats("b2", &[2], &[1.0; 2]),
    ]
}

/// Gemm → Relu → Gemm, 3 inputs, 2 outputs: accepted (the control for the variants below).
fn mlp_onnx() -> ModelProto {
    onnx_model(
        vec![
            gemm("fc1", "input", "w1", "b1", "h"),
            node("Relu", "relu", &["h"], &["r"]),
            gemm("fc2", "r", "w2", "b2", "output"),
        ],
        inits_3_4_2(),
        value("input", 3, DataType::FLOAT),
    )
}

/// Writes `bytes` as `DIR/name` and returns the path.
fn write_in(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, bytes).unwrap();
    path
}

fn write_onnx(dir: &TempDir, name: &str, m: &ModelProto) -> PathBuf {
    write_in(dir, name, &m.write_to_bytes().unwrap())
}

#[test]
fn the_onnx_control_built_here_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_onnx(&dir, "mlp.onnx", &mlp_onnx());
    let model = Model::load(&path).expect("the control graph loads");
    assert_eq!(model.net().widths(), [3, 4, 2]);
}

// =============================================================================================
// 1. Malformed files
// =============================================================================================

#[test]
fn truncated_onnx_is_refused_and_no_prefix_of_a_model_loads_as_another_network() {
    refused_by_every_command(
        &p("tests/data/onnx/truncated.onnx"),
        &p(INPUTS_3),
        says(&["truncated.onnx", "truncated"]),
    );
    // Every proper prefix of a real export: refused, or (a cut between two complete top-level
    // fields that the loader does not need) the very same network. Never another network,
    // never a panic.
    let full = fs::read(root().join(ONNX_4)).unwrap();
    let reference = Model::load(&root().join(ONNX_4)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.onnx");
    let mut refused = 0;
    for len in 0..full.len() {
        fs::write(&path, &full[..len]).unwrap();
        match Model::load(&path) {
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("cut.onnx"), "prefix {len}: {text}");
                refused += 1;
            }
            Ok(m) => assert_eq!(
                m.fingerprint(),
                reference.fingerprint(),
                "a {len}-byte prefix of {ONNX_4} loads as another network"
            ),
        }
    }
    assert!(refused > full.len() * 9 / 10, "{refused} of {}", full.len());
    // Two cuts through the command line: inside the graph, and one byte short.
    for len in [full.len() / 2, full.len() - 1] {
        let cut = write_in(&dir, &format!("cut_{len}.onnx"), &full[..len]);
        refused_by_every_command(
            &cut,
            &p(INPUTS_4),
            says(&[&format!("cut_{len}.onnx"), "truncated"]),
        );
    }
}

#[test]
fn files_that_are_not_onnx_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let npy = fs::read(root().join(INPUTS_3)).unwrap();
    let safetensors = fs::read(root().join("tests/data/hostile/valid.safetensors")).unwrap();
    let cases: Vec<(PathBuf, String)> = vec![
        (p("tests/data/onnx/not_onnx.onnx"), "not_onnx.onnx".into()),
        (
            write_in(&dir, "png.onnx", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01"),
            "png.onnx".into(),
        ),
        (write_in(&dir, "npy.onnx", &npy), "npy.onnx".into()),
        (
            write_in(&dir, "safetensors.onnx", &safetensors),
            "safetensors.onnx".into(),
        ),
        (
            write_in(&dir, "zip.onnx", b"PK\x03\x04\x14\0\0\0\0\0garbage"),
            "zip.onnx".into(),
        ),
    ];
    for (path, name) in &cases {
        refused_by_every_command(
            path,
            &p(INPUTS_3),
            says(&[name, "not an onnx|truncated|protobuf"]),
        );
    }
}

#[test]
fn empty_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let empty_json = write_in(&dir, "empty.json", b"");
    let cases: [(&Path, &Path, &[&str]); 4] = [
        (
            &p("tests/data/onnx/empty.onnx"),
            &p(INPUTS_3),
            &["empty.onnx", "empty"],
        ),
        (&empty_json, &p(INPUTS_3), &["empty.json", "empty|EOF"]),
        (
            &p("tests/data/hostile/empty_weights.json"),
            &p(INPUTS_3),
            &["empty_weights.safetensors", "empty"],
        ),
        (
            &p(VALID_JSON),
            &p("tests/data/bad/inputs_empty.npy"),
            &["inputs_empty.npy", "empty"],
        ),
    ];
    for (model, inputs, needles) in cases {
        refused_by_every_command(model, inputs, says(needles));
    }
}

/// An ONNX initializer whose dims promise far more values than the file holds is refused from
/// its header, before anything is allocated for it: quickly, by a process whose address space
/// is capped at 2 GiB, with a message naming the tensor and the size.
#[test]
fn onnx_initializer_declaring_enormous_dimensions_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let with_w1 = |t: TensorProto| {
        let mut m = mlp_onnx();
        let g = m.graph.as_mut().unwrap();
        g.initializer[0] = t;
        m
    };
    let big = 1i64 << 31;
    let mut listed = floats("w1", &[1 << 15, 1 << 16], &[]);
    listed.float_data = vec![0.5; 12];
    let cases: Vec<(&str, TensorProto, &[&str])> = vec![
        // 2^62 values (16 EiB of f32) over 48 bytes.
        (
            "square_2_31.onnx",
            floats("w1", &[big, big], &[0.5; 12]),
            &["'w1'", "2147483648", "values|shape"],
        ),
        // Exactly 2^31 values (8 GiB) over 48 bytes of raw data, and over 12 listed floats.
        (
            "raw_2_31.onnx",
            floats("w1", &[1 << 15, 1 << 16], &[0.5; 12]),
            &["'w1'", "48 bytes", "8589934592"],
        ),
        (
            "listed_2_31.onnx",
            listed,
            &["'w1'", "12 values", "2147483648"],
        ),
        // Dimensions whose product overflows 64 bits.
        (
            "overflow.onnx",
            floats("w1", &[i64::MAX, i64::MAX], &[0.5; 12]),
            &["'w1'", "9223372036854775807", "values|shape"],
        ),
        (
            "negative.onnx",
            floats("w1", &[-4, 3], &[0.5; 12]),
            &["'w1'", "negative"],
        ),
    ];
    for (name, tensor, needles) in cases {
        let path = write_onnx(&dir, name, &with_w1(tensor));
        let needles: Vec<&str> = [name].iter().chain(needles).copied().collect();
        refused_by_every_command(&path, &p(INPUTS_3), says_quickly(&needles));
        // The library call itself: a typed error naming the file, in well under a second.
        let start = Instant::now();
        let err = Model::load(&path).expect_err(name);
        assert!(start.elapsed() < QUICK, "{name}: {:?}", start.elapsed());
        assert!(err.to_string().contains(name), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
}

#[test]
fn non_finite_weights_in_safetensors_are_refused() {
    for (file, needles) in [
        (
            "nan_weight.json",
            &[
                "nan_weight.json",
                "layer 1",
                "weight [1, 2]",
                "NaN",
                "finite",
            ][..],
        ),
        (
            "neg_inf_weight.json",
            &[
                "neg_inf_weight.json",
                "layer 2",
                "weight [0, 3]",
                "-inf",
                "finite",
            ],
        ),
        (
            "inf_bias.json",
            &["inf_bias.json", "layer 2", "bias [1]", "inf", "finite"],
        ),
    ] {
        let model = p(&format!("tests/data/hostile/{file}"));
        refused_by_every_command(&model, &p(INPUTS_3), says(needles));
    }
}

#[test]
fn shapes_that_do_not_chain_are_refused() {
    refused_by_every_command(
        &p("tests/data/hostile/layer_mismatch.json"),
        &p(INPUTS_3),
        says(&["layer_mismatch.json", "fc2.weight", "[2, 5]", "4 outputs"]),
    );
    refused_by_every_command(
        &p("tests/data/hostile/bias_mismatch.json"),
        &p(INPUTS_3),
        says(&["bias_mismatch.json", "fc1.bias", "[3]", "[4]"]),
    );
    // The same in ONNX: the second Gemm takes 5 values, the first gives 4.
    let dir = tempfile::tempdir().unwrap();
    let mut m = mlp_onnx();
    m.graph.as_mut().unwrap().initializer[2] = floats("w2", &[2, 5], &[-0.5; 10]);
    let path = write_onnx(&dir, "chain.onnx", &m);
    refused_by_every_command(&path, &p(INPUTS_3), says(&["chain.onnx", "fc2", "5", "4"]));
}

#[test]
fn unsupported_operators_are_refused_naming_node_and_operator() {
    refused_by_every_command(
        &p("tests/data/onnx/unsupported_sigmoid.onnx"),
        &p(INPUTS_3),
        says(&["unsupported_sigmoid.onnx", "Sigmoid", "unsupported"]),
    );
    let dir = tempfile::tempdir().unwrap();
    for (file, op, domain) in [
        ("softmax.onnx", "Softmax", ""),
        ("lstm.onnx", "LSTM", ""),
        ("custom.onnx", "FusedGemm", "com.microsoft"),
    ] {
        let mut m = mlp_onnx();
        let g = m.graph.as_mut().unwrap();
        g.node[1].op_type = op.into();
        g.node[1].name = "the_odd_one".into();
        g.node[1].domain = domain.into();
        let path = write_onnx(&dir, file, &m);
        refused_by_every_command(
            &path,
            &p(INPUTS_3),
            says(&[file, op, "the_odd_one", "unsupported"]),
        );
    }
}

/// Clip, LeakyRelu and PRelu models are audited, explained, and read by the commands built on
/// linear programs (`region`, `certify`, `check-cert`, `export-lp`, `audit --certify`), each
/// certificate re-checked by `check-cert`; full-backward DTD and `repro` read ReLU networks
/// only and refuse them, naming the file, the layer and the activation.
#[test]
fn activations_other_than_relu_are_certified_and_refused_where_only_relu_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, NodeProto, Vec<TensorProto>); 3] = [
        (
            "relu6.onnx",
            "Clip",
            node("Clip", "act", &["h", "lo", "hi"], &["r"]),
            vec![floats("lo", &[], &[0.0]), floats("hi", &[], &[6.0])],
        ),
        (
            "leaky.onnx",
            "LeakyRelu",
            node("LeakyRelu", "act", &["h"], &["r"]),
            vec![],
        ),
        (
            "prelu.onnx",
            "PRelu",
            node("PRelu", "act", &["h", "slope"], &["r"]),
            vec![floats("slope", &[4], &[0.25, 0.5, 0.125, 0.0])],
        ),
    ];
    for (file, op, act, extra) in cases {
        let mut m = mlp_onnx();
        let g = m.graph.as_mut().unwrap();
        g.node[1] = act;
        g.initializer.extend(extra);
        let path = write_onnx(&dir, file, &m);
        let net = dtdcert::model::onnx::load(&path).expect("the forward pass reads it");
        assert_eq!(net.layers()[0].activation.name(), op);
        let data = [os("--model"), os(&path), os("--inputs"), os(INPUTS_3)];
        let work = tempfile::tempdir().unwrap();
        let w = |name: &str| work.path().join(name);
        let root = ["--sample", "0", "--layer", "1", "--neuron", "0"];
        let accepted: Vec<(Vec<&str>, PathBuf)> = vec![
            (vec!["audit", "-q"], w("run")),
            (vec!["explain"], w("r.npy")),
            // (w² roots: this network's z+ roots of its negative output have no denominator.)
            (
                vec![
                    "audit",
                    "-q",
                    "--rule",
                    "w2",
                    "--certify",
                    "exists",
                    "--certify-all",
                ],
                w("certified"),
            ),
            (
                vec!["explain", "--rule", "nearest-valid:l1"],
                w("valid.npy"),
            ),
            (
                [&["certify", "--problem", "nearest-l1"][..], &root].concat(),
                w("cert.json"),
            ),
            (
                [&["export-lp", "--problem", "nearest-l1"][..], &root].concat(),
                w("root.lp"),
            ),
            (
                vec![
                    "export-lp",
                    "--problem",
                    "chebyshev",
                    "--sample",
                    "0",
                    "--layer",
                    "1",
                ],
                w("ball.lp"),
            ),
        ];
        for (cmd, out) in &accepted {
            let out_flag = if cmd[0] == "export-lp" { "-o" } else { "--out" };
            let args: Vec<OsString> = cmd
                .iter()
                .map(OsString::from)
                .chain(data.iter().map(|a| a.to_os_string()))
                .chain([OsString::from(out_flag), out.as_os_str().to_os_string()])
                .collect();
            let run = dtdcert(&args, false);
            assert!(
                matches!(run.code, Some(0 | 1)),
                "{}: {}",
                shown(&args),
                run.stderr
            );
            assert!(out.exists(), "{}", shown(&args));
        }
        // The programs state the activation's rows: named faces for Clip, LeakyRelu and PRelu.
        let lp = std::fs::read_to_string(w("root.lp")).unwrap();
        assert!(lp.contains(" f1_0"), "{lp}");
        assert!(lp.contains(&format!("layer 1 ({op}) pieces: ")), "{lp}");
        // Every certificate written is accepted by check-cert.
        let mut certs: Vec<OsString> = std::fs::read_dir(w("certified").join("certificates"))
            .unwrap()
            .map(|e| e.unwrap().path().into_os_string())
            .collect();
        assert!(
            !certs.is_empty(),
            "{file}: audit --certify wrote no certificate"
        );
        certs.push(w("cert.json").into_os_string());
        let args: Vec<OsString> = [
            OsString::from("check-cert"),
            "--model".into(),
            path.clone().into_os_string(),
        ]
        .into_iter()
        .chain(certs)
        .collect();
        let run = dtdcert(&args, false);
        assert_eq!(
            run.code,
            Some(0),
            "{}: {}{}",
            shown(&args),
            run.stdout,
            run.stderr
        );
        assert!(!run.stdout.contains("rejected"), "{}", run.stdout);
        // region names the activation and its pieces.
        let args: Vec<OsString> = ["region", "--sample", "0"]
            .iter()
            .map(OsString::from)
            .chain(data.iter().map(|a| a.to_os_string()))
            .collect();
        let run = dtdcert(&args, false);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(
            run.stdout.contains(&format!("layer 1 ({op}):")),
            "{}",
            run.stdout
        );
        let refused: [&[&str]; 2] = [&["repro", "mlp-roots"], &["explain", "--full-backward"]];
        for cmd in refused {
            let args: Vec<&OsStr> = cmd.iter().map(os).chain(data).collect();
            let what = [file, &format!("layer 1 applies {op}"), "ReLU networks only"];
            expect_refusal(&args, says(&what));
        }
    }
}

#[test]
fn cyclic_and_unordered_graphs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = || value("input", 3, DataType::FLOAT);
    let cases = [
        // A Relu that consumes its own output.
        (
            "self_loop.onnx",
            vec![
                gemm("fc1", "input", "w1", "b1", "h"),
                node("Relu", "loop", &["r"], &["r"]),
                gemm("fc2", "r", "w2", "b2", "output"),
            ],
        ),
        // The Relu is listed before the Gemm whose output it reads.
        (
            "unordered.onnx",
            vec![
                node("Relu", "early", &["h"], &["r"]),
                gemm("fc1", "input", "w1", "b1", "h"),
                gemm("fc2", "r", "w2", "b2", "output"),
            ],
        ),
        // Two Relus feeding each other, after the first layer.
        (
            "two_cycle.onnx",
            vec![
                gemm("fc1", "input", "w1", "b1", "h"),
                node("Relu", "a", &["b"], &["a"]),
                node("Relu", "b", &["a"], &["b"]),
                gemm("fc2", "b", "w2", "b2", "output"),
            ],
        ),
    ];
    for (file, nodes) in cases {
        let path = write_onnx(&dir, file, &onnx_model(nodes, inits_3_4_2(), input()));
        refused_by_every_command(
            &path,
            &p(INPUTS_3),
            says(&[file, "topological order|cyclic|unordered|branches"]),
        );
    }
}

#[test]
fn wrong_dtypes_are_refused_naming_the_dtype() {
    let dir = tempfile::tempdir().unwrap();
    // ONNX: int32 graph input; int32 and float16 weights.
    let int_input = onnx_model(
        mlp_onnx().graph.unwrap().node,
        inits_3_4_2(),
        value("input", 3, DataType::INT32),
    );
    let with_w1_type = |dt: DataType, bytes_per: usize| {
        let mut m = mlp_onnx();
        let w1 = &mut m.graph.as_mut().unwrap().initializer[0];
        w1.data_type = dt as i32;
        w1.raw_data = vec![0; 12 * bytes_per];
        m
    };
    for (file, m, needles) in [
        (
            "int_input.onnx",
            int_input,
            &["int_input.onnx", "INT32", "float and double"][..],
        ),
        (
            "int_weights.onnx",
            with_w1_type(DataType::INT32, 4),
            &["int_weights.onnx", "'w1'", "INT32"],
        ),
        (
            "half_weights.onnx",
            with_w1_type(DataType::FLOAT16, 2),
            &["half_weights.onnx", "'w1'", "FLOAT16"],
        ),
    ] {
        let path = write_onnx(&dir, file, &m);
        refused_by_every_command(&path, &p(INPUTS_3), says(needles));
    }
    // safetensors: F16 and I32 weights.
    for (file, dtype) in [("f16_weights", "F16"), ("i32_weights", "I32")] {
        refused_by_every_command(
            &p(&format!("tests/data/hostile/{file}.json")),
            &p(INPUTS_3),
            says(&[&format!("{file}.json"), "fc1.weight", dtype, "F32 and F64"]),
        );
    }
    // .npy inputs: int32 and float16.
    for (file, dtype) in [
        ("inputs_i32_4x3.npy", "int32"),
        ("inputs_f16_4x3.npy", "float16"),
    ] {
        refused_by_every_command(
            &p(VALID_JSON),
            &p(&format!("tests/data/hostile/{file}")),
            says(&[file, dtype, "float32 or float64"]),
        );
    }
}

#[test]
fn inputs_of_the_wrong_width_are_refused() {
    refused_by_every_command(
        &p(VALID_JSON),
        &p(INPUTS_10),
        says(&["inputs.npy", "width|wide", "10", "3"]),
    );
    refused_by_every_command(
        &p(ONNX_4),
        &p(INPUTS_3),
        says(&["inputs_f64_4x3.npy", "width|wide", "3", "4"]),
    );
}

#[test]
fn an_input_array_with_no_rows_is_refused() {
    refused_by_every_command(
        &p(VALID_JSON),
        &p("tests/data/hostile/inputs_0x3.npy"),
        says(&["inputs_0x3.npy", "0 rows|no inputs"]),
    );
}

#[test]
fn non_finite_inputs_are_refused_naming_row_and_column() {
    refused_by_every_command_at(
        &p(VALID_JSON),
        &p("tests/data/hostile/inputs_inf_4x3.npy"),
        1,
        says(&["inputs_inf_4x3.npy", "row 1", "column 0", "inf"]),
    );
}

#[test]
fn npy_headers_declaring_huge_shapes_are_refused_before_allocating() {
    refused_by_every_command(
        &p(VALID_JSON),
        &p("tests/data/hostile/inputs_huge_shape.npy"),
        says_quickly(&[
            "inputs_huge_shape.npy",
            "1099511627776",
            "truncated|24 bytes",
        ]),
    );
    refused_by_every_command(
        &p(VALID_JSON),
        &p("tests/data/hostile/inputs_overflow_shape.npy"),
        says_quickly(&[
            "inputs_overflow_shape.npy",
            "4611686018427387904",
            "too large",
        ]),
    );
    refused_by_every_command(
        &p(VALID_JSON),
        &p("tests/data/hostile/inputs_wrong_magic.npy"),
        says(&["inputs_wrong_magic.npy", "magic|not a numpy"]),
    );
}

/// The same huge header as `.npz` members (np.savez's layout): float64 inputs, uint8 inputs
/// (refused for their dtype, so only the dtype check reads the member), and int64 targets.
/// The archive reader must not allocate the 3 to 24 TiB the headers declare either. The three
/// paths are checked one after the other and reported together.
#[test]
fn npz_members_declaring_huge_shapes_are_refused_before_allocating() {
    type Case = (&'static str, Box<dyn Fn()>);
    let cases: [Case; 3] = [
        (
            "float64 inputs",
            Box::new(|| {
                refused_by_every_command(
                    &p(VALID_JSON),
                    &p("tests/data/hostile/inputs_huge_shape.npz"),
                    says_quickly(&["inputs_huge_shape.npz", "1099511627776|truncated|too large"]),
                )
            }),
        ),
        (
            "uint8 inputs",
            Box::new(|| {
                refused_by_every_command(
                    &p(VALID_JSON),
                    &p("tests/data/hostile/inputs_huge_shape_u8.npz"),
                    says_quickly(&["inputs_huge_shape_u8.npz", "uint8|1099511627776|truncated"]),
                )
            }),
        ),
        (
            "int64 targets",
            Box::new(|| {
                for cmd in ["audit", "explain"] {
                    let targets = "tests/data/hostile/targets_huge_shape.npz";
                    let args = [
                        cmd,
                        "--model",
                        VALID_JSON,
                        "--inputs",
                        INPUTS_3,
                        "--targets",
                        targets,
                    ];
                    let args: Vec<&OsStr> = args.iter().map(os).collect();
                    expect_refusal(
                        &args,
                        says_quickly(&[
                            "targets_huge_shape.npz",
                            "1099511627776|truncated|too large|4",
                        ]),
                    );
                }
            }),
        ),
    ];
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|(what, case)| {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(case));
            outcome.err().map(|payload| {
                let text = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                format!(
                    "{what}: {}",
                    text.lines().take(7).collect::<Vec<_>>().join("\n  ")
                )
            })
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// An `.npz` whose member's `.npy` header (format 3.0, where the header length is a u32)
/// announces 0xFFFF_FFF0 bytes of header text over the 17 it holds, stored uncompressed. It is
/// refused from the member's first bytes, before the text is read, quickly and under the
/// address-space cap, as inputs and as targets.
#[test]
fn npz_member_announcing_a_4_gib_header_is_refused_before_reading_it() {
    use std::io::Write;
    use zip::write::SimpleFileOptions;
    let dir = tempfile::tempdir().unwrap();
    let mut member = b"\x93NUMPY\x03\x00".to_vec();
    member.extend(0xFFFF_FFF0u32.to_le_bytes());
    member.extend(b"{'descr': '<f8', ");
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.start_file("x.npy", stored).unwrap();
    w.write_all(&member).unwrap();
    let npz = write_in(&dir, "long_header.npz", &w.finish().unwrap().into_inner());
    let needles = [
        "long_header.npz",
        "array \"x\"",
        "header is too long",
        "4294967280",
    ];
    refused_by_every_command(&p(VALID_JSON), &npz, says_quickly(&needles));
    for cmd in ["audit", "explain"] {
        let args = [
            os(cmd),
            os("--model"),
            os(VALID_JSON),
            os("--inputs"),
            os(INPUTS_3),
            os("--targets"),
            os(&npz),
        ];
        expect_refusal(&args, says_quickly(&needles));
    }
}

#[test]
fn safetensors_declaring_absurd_sizes_or_damaged_are_refused() {
    for (stem, problem) in [
        // [2^31, 2^31] F32: the byte count overflows.
        ("huge_shape_overflow", "overflow|too large|size"),
        // [2^20, 2^20] F32 over 48 bytes.
        ("huge_shape", "shape|size"),
        // A header length of 2^60 bytes.
        ("huge_header", "header too large|size"),
    ] {
        refused_by_every_command(
            &p(&format!("tests/data/hostile/{stem}.json")),
            &p(INPUTS_3),
            says_quickly(&[&format!("{stem}.safetensors"), problem]),
        );
    }
    refused_by_every_command(
        &p("tests/data/hostile/truncated.json"),
        &p(INPUTS_3),
        says(&["truncated.safetensors", "incomplete|truncated|not a valid"]),
    );
    // Weights that are an .npy file.
    refused_by_every_command(
        &p("tests/data/hostile/npy_as_weights.json"),
        &p(INPUTS_3),
        says(&["inputs_i32_4x3.npy", "not a valid safetensors"]),
    );
}

#[test]
fn folders_and_unreadable_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["model.onnx", "model.json", "inputs.npy"] {
        fs::create_dir(dir.path().join(name)).unwrap();
    }
    let folder = |n: &str| dir.path().join(n);
    refused_by_every_command(
        &folder("model.onnx"),
        &p(INPUTS_3),
        says(&["model.onnx", "directory|folder"]),
    );
    refused_by_every_command(
        &folder("model.json"),
        &p(INPUTS_3),
        says(&["model.json", "directory|folder"]),
    );
    refused_by_every_command(
        &p(VALID_JSON),
        &folder("inputs.npy"),
        says(&["inputs.npy", "directory|folder"]),
    );
    // A description whose weights are a folder.
    fs::create_dir(dir.path().join("weights.safetensors")).unwrap();
    let json = fs::read_to_string(root().join(VALID_JSON))
        .unwrap()
        .replace("valid.safetensors", "weights.safetensors");
    let described = write_in(&dir, "described.json", json.as_bytes());
    refused_by_every_command(
        &described,
        &p(INPUTS_3),
        says(&["weights.safetensors", "directory|folder"]),
    );

    // Files without read permission. Tests often run as root, for whom permissions do not stop
    // reads; whether they do is found out by trying to open a chmod-000 file (no libc needed),
    // and the case is skipped when it opens.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let locked = |name: &str, from: &str| {
            let path = dir.path().join(name);
            fs::copy(root().join(from), &path).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
            path
        };
        let model = locked("locked.onnx", ONNX_4);
        let inputs = locked("locked.npy", INPUTS_4);
        if fs::File::open(&model).is_ok() {
            eprintln!("skipped: chmod 000 does not stop this user's reads (running as root?)");
        } else {
            refused_by_every_command(
                &model,
                &p(INPUTS_4),
                says(&["locked.onnx", "permission denied|cannot read"]),
            );
            refused_by_every_command(
                &p(ONNX_4),
                &inputs,
                says(&["locked.npy", "permission denied|cannot read"]),
            );
        }
    }
}

/// Nested graph attributes 100,000 deep: the protobuf parser's recursion limit must refuse it
/// rather than the stack overflowing (which would kill the process with a signal).
#[test]
fn deeply_nested_onnx_is_refused_without_exhausting_the_stack() {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    /// The tag and length of a length-delimited field `number` holding `len` bytes.
    fn header(number: u32, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        varint(u64::from(number << 3 | 2), &mut out);
        varint(len as u64, &mut out);
        out
    }
    // GraphProto.node (1) → NodeProto.attribute (5) → AttributeProto.g (6) → GraphProto …,
    // innermost graph empty. Every level is a prefix of headers, so the file is the headers
    // from the outside in; their lengths are computed from the inside out.
    let mut headers: Vec<Vec<u8>> = Vec::new();
    let mut len = 0;
    for _ in 0..100_000 {
        for number in [6, 5, 1] {
            let h = header(number, len);
            len += h.len();
            headers.push(h);
        }
    }
    let mut bytes = vec![0x08, 0x08]; // ir_version = 8
    bytes.extend(header(7, len));
    bytes.extend(headers.iter().rev().flatten());
    bytes.extend(header(8, 2));
    bytes.extend([0x10, 17]); // OperatorSetIdProto.version = 17
    let dir = tempfile::tempdir().unwrap();
    let path = write_in(&dir, "nested.onnx", &bytes);
    refused_by_every_command(
        &path,
        &p(INPUTS_3),
        says_quickly(&["nested.onnx", "recursion|nest|deep|not an onnx"]),
    );
}

// =============================================================================================
// 2. Adversarial numerics
// =============================================================================================

fn model_of(layers: Vec<Layer>) -> Model {
    Model::new(Network::new(layers).unwrap())
}

/// `Σ w_i x_i + b` in plain f64, summed left to right, with no error bound: what a float
/// implementation computes.
fn naive_affine(w: &[f64], x: &[f64], b: f64) -> f64 {
    let mut acc = 0.0;
    for (wi, xi) in w.iter().zip(x) {
        acc += wi * xi;
    }
    acc + b
}

/// The pre-activations of every layer in plain f64.
fn naive_pre(net: &Network, x: &[f64]) -> Vec<Vec<f64>> {
    let mut h = x.to_vec();
    let mut pre = Vec::new();
    for layer in net.layers() {
        let z: Vec<f64> = (0..layer.affine.out_dim())
            .map(|j| naive_affine(&layer.affine.row(j).dense(), &h, *layer.affine.bias(j)))
            .collect();
        h = if layer.relu {
            z.iter().map(|&v| v.max(0.0)).collect()
        } else {
            z.clone()
        };
        pre.push(z);
    }
    pre
}

/// The activation pattern read off plain f64 pre-activations.
fn naive_pattern(net: &Network, x: &[f64]) -> Vec<Option<Vec<bool>>> {
    net.layers()
        .iter()
        .zip(naive_pre(net, x))
        .map(|(l, z)| l.relu.then(|| z.iter().map(|&v| v > 0.0).collect()))
        .collect()
}

fn bits(p: &Pattern) -> Vec<Option<Vec<bool>>> {
    (0..p.num_layers())
        .map(|k| p.layer(k).map(<[bool]>::to_vec))
        .collect()
}

/// The exact pattern of `x`: rational forward pass.
fn exact_pattern(model: &Model, x: &[f64]) -> Pattern {
    let trace = forward(model.exact(), &to_exact(x));
    Pattern::from_pre(model.exact(), &trace.pre)
}

/// Membership of `point` (an input of layer `m`, 0-based) in plain f64: the linearised network
/// with the pattern's mask, every constraint `σ z >= 0` checked on the rounded value.
fn naive_inside(net: &Network, pattern: &Pattern, m: usize, point: &[f64]) -> bool {
    let mut h = point.to_vec();
    for (k, layer) in net.layers().iter().enumerate().skip(m) {
        let mut z: Vec<f64> = (0..layer.affine.out_dim())
            .map(|j| naive_affine(&layer.affine.row(j).dense(), &h, *layer.affine.bias(j)))
            .collect();
        if let Some(mask) = pattern.layer(k) {
            for (v, &active) in z.iter_mut().zip(mask) {
                let signed = if active { *v } else { -*v };
                if signed < 0.0 {
                    return false;
                }
                if !active {
                    *v = 0.0;
                }
            }
        }
        h = z;
    }
    true
}

fn exact_membership(model: &Model, pattern: &Pattern, m: usize, point: &[f64]) -> Membership {
    membership(model.exact(), pattern, m, &to_exact(point))
}

/// Same status and, when outside, the same first violated (layer, neuron); margins and slacks
/// of float verdicts are f64 readings and may differ in the last bits.
fn same_verdict(a: &Membership, b: &Membership) -> bool {
    match (a, b) {
        (Membership::Inside { .. }, Membership::Inside { .. }) => true,
        (
            Membership::Outside {
                layer: l1,
                neuron: n1,
                ..
            },
            Membership::Outside {
                layer: l2,
                neuron: n2,
                ..
            },
        ) => (l1, n1) == (l2, n2),
        _ => false,
    }
}

/// Whether a decision was reached past the f64 bound: in double-double (patterns), by the
/// filter's second tier (values rounded once from exact sums) or by exact rationals.
fn past_the_bound(decision: Decision) -> bool {
    matches!(
        decision,
        Decision::Compensated | Decision::Refined | Decision::ExactFallback
    )
}

/// Checks one verdict against the exact one. A fallback verdict is the exact verdict itself, so
/// it must be equal in every field; `must_fall_back` says the bound cannot decide this point.
#[track_caller]
fn check_verdict(
    what: &str,
    got: &(Membership, Decision),
    exact: &Membership,
    must_fall_back: bool,
) {
    let (verdict, decision) = got;
    assert!(
        same_verdict(verdict, exact),
        "{what}: dtdcert says {verdict:?} ({decision:?}), exact arithmetic says {exact:?}"
    );
    match decision {
        Decision::ExactFallback => assert_eq!(verdict, exact, "{what}"),
        // The second tier decides the same constraint (checked above); its margin or slack is
        // its own rounded value, within its bound of the exact one.
        Decision::Refined => {}
        Decision::Compensated => panic!("{what}: a membership decided in double-double"),
        Decision::Float => assert!(
            !must_fall_back,
            "{what}: decided by the float bound where it cannot decide ({verdict:?})"
        ),
        Decision::Exact => panic!("{what}: Decision::Exact outside --exact"),
        Decision::Unchecked => panic!("{what}: an unchecked verdict from the exact engine"),
    }
}

/// Whether the sign of `Σ w_i x_i + b` lies within the standard error bound of floating-point
/// summation (Higham §3.1, `γ_n Σ |w_i x_i|` with `γ_n >= n u`, n the number of terms): its
/// exact value is at most `n u (Σ |w_i x_i| + |b|)` from zero, and some product is nonzero (a
/// sum of exact zeros and `b` is error-free). A float filter built on that bound cannot tell
/// such a value from zero unless rounding pushed the computed value past the bound, which
/// does not happen at the points of these tests (their rounding errors are a few ulps), so it
/// must fall back to exact arithmetic.
fn undecidable(w: &[f64], x: &[f64], b: f64) -> bool {
    let (mut value, mut magnitude) = (Rational::from_f64(b), Rational::from_f64(b).abs());
    let mut terms = usize::from(b != 0.0);
    for (wi, xi) in w.iter().zip(x) {
        let p = Rational::from_f64(*wi) * Rational::from_f64(*xi);
        if !Scalar::is_zero(&p) {
            terms += 1;
        }
        magnitude += p.abs();
        value += p;
    }
    let nu = Rational::from_f64(terms as f64 * f64::EPSILON / 2.0);
    terms > usize::from(b != 0.0) && value.abs() <= magnitude * nu
}

/// The next f64 above a finite `x` (`f64::next_up` needs Rust 1.86; the MSRV is 1.85).
fn next_up(x: f64) -> f64 {
    if x == 0.0 {
        f64::from_bits(1)
    } else if x > 0.0 {
        f64::from_bits(x.to_bits() + 1)
    } else {
        f64::from_bits(x.to_bits() - 1)
    }
}

/// `x` stepped `k` ulps up (`k > 0`) or down.
fn ulps(x: f64, k: i32) -> f64 {
    (0..k.unsigned_abs()).fold(x, |v, _| if k > 0 { next_up(v) } else { -next_up(-v) })
}

/// A neuron computing `x0 + x1 − x2` at `x = (1e16, 1, 1e16)` is 1, but plain f64 summed in
/// the file's order gets 0 (1e16 + 1 rounds to 1e16: ties go to even); with `− 0.75 x3` added
/// the naive sign is even negative.
fn cancellation_model() -> (Model, Vec<f64>) {
    let l1 = dense_layer(
        5,
        4,
        vec![
            1.0, 1.0, -1.0, 0.0, // exact 1, naive 0
            1.0, 1.0, -1.0, -0.75, // exact 0.25, naive -0.75
            1.0, -1.0, -1.0, 0.0, // exact -1
            0.0, 1.0, 0.0, 1.0, // 2: clear
            0.0, 0.0, 0.0, 1.0, // 1: clear
        ],
        vec![0.0; 5],
        true,
    )
    .unwrap();
    let l2 = dense_layer(
        2,
        5,
        vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, -1.0, 0.5, -1.0, 0.5],
        vec![0.0, 0.0],
        true,
    )
    .unwrap();
    (model_of(vec![l1, l2]), vec![1e16, 1.0, 1e16, 1.0])
}

#[test]
fn cancellation_in_a_neuron_is_decided_exactly() {
    // Plain f64 gets x0 + x1 − x2 wrong, one way or the other depending on the order and on
    // where the tie lands: 0 or 1 at x0 = x2 = 1e16, 2 or 1 at x0 = x2 = 1e16 + 2.
    let (big, one) = (1e16f64, 1.0f64);
    assert_eq!([(big + one) - big, (big - big) + one], [0.0, 1.0]);
    let big2 = big + 2.0;
    assert_eq!([(big2 + one) - big2, (big2 - big2) + one], [2.0, 1.0]);

    let (model, x) = cancellation_model();
    let exact = exact_pattern(&model, &x);
    let naive = naive_pattern(model.net(), &x);
    assert_eq!(bits(&exact)[0], Some(vec![true, true, false, true, true]));
    assert_eq!(
        naive[0],
        Some(vec![false, false, false, true, true]),
        "naive f64"
    );
    assert_ne!(naive, bits(&exact), "plain f64 must get this pattern wrong");

    let (trace, pattern, decision) = trace_and_pattern(&model, &x);
    assert_eq!(pattern, exact);
    assert!(past_the_bound(decision), "{decision:?}");
    // The trace is the f64 forward pass (what the roots are computed from), as documented.
    assert_eq!(trace.pre[0].len(), 5);
}

/// Whether a filter that walks the constraints of layer 1 in order must fall back for `point`:
/// it meets a constraint whose sign is [`undecidable`] before any constraint that `point`
/// violates (exactly). Only for networks whose later layers have no ReLU.
fn layer_1_must_fall_back(model: &Model, pattern: &Pattern, point: &[f64]) -> bool {
    let affine = &model.net().layers()[0].affine;
    let mask = pattern.layer(0).expect("layer 1 has a ReLU");
    for (j, &active) in mask.iter().enumerate() {
        let (w, b) = (affine.row(j).dense(), *affine.bias(j));
        if undecidable(&w, point, b) {
            return true;
        }
        let z = to_exact(&w)
            .iter()
            .zip(to_exact(point))
            .fold(Rational::from_f64(b), |acc, (wi, xi)| acc + wi.clone() * xi);
        if (if active { z } else { -z }) < Rational::from_f64(0.0) {
            return false;
        }
    }
    false
}

/// Whether the pattern of `point` (layer 1 the only ReLU layer) has a sign no float bound can
/// settle.
fn pattern_must_fall_back(model: &Model, point: &[f64]) -> bool {
    let affine = &model.net().layers()[0].affine;
    (0..affine.out_dim()).any(|j| undecidable(&affine.row(j).dense(), point, *affine.bias(j)))
}

/// Two faces: `x0 + x1 = 1` (neuron 0, bias −1) and `x0 = x1` (neuron 1, `0.1 x0 − 0.1 x1`).
/// Points exactly on a face (`x1 = 1 − x0`, exact for `x0` in [0.5, 1]; `x1 = x0`) and one, two
/// and three ulps to either side. Plain f64 rounds `x0 + x1` to 1 for most of the first kind
/// (the ulp of `x1` is a fraction of the ulp of 1), so it puts points off the face onto it.
/// The membership of every point in two regions (both neurons active; neuron 0 inactive) and
/// the pattern of every point must be the exact ones, decided by fallback where the bound
/// cannot decide, singly and batched (mixed with clear points the batch must decide in f64).
#[test]
fn points_a_few_ulps_from_a_face_are_decided_exactly() {
    let l1 = dense_layer(2, 2, vec![1.0, 1.0, 0.1, -0.1], vec![-1.0, 0.0], true).unwrap();
    let l2 = dense_layer(1, 2, vec![1.0, 1.0], vec![0.0], false).unwrap();
    let model = model_of(vec![l1, l2]);

    let mut points = Vec::new();
    for x0 in [0.7, 0.5 + 2f64.powi(-20), 0.9999, 0.618_033_988_749_894_8] {
        let x1 = 1.0 - x0;
        assert_eq!(
            Rational::from_f64(x0) + Rational::from_f64(x1),
            Rational::from_f64(1.0),
            "{x0} + {x1} is not exactly on the face"
        );
        points.extend((-3..=3).map(|k| vec![x0, ulps(x1, k)]));
    }
    for a in [0.3, 1.0 / 3.0, 0.45, 1e-3] {
        points.extend((-3..=3).map(|k| vec![a, ulps(a, k)]));
    }

    let (mut naive_wrong, mut pattern_wrong, mut hard) = (0, 0, 0);
    for reference in [[1.0, 0.5], [0.5, 0.25]] {
        let (_, pattern, decision) = trace_and_pattern(&model, &reference);
        assert_eq!(decision, Decision::Float, "a clear input is decided in f64");
        for pt in &points {
            let what = format!("point {pt:?} in the region of {reference:?}");
            let exact = exact_membership(&model, &pattern, 0, pt);
            if naive_inside(model.net(), &pattern, 0, pt) != exact.is_inside() {
                naive_wrong += 1;
            }
            let must = layer_1_must_fall_back(&model, &pattern, pt);
            hard += usize::from(must);
            check_verdict(
                &what,
                &membership_filtered(&model, &pattern, 0, pt),
                &exact,
                must,
            );
        }

        // Batched, with clear points after them.
        let clear = [[1.0, 0.5], [0.5, 0.25], [2.0, -1.5], [-1.0, -2.0]];
        let rows: Vec<&[f64]> = points
            .iter()
            .map(Vec::as_slice)
            .chain(clear.iter().map(|c| &c[..]))
            .collect();
        let flat: Vec<f64> = rows.concat();
        let batch = Array2::from_shape_vec((rows.len(), 2), flat).unwrap();
        let verdicts = membership_batch(&model, &pattern, 0, &batch);
        assert_eq!(verdicts.len(), rows.len());
        for (i, (row, got)) in rows.iter().zip(&verdicts).enumerate() {
            let exact = exact_membership(&model, &pattern, 0, row);
            let what = format!("batch row {i} {row:?} in the region of {reference:?}");
            let must = layer_1_must_fall_back(&model, &pattern, row);
            check_verdict(&what, got, &exact, must);
            if i >= points.len() {
                assert_eq!(got.1, Decision::Float, "{what}: a clear point");
            }
        }
    }
    assert!(naive_wrong > 0, "plain f64 got every membership right");
    assert!(hard > points.len(), "only {hard} points need the fallback");

    // The pattern of each point itself.
    for pt in &points {
        let own = exact_pattern(&model, pt);
        if naive_pattern(model.net(), pt) != bits(&own) {
            pattern_wrong += 1;
        }
        let (_, got, decision) = trace_and_pattern(&model, pt);
        assert_eq!(got, own, "point {pt:?}: pattern");
        if pattern_must_fall_back(&model, pt) {
            assert!(
                past_the_bound(decision),
                "point {pt:?}: pattern by {decision:?}"
            );
        }
    }
    assert!(pattern_wrong > 0, "plain f64 got every pattern right");
}

/// 1e150 next to 1e-150: `1e150 + 1e-150 − 1e150` is 1e-150, plain f64 says 0. And products
/// that underflow: `1e-160 · 1e-160` and `1e-160 · (1e-160 + ulp)` round to the same subnormal,
/// so their difference is 0 in f64 and negative exactly.
#[test]
fn huge_tiny_and_underflowing_weights_are_decided_exactly() {
    let tiny = 1e-160f64;
    let l1 = dense_layer(
        2,
        3,
        vec![1e150, 1e-150, -1e150, tiny, -tiny, 0.0],
        vec![0.0, 0.0],
        true,
    )
    .unwrap();
    let l2 = dense_layer(1, 2, vec![1.0, 1.0], vec![0.0], false).unwrap();
    let model = model_of(vec![l1, l2]);
    let rows = model.net().layers()[0].affine.clone();

    // Patterns: (1, 1, 1) activates neuron 0 exactly (1e-150 > 0) and naive f64 says 0.
    let x = [1.0, 1.0, 1.0];
    let exact = exact_pattern(&model, &x);
    assert_eq!(bits(&exact)[0], Some(vec![true, false]));
    assert_eq!(naive_pattern(model.net(), &x)[0], Some(vec![false, false]));
    let (_, got, decision) = trace_and_pattern(&model, &x);
    assert_eq!(got, exact);
    assert!(past_the_bound(decision), "{decision:?}");

    // Membership in the region of (0, 0, 1) (neuron 0 inactive) and of (1, 0, 0) (neuron 1
    // active): (1, 1, 1) violates neuron 0 exactly; (1e-160, 1e-160 + ulp, 0) violates
    // neuron 1 exactly, by far less than the smallest subnormal. Naive f64 says inside.
    let cases = [
        ([0.0, 0.0, 1.0], vec![1.0, 1.0, 1.0], 0),
        ([1.0, 0.0, 0.0], vec![tiny, next_up(tiny), 0.0], 1),
    ];
    for (reference, pt, neuron) in &cases {
        let (_, pattern, _) = trace_and_pattern(&model, reference);
        let exact = exact_membership(&model, &pattern, 0, pt);
        assert_eq!(
            exact,
            Membership::Outside {
                layer: 1,
                neuron: *neuron,
                margin: exact_margin(&exact)
            },
            "{pt:?}"
        );
        assert!(
            naive_inside(model.net(), &pattern, 0, pt),
            "naive f64 {pt:?}"
        );
        let hard = undecidable(&rows.row(*neuron).dense(), pt, 0.0);
        assert!(hard, "{pt:?}");
        let what = format!("point {pt:?}");
        check_verdict(
            &what,
            &membership_filtered(&model, &pattern, 0, pt),
            &exact,
            true,
        );
        // Batched, next to a clear point of the same region.
        let batch =
            Array2::from_shape_vec((2, 3), pt.iter().chain(reference.iter()).copied().collect())
                .unwrap();
        let verdicts = membership_batch(&model, &pattern, 0, &batch);
        check_verdict(&format!("batched {what}"), &verdicts[0], &exact, true);
        let clear = exact_membership(&model, &pattern, 0, reference);
        check_verdict("batched reference", &verdicts[1], &clear, false);
    }
}

fn exact_margin(m: &Membership) -> f64 {
    match m {
        Membership::Outside { margin, .. } => *margin,
        Membership::Inside { .. } => f64::NAN,
    }
}

/// Cancellation in a hidden layer carried to the next: `z1 = x0 + x1 − x2` (1 exactly, 0 in
/// f64), `z2 = 2 h1 − 1` (1 exactly, −1 in f64), with and without a ReLU on layer 1. Layer 2's
/// sign, and so the pattern and the membership of `x` in the region of `(0.25, 0, 0)` (where
/// layer 2 is inactive), hinge on the bound carried over from layer 1.
#[test]
fn cancellation_in_a_hidden_layer_propagates_into_an_exact_decision() {
    for hidden_relu in [false, true] {
        let l1 = dense_layer(1, 3, vec![1.0, 1.0, -1.0], vec![0.0], hidden_relu).unwrap();
        let l2 = dense_layer(1, 1, vec![2.0], vec![-1.0], true).unwrap();
        let l3 = dense_layer(1, 1, vec![1.0], vec![0.0], false).unwrap();
        let model = model_of(vec![l1, l2, l3]);
        let x = vec![1e16, 1.0, 1e16];
        let what = format!("hidden ReLU {hidden_relu}");

        let naive = naive_pre(model.net(), &x);
        assert_eq!((naive[0][0], naive[1][0]), (0.0, -1.0), "{what}: naive f64");
        let exact = exact_pattern(&model, &x);
        assert_eq!(bits(&exact)[1], Some(vec![true]), "{what}");
        assert_ne!(naive_pattern(model.net(), &x), bits(&exact), "{what}");
        let (_, got, decision) = trace_and_pattern(&model, &x);
        assert_eq!(got, exact, "{what}");
        assert!(past_the_bound(decision), "{what}: {decision:?}");

        let reference = [0.25, 0.0, 0.0];
        let (_, pattern, _) = trace_and_pattern(&model, &reference);
        assert_eq!(bits(&pattern)[1], Some(vec![false]), "{what}");
        let exact = exact_membership(&model, &pattern, 0, &x);
        assert!(
            matches!(
                exact,
                Membership::Outside {
                    layer: 2,
                    neuron: 0,
                    ..
                }
            ),
            "{what}: {exact:?}"
        );
        assert!(
            naive_inside(model.net(), &pattern, 0, &x),
            "{what}: naive f64"
        );
        check_verdict(
            &what,
            &membership_filtered(&model, &pattern, 0, &x),
            &exact,
            true,
        );
        // Batched: x, the reference (clear), and x1 = 2 (z1 = 2 exactly, outside too).
        let batch = Array2::from_shape_vec(
            (3, 3),
            vec![1e16, 1.0, 1e16, 0.25, 0.0, 0.0, 1e16, 2.0, 1e16],
        )
        .unwrap();
        let verdicts = membership_batch(&model, &pattern, 0, &batch);
        for (r, got) in verdicts.iter().enumerate() {
            let row = batch.row(r).to_vec();
            let exact = exact_membership(&model, &pattern, 0, &row);
            check_verdict(&format!("{what}: batch row {r}"), got, &exact, r != 1);
        }
    }
}

/// Where the second tier cannot decide either: `x = (1, 2^-60)`, layer 1 computes `1 + 2^-60`
/// and `1 + 2^-61` (both rounded to 1, each with an error bound), layer 2 their difference,
/// `2^-61 > 0` exactly, 0 in both f64 tiers with a bound around it. The pattern (layer 2
/// active) comes from the double-double pass, which holds `1 + 2^-60` exactly; the membership
/// of `x` in the region of `(2, −1)` (layer 2 inactive there, so `x` leaves it at layer 2 by
/// exactly `2^-61`) from exact rationals, every field exact.
#[test]
fn rounded_hidden_values_whose_difference_is_tiny_need_exact_rationals() {
    let l1 = dense_layer(2, 2, vec![1.0, 1.0, 1.0, 0.5], vec![0.0, 0.0], true).unwrap();
    let l2 = dense_layer(1, 2, vec![1.0, -1.0], vec![0.0], true).unwrap();
    let l3 = dense_layer(1, 1, vec![1.0], vec![0.0], false).unwrap();
    let model = model_of(vec![l1, l2, l3]);
    let x = [1.0, 2f64.powi(-60)];
    assert_eq!(naive_pre(model.net(), &x)[1][0], 0.0, "naive f64");

    let exact = exact_pattern(&model, &x);
    assert_eq!(bits(&exact)[1], Some(vec![true]));
    let (_, got, decision) = trace_and_pattern(&model, &x);
    assert_eq!((&got, decision), (&exact, Decision::Compensated));
    let decided = trace_with_errors_if(&model, &x, false).expect("decided in double-double");
    assert_eq!((&decided.2, decided.3), (&exact, Decision::Compensated));

    let (_, pattern, decision) = trace_and_pattern(&model, &[2.0, -1.0]);
    assert_eq!(decision, Decision::Float);
    let decided = trace_with_errors_if(&model, &[2.0, -1.0], false).expect("decided in f64");
    assert_eq!((&decided.2, decided.3), (&pattern, Decision::Float));
    assert_eq!(bits(&pattern)[1], Some(vec![false]));
    let exact = exact_membership(&model, &pattern, 0, &x);
    assert_eq!(
        exact,
        Membership::Outside {
            layer: 2,
            neuron: 0,
            margin: -(2f64.powi(-61))
        }
    );
    let batch = Array2::from_shape_vec((1, 2), x.to_vec()).unwrap();
    for (what, got) in [
        ("filtered", membership_filtered(&model, &pattern, 0, &x)),
        (
            "batched",
            membership_batch(&model, &pattern, 0, &batch).remove(0),
        ),
    ] {
        assert_eq!(got, (exact.clone(), Decision::ExactFallback), "{what}");
    }
}

/// Where the double-double pass cannot decide either: layer 1 computes `1 + 2^-60 + 2^-120`
/// and `1 + 2^-60`, which two f64 cannot tell apart, and layer 2 their difference, `2^-120 > 0`
/// exactly. The pattern comes from exact rationals, and without them (a network too large for
/// rationals) no pattern is claimed.
#[test]
fn values_below_double_double_need_exact_rationals() {
    let l1 = dense_layer(
        2,
        3,
        vec![1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        vec![0.0, 0.0],
        true,
    )
    .unwrap();
    let l2 = dense_layer(1, 2, vec![1.0, -1.0], vec![0.0], true).unwrap();
    let model = model_of(vec![l1, l2]);
    let x = [1.0, 2f64.powi(-60), 2f64.powi(-120)];
    assert_eq!(naive_pre(model.net(), &x)[1][0], 0.0, "naive f64");
    let exact = exact_pattern(&model, &x);
    assert_eq!(bits(&exact)[1], Some(vec![true]));
    let (_, got, decision) = trace_and_pattern(&model, &x);
    assert_eq!((got, decision), (exact, Decision::ExactFallback));
    assert!(trace_with_errors_if(&model, &x, false).is_none());
}

/// A hidden layer without ReLU whose value is computed as exactly 0.0 with a tiny error bound
/// (1e-300, from the cancellation `2^-1000 (1e16 + 1 − 1e16)`), then a weight of 1e-30: the
/// propagated bound `1e-30 · 1e-300` underflows to 0 in f64. The pre-activation of layer 2
/// is `1e-30 · 2^-1000 > 0` exactly, so the pattern is active and the point lies outside the
/// region of an input where that neuron is inactive.
#[test]
fn an_error_bound_that_underflows_is_not_an_exact_zero() {
    let l1 = dense_layer(1, 3, vec![1.0, 1.0, -1.0], vec![0.0], false).unwrap();
    let l2 = dense_layer(1, 1, vec![1e-30], vec![0.0], true).unwrap();
    let model = model_of(vec![l1, l2]);
    let scale = 2f64.powi(-1000);
    let x = [1e16 * scale, scale, 1e16 * scale];
    assert_eq!(naive_pre(model.net(), &x)[0][0], 0.0, "naive f64");

    let exact = exact_pattern(&model, &x);
    assert_eq!(bits(&exact)[1], Some(vec![true]));
    let (_, pattern_inactive, _) = trace_and_pattern(&model, &[0.0, 0.0, 1.0]);
    assert_eq!(bits(&pattern_inactive)[1], Some(vec![false]));
    let exact_verdict = exact_membership(&model, &pattern_inactive, 0, &x);
    assert!(!exact_verdict.is_inside(), "{exact_verdict:?}");

    // Collect every disagreement, so that one failure shows them all.
    let mut problems = Vec::new();
    let batch = Array2::from_shape_vec((1, 3), x.to_vec()).unwrap();
    for (what, (verdict, decision)) in [
        (
            "membership_batch",
            membership_batch(&model, &pattern_inactive, 0, &batch).remove(0),
        ),
        (
            "membership_filtered",
            membership_filtered(&model, &pattern_inactive, 0, &x),
        ),
    ] {
        if (&verdict, decision) != (&exact_verdict, Decision::ExactFallback) {
            problems.push(format!(
                "{what}: {verdict:?} by {decision:?}, exactly {exact_verdict:?} (needs ExactFallback)"
            ));
        }
    }
    let (_, got, decision) = trace_and_pattern(&model, &x);
    if (&got, decision) != (&exact, Decision::ExactFallback) {
        problems.push(format!(
            "trace_and_pattern: {:?} by {decision:?}, exactly {:?} (needs ExactFallback)",
            bits(&got),
            bits(&exact)
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The default audit settings, keeping each root's coordinates.
fn audit_settings_keeping_points() -> AuditSettings {
    AuditSettings {
        dtd: DtdSettings::default(),
        domain: None,
        exact: false,
        keep_points: true,
        records: Default::default(),
        compress: false,
        certify: None,
        lp: Default::default(),
        torch: None,
        root_sample: None,
    }
}

/// Through `audit_sample`: the cancellation input's pattern is decided past the f64 bound, and
/// every root's verdict equals the verdict of `--exact` (rationals throughout: the exact root,
/// not the root as rounded to f64, whose membership the cancellation changes); the record says
/// which tier decided the pattern.
#[test]
fn audit_records_say_which_tier_decided_and_hold_exact_verdicts() {
    let (model, x) = cancellation_model();
    let settings = audit_settings_keeping_points();
    let record = audit_sample(&model, &settings, 7, &x, Some(0)).unwrap();
    assert_eq!(record.sample, 7);
    assert!(past_the_bound(record.pattern_decided_by), "{record:?}");

    let mut roots = 0;
    let layer_1_roots = record.layers[0]
        .neurons
        .iter()
        .filter(|n| n.root.is_some())
        .count();
    assert!(
        layer_1_roots >= 2,
        "the batched path is not taken: {record:?}"
    );
    let exact_record = audit_sample(
        &model,
        &AuditSettings {
            exact: true,
            ..settings.clone()
        },
        7,
        &x,
        Some(0),
    )
    .unwrap();
    for (layer, exact_layer) in record.layers.iter().zip(&exact_record.layers) {
        for (n, exact_n) in layer.neurons.iter().zip(&exact_layer.neurons) {
            let Some(root) = &n.root else { continue };
            roots += 1;
            let point = root.point.as_ref().expect("keep_points");
            let what = format!("layer {} neuron {}: root {point:?}", layer.layer, n.neuron);
            let exact = &exact_n.root.as_ref().expect("the same roots").region;
            check_verdict(&what, &(root.region.clone(), root.decided_by), exact, false);
            assert_eq!(
                root.valid,
                exact_n.root.as_ref().unwrap().valid,
                "{what}: valid"
            );
        }
    }
    assert!(roots >= 2, "{record:?}");
    let json = serde_json::to_value(&record).unwrap();
    let tier = serde_json::to_value(record.pattern_decided_by).unwrap();
    assert_eq!(json["pattern_decided_by"], tier);
    assert!(
        ["compensated", "refined", "exact-fallback"].contains(&tier.as_str().unwrap()),
        "{tier}"
    );
}

/// A pattern only the double-double pass decides (layer 2's value is `2^-70` after a
/// cancellation of values near 1, within the f64 bound of 0), audited on the f64 path: the
/// trace's bounds are measured against that pass, the record says `compensated`, and every
/// root's verdict equals the verdict of `--exact` (the roots at `2^-70` from their faces on the
/// exact root, which this network is small enough for).
#[test]
fn a_pattern_decided_in_double_double_is_audited_in_f64() {
    let l1 = dense_layer(2, 2, vec![1.0, 0.0, 0.0, 1.0], vec![0.0, 0.0], true).unwrap();
    let bias = -(2f64.powi(-52)) + 2f64.powi(-70);
    let l2 = dense_layer(2, 2, vec![1.0, -1.0, 1.0, 1.0], vec![bias, 0.0], true).unwrap();
    let l3 = dense_layer(1, 2, vec![1.0, 1.0], vec![0.0], false).unwrap();
    let model = model_of(vec![l1, l2, l3]);
    let x = [1.0 + f64::EPSILON, 1.0];
    let settings = audit_settings_keeping_points();
    let record = audit_sample(&model, &settings, 0, &x, Some(0)).unwrap();
    assert_eq!(
        record.pattern_decided_by,
        Decision::Compensated,
        "{record:?}"
    );
    let exact_settings = AuditSettings {
        exact: true,
        ..settings.clone()
    };
    let exact_record = audit_sample(&model, &exact_settings, 0, &x, Some(0)).unwrap();
    let mut roots = 0;
    for (layer, exact_layer) in record.layers.iter().zip(&exact_record.layers) {
        for (n, exact_n) in layer.neurons.iter().zip(&exact_layer.neurons) {
            let Some(root) = &n.root else { continue };
            roots += 1;
            let what = format!("layer {} neuron {}", layer.layer, n.neuron);
            let exact = exact_n.root.as_ref().expect("the same roots");
            check_verdict(
                &what,
                &(root.region.clone(), root.decided_by),
                &exact.region,
                false,
            );
            assert_eq!(root.valid, exact.valid, "{what}: valid");
        }
    }
    assert!(roots >= 3, "{record:?}");
}
