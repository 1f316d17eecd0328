//! Where ProcessTap's parts are relative to each other, for the launcher
//! and the client alike: the `ptap` Python package beside `libptap.so`,
//! and the Python interpreter the client embeds.

use std::path::{Path, PathBuf};

/// The Python interpreter the client was built against (Debian's
/// python3.11): the launcher runs it to prepare included C headers.
pub const PYTHON: &str = match option_env!("PYO3_PYTHON") {
    Some(python) => python,
    None => "/usr/bin/python3",
};

/// The directory holding the `ptap` package: installed beside the client
/// (`<libdir>/processtap/python`), in this checkout relative to the built
/// client (`target/<profile>/../../ptap-lib`), or where it was built from.
pub fn find_ptap_lib(client_path: &Path) -> Option<PathBuf> {
    let client_dir = client_path.parent().unwrap_or(Path::new("."));
    let source_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ptap-lib");
    [client_dir.join("python"), client_dir.join("../../ptap-lib"), source_dir]
        .into_iter()
        .find(|d| d.join("ptap").join("__init__.py").is_file())
        .map(|d| d.canonicalize().unwrap_or(d))
}
