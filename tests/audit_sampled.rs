//! Sampled-root audits (`--roots-per-layer K [--seed S]`): the judged roots get the full
//! audit's verdicts, the draw is the shared sampler's and reproducible, and shards, merges and
//! resumed runs give the files of one uninterrupted run.

use std::fs;
use std::path::{Path, PathBuf};

use dtdcert::audit::sampling::draw_neurons;
use dtdcert::audit::spec::Shard;
use dtdcert::audit::{
    audit_sample, AuditSettings, OutputOptions, RootSample, SampleRecord, Summary,
};
use dtdcert::io::output_dir::{marker, MARKER};
use dtdcert::model::inputs::load_inputs;
use dtdcert::model::Model;
use dtdcert::report::Reports;

mod util;

use util::runs::{assert_same_outputs, c6_run, read, runner};

const OPTIONS: OutputOptions = OutputOptions {
    progress: false,
    csv: true,
    force: false,
};

fn sampled(roots_per_layer: usize, seed: u64) -> AuditSettings {
    AuditSettings {
        root_sample: Some(RootSample {
            roots_per_layer,
            seed,
        }),
        ..AuditSettings::default()
    }
}

/// A C6 run with `settings` (whole or one shard) into `dir`.
fn run_c6(settings: AuditSettings, shard: Option<Shard>, dir: &Path) -> Summary {
    let (model, inputs, spec) = c6_run(settings, shard);
    runner(OPTIONS).run(&model, &inputs, &spec, dir).unwrap()
}

fn records(dir: &Path) -> Vec<SampleRecord> {
    fs::read_to_string(dir.join("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The audits of every input of a fixture, whole and with `settings`' draw, side by side.
fn both(model: &Model, xs: &[Vec<f64>], settings: &AuditSettings) -> Vec<[SampleRecord; 2]> {
    let whole = AuditSettings {
        root_sample: None,
        ..settings.clone()
    };
    xs.iter()
        .enumerate()
        .map(|(i, x)| {
            [
                audit_sample(model, &whole, i, x, Some(0)).unwrap(),
                audit_sample(model, settings, i, x, Some(0)).unwrap(),
            ]
        })
        .collect()
}

fn fixture(name: &str) -> (Model, Vec<Vec<f64>>) {
    let model = Model::load(Path::new(&format!("tests/data/onnx/{name}.onnx"))).unwrap();
    let path = format!("tests/data/onnx/{name}.inputs.npy");
    let inputs = load_inputs(Path::new(&path), None).unwrap();
    let xs = (0..inputs.len()).map(|i| inputs.row(i).unwrap()).collect();
    (model, xs)
}

fn c6() -> (Model, Vec<Vec<f64>>) {
    let (model, inputs, _) = c6_run(AuditSettings::default(), None);
    let xs = (0..inputs.len()).map(|i| inputs.row(i).unwrap()).collect();
    (model, xs)
}

/// Every judged root of the sampled record has the whole audit's verdict on the same neuron,
/// every neuron keeps its relevance, and the judged neurons are exactly the shared sampler's
/// draw among those with a root. Returns (roots judged, roots not judged).
fn check_sampled_against_whole(
    [whole, drawn]: &[SampleRecord; 2],
    draw: RootSample,
) -> (usize, usize) {
    let (mut judged, mut skipped) = (0, 0);
    assert_eq!(whole.explained, drawn.explained);
    for (w, d) in whole.layers.iter().zip(&drawn.layers) {
        assert_eq!(
            (w.relevance_in, w.relevance_out),
            (d.relevance_in, d.relevance_out)
        );
        let with_root: Vec<usize> = w
            .neurons
            .iter()
            .filter(|n| n.root.is_some())
            .map(|n| n.neuron)
            .collect();
        let picked: Vec<usize> = d
            .neurons
            .iter()
            .filter(|n| n.root.is_some())
            .map(|n| n.neuron)
            .collect();
        assert_eq!(
            picked,
            draw_neurons(
                draw.seed,
                whole.sample,
                w.layer - 1,
                &with_root,
                draw.roots_per_layer
            )
        );
        assert_eq!(d.roots_available, Some(with_root.len()));
        assert_eq!(d.roots_judged, Some(picked.len()));
        for (wn, dn) in w.neurons.iter().zip(&d.neurons) {
            assert_eq!(
                (wn.neuron, wn.relevance, wn.no_root),
                (dn.neuron, dn.relevance, dn.no_root)
            );
            match (&wn.root, &dn.root) {
                (Some(a), Some(b)) => {
                    assert_eq!(
                        (a.valid, &a.region, &a.domain),
                        (b.valid, &b.region, &b.domain),
                        "sample {} layer {} neuron {}",
                        whole.sample,
                        w.layer,
                        wn.neuron
                    );
                    assert!(!dn.not_judged);
                    judged += 1;
                }
                (Some(_), None) => {
                    assert!(dn.not_judged);
                    skipped += 1;
                }
                (None, b) => assert!(b.is_none() && !dn.not_judged),
            }
        }
    }
    (judged, skipped)
}

#[test]
fn judged_roots_get_the_whole_audits_verdicts() {
    let cases = [
        ("c6", c6(), sampled(3, 0)),
        (
            "c6 exact",
            c6(),
            AuditSettings {
                exact: true,
                ..sampled(2, 9)
            },
        ),
        (
            "c6 z",
            c6(),
            AuditSettings {
                dtd: dtdcert::dtd::DtdSettings {
                    rule: dtdcert::dtd::Rule::Z,
                    ..Default::default()
                },
                ..sampled(4, 1)
            },
        ),
        (
            "conv + max pool",
            fixture("conv_maxpool_1x6x6_opset13"),
            sampled(2, 3),
        ),
        (
            "strided conv",
            fixture("conv_strided_1x7x7_opset11"),
            sampled(3, 2),
        ),
        (
            "max pool, coordinates",
            fixture("maxpool_coord_2x7x7_opset17"),
            sampled(3, 6),
        ),
    ];
    for (name, (model, xs), settings) in cases {
        let draw = settings.root_sample.unwrap();
        let (mut judged, mut skipped) = (0, 0);
        for pair in both(&model, &xs, &settings) {
            let (j, s) = check_sampled_against_whole(&pair, draw);
            judged += j;
            skipped += s;
        }
        // The comparison means something: roots were judged, and some were left out.
        assert!(
            judged > 0 && skipped > 0,
            "{name}: {judged} judged, {skipped} left out"
        );
    }
}

#[test]
fn a_draw_as_wide_as_the_widest_layer_is_the_whole_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = run_c6(AuditSettings::default(), None, &tmp.path().join("whole"));
    // C6's widest layer has 10 neurons.
    let all = run_c6(sampled(10, 5), None, &tmp.path().join("all"));
    assert_eq!(all, whole);
    assert!(whole.total.roots > 0);
    let strip = |mut r: SampleRecord| {
        for l in &mut r.layers {
            assert_eq!(l.roots_available, l.roots_judged);
            (l.roots_available, l.roots_judged) = (None, None);
        }
        r
    };
    let drawn: Vec<SampleRecord> = records(&tmp.path().join("all"))
        .into_iter()
        .map(strip)
        .collect();
    assert_eq!(drawn, records(&tmp.path().join("whole")));
    // The fractions of the summary are those of the whole audit's counts.
    let doc: serde_json::Value =
        serde_json::from_slice(&read(&tmp.path().join("all"), "summary.json")).unwrap();
    let total = &doc["root_sample"]["total"];
    assert_eq!(total["roots_judged"], whole.total.roots);
    assert_eq!(total["roots_available"], whole.total.roots);
    assert_eq!(total["outside"]["count"], whole.total.roots_outside);
}

#[test]
fn the_same_seed_gives_the_same_files_and_another_seed_another_draw() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| tmp.path().join(name);
    let a = run_c6(sampled(2, 11), None, &dir("a"));
    run_c6(sampled(2, 11), None, &dir("b"));
    assert_same_outputs(&dir("a"), &dir("b"));
    let c = run_c6(sampled(2, 12), None, &dir("c"));
    let judged = |records: Vec<SampleRecord>| -> Vec<Vec<usize>> {
        records
            .iter()
            .flat_map(|r| &r.layers)
            .map(|l| {
                l.neurons
                    .iter()
                    .filter(|n| n.root.is_some())
                    .map(|n| n.neuron)
                    .collect()
            })
            .collect()
    };
    assert_ne!(judged(records(&dir("a"))), judged(records(&dir("c"))));
    // Both draws judge the same number of roots: up to 2 of each layer of each sample.
    assert_eq!(a.total.roots, c.total.roots);
    assert_eq!(
        a.total.roots + a.total.roots_not_judged,
        c.total.roots + c.total.roots_not_judged
    );
}

#[test]
fn merged_shards_equal_the_single_sampled_run() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    run_c6(sampled(3, 4), None, &reference);
    let count = 3;
    let dirs: Vec<PathBuf> = (1..=count)
        .rev()
        .map(|index| {
            let dir = tmp.path().join(format!("shard-{index}"));
            run_c6(sampled(3, 4), Some(Shard { index, count }), &dir);
            dir
        })
        .collect();
    let out = tmp.path().join("merged");
    dtdcert::audit::merge::merge(&dirs, &out, true, false, &Reports).unwrap();
    assert_same_outputs(&reference, &out);
    // Shards of another draw do not merge with these.
    let other = tmp.path().join("other");
    run_c6(sampled(3, 5), Some(Shard { index: 1, count }), &other);
    let mixed = [other, dirs[0].clone(), dirs[1].clone()];
    let err =
        dtdcert::audit::merge::merge(&mixed, &tmp.path().join("mixed"), true, false, &Reports)
            .unwrap_err()
            .to_string();
    assert!(err.contains("root_sample.seed"), "{err}");
}

#[test]
fn an_interrupted_sampled_run_resumes_to_the_uninterrupted_files() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    run_c6(sampled(2, 8), None, &reference);
    let bytes = read(&reference, "records.jsonl");
    let line_ends: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i] == b'\n')
        .map(|i| i + 1)
        .collect();
    let (model, inputs, spec) = c6_run(sampled(2, 8), None);
    for (n, cut) in [0, line_ends[0], line_ends[40] + 7, bytes.len() - 1]
        .into_iter()
        .enumerate()
    {
        let dir = tmp.path().join(format!("cut-{n}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("run.json"), read(&reference, "run.json")).unwrap();
        fs::write(dir.join(MARKER), marker("audit", false)).unwrap();
        fs::write(dir.join("records.jsonl"), &bytes[..cut]).unwrap();
        runner(OPTIONS)
            .resume(&model, &inputs, &spec, &dir)
            .unwrap();
        assert_same_outputs(&reference, &dir);
    }
    // A resume with another draw is refused, naming the setting.
    let dir = tmp.path().join("other");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("run.json"), read(&reference, "run.json")).unwrap();
    fs::write(dir.join(MARKER), marker("audit", false)).unwrap();
    fs::write(dir.join("records.jsonl"), &bytes[..line_ends[3]]).unwrap();
    let (model, inputs, spec) = c6_run(sampled(3, 8), None);
    let err = runner(OPTIONS)
        .resume(&model, &inputs, &spec, &dir)
        .unwrap_err()
        .to_string();
    assert!(err.contains("root_sample.roots_per_layer"), "{err}");
}

#[test]
fn a_draw_is_refused_on_the_libtorch_backend_and_with_no_roots() {
    let (model, _) = c6();
    let torch = AuditSettings {
        torch: Some(dtdcert::audit::TorchSettings {
            device: dtdcert::audit::DeviceChoice::Cpu,
            precision: dtdcert::audit::Precision::F64,
        }),
        ..sampled(4, 0)
    };
    let err = torch.check(&model).unwrap_err().to_string();
    assert!(
        err.contains("--roots-per-layer") && err.contains("--backend torch"),
        "{err}"
    );
    let err = sampled(0, 0).check(&model).unwrap_err().to_string();
    assert!(err.contains("--roots-per-layer 0"), "{err}");
    assert!(sampled(1, 0).check(&model).is_ok());
}
