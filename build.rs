//! Make binaries and tests that link pyo3 load the libpython of the interpreter pyo3 was
//! built against (the project venv's), not whichever libpython the loader finds first:
//! without the rpath link arguments a machine with a second Python (e.g. Debian's system
//! libpython beside a pyenv or venv one) silently loads the other one.
//!
//! Also records that interpreter's path as `CLOUDBURST_BUILD_PYTHON`: the Python worker
//! initialises CPython with it as program name so the venv's `pyvenv.cfg` is honoured
//! (overridable at run time by `CLOUDBURST_PYTHON`). The path is not canonicalised: the
//! venv's `bin/python3` is a symlink, and resolving it would lose the venv. And records its
//! `major.minor` as `CLOUDBURST_BUILD_PYTHON_VERSION`: an environment chosen for the
//! executors must match the libpython linked in.
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    let python = std::env::var("PYO3_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .or_else(|| pyo3_build_config::get().executable().map(str::to_string))
        .unwrap_or_else(|| "python3".to_string());
    println!("cargo:rustc-env=CLOUDBURST_BUILD_PYTHON={python}");
    let version = pyo3_build_config::get().version();
    println!(
        "cargo:rustc-env=CLOUDBURST_BUILD_PYTHON_VERSION={}.{}",
        version.major, version.minor
    );
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
