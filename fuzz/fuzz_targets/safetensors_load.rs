//! A JSON model description and a safetensors blob. The first two bytes (little-endian) give
//! the length of the description, the rest of the input after it is the safetensors file; a
//! length past the end takes everything. Loading must return `Ok` or `Err`, never panic, and any
//! network it accepts must be finite and consistently shaped.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let split = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (json, weights) = rest.split_at(split);
    let loaded =
        dtdcert::model::safetensors_json::load_bytes(json, weights, Path::new("fuzz/model.json"));
    if let Ok(net) = loaded {
        dtdcert_fuzz::check_network(&net);
    }
});
