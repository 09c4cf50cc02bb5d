//! Arbitrary bytes as an ONNX model: the loader must return `Ok` or `Err`, never panic, and
//! any network it accepts must be finite and consistently shaped. Each input is read twice:
//! as a one-input graph, and with a question of 5 values for a graph with a second input (the
//! width of the relation-network seed), so that mutations of that seed reach the translation
//! tensor by tensor.
#![no_main]

use std::path::Path;

use dtdcert::model::onnx::{load_bytes, load_bytes_with, OnnxOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.onnx");
    if let Ok(net) = load_bytes(data, path) {
        dtdcert_fuzz::check_network(&net);
    }
    let options = OnnxOptions {
        question: Some(vec![0.5, -1.0, 0.0, 1.0, 2.0]),
        ..OnnxOptions::default()
    };
    if let Ok(net) = load_bytes_with(data, path, options) {
        dtdcert_fuzz::check_network(&net);
    }
});
