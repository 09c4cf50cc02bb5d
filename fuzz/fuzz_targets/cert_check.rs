//! Certificate parsing and checking: any bytes, parsed as a certificate and checked against a
//! small fixed model, give a certificate or a parse error, and an accepted or rejected claim;
//! never a panic or a hang. Accepted optimal claims carry an interval with lower <= upper.

#![no_main]

use std::sync::OnceLock;

use dtdcert::exact::certificate::{check, Certificate};
use dtdcert::model::Model;
use libfuzzer_sys::fuzz_target;

fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/safetensors/mlp_3_4_2.json"
        );
        Model::load(std::path::Path::new(path)).expect("the fixture model loads")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cert) = serde_json::from_str::<Certificate>(text) else {
        return;
    };
    // Keep single inputs cheap: the fixture model is 3-4-2, so anything bigger is refused by
    // the checker after a length comparison anyway.
    if let Ok(accepted) = check(model(), &cert) {
        if let (Some(lower), Some(upper)) = (&accepted.lower, &accepted.upper) {
            assert!(lower <= upper, "accepted interval [{lower}, {upper}]");
        }
    }
});
