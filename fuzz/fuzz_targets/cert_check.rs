//! Certificate parsing and checking: any bytes, parsed as a certificate and checked against
//! two small fixed models (an MLP, and a conv net with a max-pool layer), give a certificate
//! or a parse error, and an accepted or rejected claim; never a panic or a hang. Accepted optimal claims carry an interval with lower <= upper.

#![no_main]

use std::sync::OnceLock;

use dtdcert::check::{check, Certificate};
use dtdcert::model::Model;
use libfuzzer_sys::fuzz_target;

fn load(path: &str) -> Model {
    Model::load(std::path::Path::new(path)).expect("the fixture model loads")
}

/// An MLP (3-4-2) and a small convolutional network with a max-pool layer (36 inputs).
fn models() -> &'static [Model; 2] {
    static MODELS: OnceLock<[Model; 2]> = OnceLock::new();
    MODELS.get_or_init(|| {
        [
            load(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/data/safetensors/mlp_3_4_2.json"
            )),
            load(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/data/onnx/conv_maxpool_1x6x6_opset13.onnx"
            )),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cert) = serde_json::from_str::<Certificate>(text) else {
        return;
    };
    // Keep single inputs cheap: the fixture models are small, so anything bigger is refused by
    // the checker after a length comparison anyway.
    for model in models() {
        if let Ok(accepted) = check(model, &cert) {
            if let (Some(lower), Some(upper)) = (&accepted.lower, &accepted.upper) {
                assert!(lower <= upper, "accepted interval [{lower}, {upper}]");
            }
        }
    }
});
