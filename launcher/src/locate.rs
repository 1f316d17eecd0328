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

/// The architectures ProcessTap traces, each with its own DynamoRIO and
/// client.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arch {
    X86_64,
    /// 32-bit x86 (ELFCLASS32, EM_386).
    I686,
}

impl Arch {
    /// DynamoRIO's name for the folder of its libraries.
    fn lib_dir(self) -> &'static str {
        match self {
            Arch::X86_64 => "lib64",
            Arch::I686 => "lib32",
        }
    }

    /// The folder of this architecture's build beside the running
    /// launcher's (`target/release` and `target/i686-unknown-linux-gnu/release`).
    fn build_dir(self, exe_dir: &Path) -> PathBuf {
        let own = if cfg!(target_pointer_width = "64") { Arch::X86_64 } else { Arch::I686 };
        match (own, self) {
            (a, b) if a == b => exe_dir.to_path_buf(),
            (_, Arch::I686) => exe_dir.join("../i686-unknown-linux-gnu/release"),
            (_, Arch::X86_64) => exe_dir.join("../../x86_64-unknown-linux-gnu/release"),
        }
    }

}

/// The executable to run, the argv it gets and its architecture.
/// DynamoRIO maps ELF files only, so for a `#!` script we do what the
/// kernel would: run the interpreter with the optional argument and the
/// script's path (the interpreter's ELF class is the one that counts).
pub fn resolve_interpreters(executable: PathBuf, argv: &[String]) -> Result<(PathBuf, Vec<String>, Arch), String> {
    let mut executable = executable;
    let mut argv = argv.to_vec();
    for _ in 0..MAX_INTERPRETER_DEPTH {
        let Some((interpreter, optional)) = read_shebang(&executable) else {
            let arch = elf_arch(&executable)?;
            return Ok((executable, argv, arch));
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

/// The architecture of the ELF executable at `path`. DynamoRIO maps ELF
/// executables only; the kernel refuses anything else with ENOEXEC (a
/// shell would then run a text file as a shell script, which is the
/// shell's choice, not a program's).
fn elf_arch(path: &Path) -> Result<Arch, String> {
    use std::io::Read;
    // e_ident (16 bytes), e_type (2), e_machine (2, little-endian here).
    let mut head = [0u8; 20];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    match read {
        Ok(()) if &head[..4] == b"\x7fELF" => {}
        Err(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
            return Err(format!("{}: cannot execute: {}", path.display(), io_reason(&e)))
        }
        _ => return Err(format!("{}: cannot execute: not an ELF executable nor a #! script", path.display())),
    }
    const ELFCLASS32: u8 = 1;
    const ELFCLASS64: u8 = 2;
    const EM_386: u16 = 3;
    const EM_X86_64: u16 = 62;
    match (head[4], u16::from_le_bytes([head[18], head[19]])) {
        (ELFCLASS64, EM_X86_64) => Ok(Arch::X86_64),
        (ELFCLASS32, EM_386) => Ok(Arch::I686),
        (class, machine) => Err(format!(
            "{}: a {}-bit ELF program for machine {machine}: ProcessTap traces x86-64 and 32-bit x86 programs",
            path.display(),
            if class == ELFCLASS32 { 32 } else { 64 }
        )),
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

/// `libdynamorio.so` for `arch`: in `$DYNAMORIO_HOME` (`$DYNAMORIO_HOME32`
/// for 32-bit x86, where a DynamoRIO of each architecture stands apart) if
/// set, else in the build's home of both architectures
/// ([`shared_build_home`]), in that architecture's build beside this
/// executable (`target/<profile>/dynamorio`, linked there by the build;
/// `scripts/build-i686` makes the 32-bit one) or in an installed prefix
/// (`<prefix>/lib/processtap/dynamorio`, both architectures).
///
/// A home with both matters to a process that execs a program of the
/// other architecture: DynamoRIO then runs its other `libdynamorio.so`,
/// which it finds by swapping `lib64` and `lib32` in its own path.
pub fn dynamorio_library(arch: Arch) -> Result<PathBuf, String> {
    let mut homes = Vec::new();
    let variables: &[&str] = match arch {
        Arch::X86_64 => &["DYNAMORIO_HOME"],
        Arch::I686 => &["DYNAMORIO_HOME32", "DYNAMORIO_HOME"],
    };
    homes.extend(variables.iter().filter_map(std::env::var_os).map(PathBuf::from));
    let exe_dir = own_dir()?;
    homes.extend(shared_build_home(&exe_dir));
    homes.push(arch.build_dir(&exe_dir).join("dynamorio"));
    homes.push(exe_dir.join("../lib/processtap/dynamorio"));
    homes
        .iter()
        .map(|home| library_in(home, arch))
        .find(|lib| lib.is_file())
        .ok_or_else(|| missing(arch, "libdynamorio.so", &format!("looked in {}; set {}", join_paths(&homes), variables[0])))
}

/// `arch`'s `libdynamorio.so` in the DynamoRIO home `home`.
fn library_in(home: &Path, arch: Arch) -> PathBuf {
    home.join(arch.lib_dir()).join("release").join("libdynamorio.so")
}

/// The DynamoRIO home of the build that holds both architectures
/// (`target/dynamorio-home`, copies `scripts/build-i686` makes), while
/// each copy is the same file as its architecture's build (size and time):
/// a copy left from an older build is not run.
fn shared_build_home(exe_dir: &Path) -> Option<PathBuf> {
    let home = Arch::X86_64.build_dir(exe_dir).join("../dynamorio-home");
    let same = |arch: Arch| {
        let copy = std::fs::metadata(library_in(&home, arch)).ok()?;
        let built = std::fs::metadata(library_in(&arch.build_dir(exe_dir).join("dynamorio"), arch)).ok()?;
        (copy.len() == built.len() && copy.modified().ok()? == built.modified().ok()?).then_some(())
    };
    (same(Arch::X86_64).is_some() && same(Arch::I686).is_some()).then_some(home)
}

/// The other architecture's client, when a process of `arch` running
/// `dynamorio` may follow an exec into a program of it: its DynamoRIO in
/// the same home and its `libptap.so` both found.
pub fn other_client(arch: Arch, dynamorio: &Path) -> Option<(Arch, PathBuf)> {
    let other = match arch {
        Arch::X86_64 => Arch::I686,
        Arch::I686 => Arch::X86_64,
    };
    // dynamorio is <home>/<lib>/release/libdynamorio.so.
    let home = dynamorio.parent()?.parent()?.parent()?;
    library_in(home, other).is_file().then_some(())?;
    Some((other, client_library(other).ok()?))
}

/// `libptap.so` for `arch`: `$PTAP_CLIENT` (`$PTAP_CLIENT32` for 32-bit
/// x86) if set, else in that architecture's build beside this executable
/// or in an installed prefix (`<prefix>/lib/processtap/libptap.so`,
/// `<prefix>/lib/processtap/lib32/libptap.so`).
pub fn client_library(arch: Arch) -> Result<PathBuf, String> {
    let exe_dir = own_dir()?;
    let variable = match arch {
        Arch::X86_64 => "PTAP_CLIENT",
        Arch::I686 => "PTAP_CLIENT32",
    };
    let mut candidates = Vec::new();
    if let Some(client) = std::env::var_os(variable) {
        candidates.push(PathBuf::from(client));
    }
    candidates.push(arch.build_dir(&exe_dir).join("libptap.so"));
    candidates.push(match arch {
        Arch::X86_64 => exe_dir.join("../lib/processtap/libptap.so"),
        Arch::I686 => exe_dir.join("../lib/processtap/lib32/libptap.so"),
    });
    candidates
        .iter()
        .find(|c| c.is_file())
        .map(|c| c.canonicalize().unwrap_or_else(|_| c.clone()))
        .ok_or_else(|| missing(arch, "libptap.so", &format!("looked for {}; set {variable}", join_paths(&candidates))))
}

/// The message for a part of `arch`'s build that is not there.
fn missing(arch: Arch, what: &str, looked: &str) -> String {
    match arch {
        Arch::X86_64 => format!("cannot find {what} ({looked})"),
        Arch::I686 => format!("the command is a 32-bit x86 program, and the 32-bit {what} is not built ({looked}); scripts/build-i686 builds it"),
    }
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
