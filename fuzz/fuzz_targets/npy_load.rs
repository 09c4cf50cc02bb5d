//! Arbitrary bytes as an `.npy` file or an `.npz` archive (the loader tells them apart by their
//! leading bytes), as inputs and as targets. Errors are fine, panics are not; every row of
//! accepted inputs is read, and agrees with the all-rows view.
#![no_main]

use std::path::Path;

use dtdcert::model::inputs::{load_inputs_bytes, InputsView};
use dtdcert::model::targets::load_targets_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.npy");
    let mut rows = 4;
    // `x` names the inputs of the checked-in dataset archive; a key on an .npy is an error.
    for key in [None, Some("x")] {
        let Ok(inputs) = load_inputs_bytes(data, path, key) else {
            continue;
        };
        rows = inputs.len();
        assert!(!inputs.is_empty() && inputs.dim() > 0);
        let view = inputs.view();
        let mut row = Vec::new();
        for i in 0..inputs.len() {
            match inputs.row_into(i, &mut row) {
                Ok(()) => {
                    assert_eq!(row.len(), inputs.dim());
                    assert!(row.iter().all(|v| v.is_finite()));
                    match &view {
                        Ok(InputsView::F32(v)) => assert!(v
                            .row(i)
                            .iter()
                            .zip(&row)
                            .all(|(&a, &b)| f64::from(a).to_bits() == b.to_bits())),
                        Ok(InputsView::F64(v)) => assert!(v
                            .row(i)
                            .iter()
                            .zip(&row)
                            .all(|(&a, &b)| a.to_bits() == b.to_bits())),
                        Err(_) => {}
                    }
                }
                Err(_) => assert!(row.iter().any(|v| !v.is_finite())),
            }
        }
        assert!(inputs.row_into(inputs.len(), &mut row).is_err());
    }
    for key in [None, Some("y")] {
        if let Ok(targets) = load_targets_bytes(data, path, key, rows) {
            assert_eq!(targets.len(), rows);
        }
    }
});
