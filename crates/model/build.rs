//! Links this package's executables against libtorch with an rpath (and CUDA
//! when present), and compiles the one C++ file that calls into ATen
//! directly (`csrc/aten_shim.cpp`) against the same libtorch's headers.

use std::path::PathBuf;

fn main() {
    libtorch_link::emit();
    compile_aten_shim();
}

/// Compiles `csrc/aten_shim.cpp` as torch-sys compiles its own C++: C++17,
/// the libtorch headers, and the C++ ABI libtorch was built with.
fn compile_aten_shim() {
    println!("cargo:rerun-if-changed=csrc/aten_shim.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    // torch-sys (links = "tch") tells its dependents where libtorch's libraries are.
    let lib_dir = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys sets DEP_TCH_LIBTORCH_LIB for its dependents"),
    );
    let include_dir = lib_dir.parent().expect("libtorch's lib/ has a parent folder").join("include");
    let cxx11_abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
        .cpp(true)
        .file("csrc/aten_shim.cpp")
        .include(&include_dir)
        .include(include_dir.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={cxx11_abi}"))
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false)
        .compile("model_aten_shim");
}
