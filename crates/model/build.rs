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
    println!("cargo:rerun-if-changed=csrc/bn_pool_lrelu.cpp");
    println!("cargo:rerun-if-changed=csrc/adam_bf16_shadow.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    // torch-sys (links = "tch") tells its dependents where libtorch's libraries are.
    let lib_dir = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys sets DEP_TCH_LIBTORCH_LIB for its dependents"),
    );
    let include_dir = lib_dir.parent().expect("libtorch's lib/ has a parent folder").join("include");
    let cxx11_abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .include(&include_dir)
        .include(include_dir.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        // ATen's `parallel_for` is a header template whose threads are OpenMP's
        // `#pragma omp parallel`: without -fopenmp the shim's loops would run on one thread.
        .flag("-fopenmp")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={cxx11_abi}"))
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false);
    // The shim first: the linker reads archives in order, and it calls into the next one.
    build.clone().file("csrc/aten_shim.cpp").compile("model_aten_shim");
    // The fused convolution tail and Adam with a bf16 shadow are compiled for
    // AVX2 and FMA, so that their loops vectorise; the shim calls them only
    // on CPUs that have them. Without -fno-math-errno a loop that takes a
    // square root stays scalar (each sqrtf may have to set errno); the
    // kernels never read errno, so the flag changes no result.
    build
        .file("csrc/bn_pool_lrelu.cpp")
        .file("csrc/adam_bf16_shadow.cpp")
        .flag("-mavx2")
        .flag("-mfma")
        .flag("-fno-math-errno")
        .compile("model_avx2_kernels");
    // The OpenMP runtime libtorch itself uses (its lib/ holds libgomp.so.1 and is on the search path).
    println!("cargo:rustc-link-lib=dylib=gomp");
}
