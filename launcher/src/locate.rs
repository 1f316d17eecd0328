//! Finding the things the launcher needs: the command, DynamoRIO and the
//! client. Each failure is a one-line message for the user.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Resolves the command as `execvp` would: a name with a slash is a path,
/// anything else is looked up in `PATH`. The result is absolute.
pub fn find_command(program: &str) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = Path::new(program);
        return match std::fs::metadata(path) {
            Err(e) => Err(format!("{program}: {}", io_reason(&e))),
            Ok(m) if m.is_dir() => Err(format!("{program}: is a directory")),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => Err(format!("{program}: permission denied (not executable)")),
            Ok(_) => Ok(std::path::absolute(path).map_err(|e| e.to_string())?),
        };
    }
    let path_var = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path_var) {
        let candidate = dir.join(program);
        if let Ok(m) = std::fs::metadata(&candidate) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return std::path::absolute(&candidate).map_err(|e| e.to_string());
            }
        }
    }
    Err(format!("{program}: command not found"))
}

/// How many `#!` interpreters may stand in a row, as in Linux.
const MAX_INTERPRETER_DEPTH: usize = 4;

/// The executable to run and the argv it gets. DynamoRIO maps ELF files
/// only, so for a `#!` script we do what the kernel would: run the
/// interpreter with the optional argument and the script's path.
pub fn resolve_interpreters(executable: PathBuf, argv: &[String]) -> Result<(PathBuf, Vec<String>), String> {
    let mut executable = executable;
    let mut argv = argv.to_vec();
    for _ in 0..MAX_INTERPRETER_DEPTH {
        let Some((interpreter, optional)) = read_shebang(&executable) else {
            check_elf(&executable)?;
            return Ok((executable, argv));
        };
        let mut new_argv = vec![interpreter.clone()];
        new_argv.extend(optional);
        new_argv.push(executable.to_string_lossy().into_owned());
        new_argv.extend(argv.into_iter().skip(1));
        argv = new_argv;
        executable = find_command(&interpreter)?;
    }
    Err(format!("{}: too many levels of #! interpreters", executable.display()))
}

/// DynamoRIO maps ELF executables only; the kernel refuses anything else
/// with ENOEXEC (a shell would then run a text file as a shell script,
/// which is the shell's choice, not a program's).
fn check_elf(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic));
    match read {
        Ok(()) if &magic == b"\x7fELF" => Ok(()),
        Err(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
            Err(format!("{}: cannot execute: {}", path.display(), io_reason(&e)))
        }
        _ => Err(format!("{}: cannot execute: not an ELF executable nor a #! script", path.display())),
    }
}

/// The interpreter and its optional argument named by a `#!` line.
fn read_shebang(path: &Path) -> Option<(String, Option<String>)> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let head = &head[..n];
    let line = head.strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let line = String::from_utf8_lossy(line);
    let line = line.trim();
    let (interpreter, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
    let rest = rest.trim();
    (!interpreter.is_empty()).then(|| (interpreter.to_string(), (!rest.is_empty()).then(|| rest.to_string())))
}

/// `libdynamorio.so`: `$DYNAMORIO_HOME` if set, else next to this
/// executable (`target/<profile>/dynamorio`, linked there by the build) or
/// in an installed prefix (`<prefix>/lib/processtap/dynamorio`).
pub fn dynamorio_library() -> Result<PathBuf, String> {
    let mut homes = Vec::new();
    if let Some(home) = std::env::var_os("DYNAMORIO_HOME") {
        homes.push(PathBuf::from(home));
    }
    let exe_dir = own_dir()?;
    homes.push(exe_dir.join("dynamorio"));
    homes.push(exe_dir.join("../lib/processtap/dynamorio"));
    let lib_dir = if cfg!(target_pointer_width = "64") { "lib64" } else { "lib32" };
    homes
        .iter()
        .map(|home| home.join(lib_dir).join("release").join("libdynamorio.so"))
        .find(|lib| lib.is_file())
        .ok_or_else(|| format!("cannot find libdynamorio.so (looked in {}); set DYNAMORIO_HOME", join_paths(&homes)))
}

/// `libptap.so`: `$PTAP_CLIENT` if set, else next to this executable or in
/// an installed prefix (`<prefix>/lib/processtap/libptap.so`).
pub fn client_library() -> Result<PathBuf, String> {
    let exe_dir = own_dir()?;
    let mut candidates = Vec::new();
    if let Some(client) = std::env::var_os("PTAP_CLIENT") {
        candidates.push(PathBuf::from(client));
    }
    candidates.push(exe_dir.join("libptap.so"));
    candidates.push(exe_dir.join("../lib/processtap/libptap.so"));
    candidates
        .iter()
        .find(|c| c.is_file())
        .map(|c| c.canonicalize().unwrap_or_else(|_| c.clone()))
        .ok_or_else(|| format!("cannot find libptap.so (looked for {}); set PTAP_CLIENT", join_paths(&candidates)))
}

/// The directory holding the running `processtap`, links resolved.
fn own_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// The reason part of an I/O error, without Rust's "(os error N)".
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
