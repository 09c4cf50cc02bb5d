//! Image networks as LRP libraries set them up: rules by kind of layer and by composite name
//! on the command line (with the rule each layer ran in the output), relevances in the input's
//! N×C×H×W shape, and one heatmap PNG per input.

use std::path::Path;

use assert_cmd::Command;
use ndarray::{Array2, Array4, ArrayD};
use ndarray_npy::read_npy;

const MODEL: &str = "tests/data/conformance/conv_2x6x6.onnx";
const INPUTS: &str = "tests/data/conformance/conv_2x6x6.inputs.npy";

struct Run {
    code: i32,
    stdout: String,
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
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Decodes an 8-bit RGB PNG into (width, height, pixels).
fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn explain_shows_the_rule_each_layer_ran_and_refuses_unknown_kinds_and_composites() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.npy");
    let run = dtdcert(&[
        "explain",
        "--model",
        MODEL,
        "--inputs",
        INPUTS,
        "--composite",
        "epsilon-gamma-box",
        "--low",
        "0",
        "--high",
        "1",
        "--kind-rule",
        "dense=epsilon:0.25",
        "--out",
        s(&out),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "rules 1:conv=zb:0:1 2:pool=epsilon:0.000001 3:conv=gamma:0.25 4:dense=epsilon:0.25"
        ),
        "{}",
        run.stdout
    );
    for (flag, value, words) in [
        ("--kind-rule", "linear=z", "valid: input, conv, dense, pool"),
        ("--kind-rule", "conv", "KIND=RULE"),
        (
            "--composite",
            "lrp",
            "valid: epsilon-plus, epsilon-plus-flat",
        ),
        ("--composite", "epsilon-gamma-box", "--low and --high"),
    ] {
        let run = dtdcert(&[
            "explain",
            "--model",
            MODEL,
            "--inputs",
            INPUTS,
            flag,
            value,
            "--out",
            s(&out),
        ]);
        assert_eq!(run.code, 2, "{flag} {value}: {}", run.stderr);
        assert!(run.stderr.contains(words), "{flag} {value}: {}", run.stderr);
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
    }
}

#[test]
fn image_relevances_keep_the_input_shape_and_draw_one_heatmap_per_input() {
    let dir = tempfile::tempdir().unwrap();
    let (out, maps) = (dir.path().join("r.npy"), dir.path().join("maps"));
    let args = [
        "explain",
        "--model",
        MODEL,
        "--inputs",
        INPUTS,
        "--composite",
        "epsilon-plus",
        "--out",
        s(&out),
        "--heatmap",
        s(&maps),
    ];
    let run = dtdcert(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rel: ArrayD<f64> = read_npy(&out).unwrap();
    assert_eq!(rel.shape(), &[4, 2, 6, 6]);
    let rel: Array4<f64> = rel.into_dimensionality().unwrap();
    for i in 0..4 {
        let (w, h, px) = decode(&maps.join(format!("input_{i:05}.png")));
        assert_eq!((w, h, px.len()), (6, 6, 108));
        let sums: Vec<f64> = (0..36)
            .map(|p| rel[[i, 0, p / 6, p % 6]] + rel[[i, 1, p / 6, p % 6]])
            .collect();
        let largest = sums.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        assert!(largest > 0.0);
        for (p, &v) in sums.iter().enumerate() {
            let [r, g, b] = [px[3 * p], px[3 * p + 1], px[3 * p + 2]];
            if v == 0.0 {
                assert_eq!([r, g, b], [255, 255, 255]);
            } else if v > 0.0 {
                assert!(r == 255 && g == b && (v < largest || g == 0));
            } else {
                assert!(b == 255 && r == g && (-v < largest || r == 0));
            }
        }
        // The largest |relevance| is a full colour.
        assert!(px.chunks(3).any(|c| c == [255, 0, 0] || c == [0, 0, 255]));
    }
    // A finished heatmap folder is replaced only with --force.
    let again = dtdcert(&args);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("--heatmap") && again.stderr.contains("--force"),
        "{}",
        again.stderr
    );
    let forced = dtdcert(&[&args[..], &["--force"]].concat());
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    // An MLP's relevances stay N×features, and it has no image to draw.
    let mlp = [
        "explain",
        "--model",
        "tests/data/conformance/mlp_6_8_5_3.onnx",
        "--inputs",
        "tests/data/conformance/mlp_6_8_5_3.inputs.npy",
        "--out",
        s(&out),
    ];
    assert_eq!(dtdcert(&mlp).code, 0);
    let flat: Array2<f64> = read_npy(&out).unwrap();
    assert_eq!(flat.ncols(), 6);
    let run = dtdcert(&[&mlp[..], &["--heatmap", s(&dir.path().join("m"))]].concat());
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not an image"), "{}", run.stderr);
}
