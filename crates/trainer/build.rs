//! Links this package's executables against libtorch with an rpath (and CUDA when present).

fn main() {
    libtorch_link::emit();
}
