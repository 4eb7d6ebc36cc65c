//! Make binaries and tests that link pyo3 load the libpython of the interpreter pyo3 was
//! built against (the project venv's), not whichever libpython the loader finds first.
//! See STACK-NOTES: without this, binaries silently load Debian's libpython.
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
