//! Arbitrary bytes as an ONNX model: the loader must return `Ok` or `Err`, never panic, and
//! any network it accepts must be finite and consistently shaped.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(net) = dtdcert::model::onnx::load_bytes(data, Path::new("fuzz.onnx")) {
        dtdcert_fuzz::check_network(&net);
    }
});
