// The targets link the cloudburst library, which embeds CPython: load the libpython of the
// Python pyo3 was built against (not the system's), as the main crate's binaries do.
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
}
