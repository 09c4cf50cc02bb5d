//! With the `torch` feature: the binaries and tests find libtorch at run time without
//! `LD_LIBRARY_PATH` (torch-sys tells its direct dependents where libtorch's libraries are,
//! and they get that folder as their run path). libtorch's CUDA library is not linked: the
//! `cuda` feature loads it at run time (`torch::device`). Without the feature it does
//! nothing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
        let lib = lib.to_string_lossy();
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
