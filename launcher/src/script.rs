//! The script every traced process runs, read once.
//!
//! Each process the target forks or execs runs the script's top level. The
//! launcher reads the script once and hands every process the same image
//! of it (`ptap_options::inherited::ScriptImage`, in a memfd the target
//! inherits unseen): a script given as `/dev/stdin` or `<(...)` is a pipe
//! that can be read only once, a relative path means nothing to a process
//! that changed directory, and an edit to the file while the target runs
//! does not change the script half-way.

use ptap_options::inherited::ScriptImage;
use std::os::fd::{FromRawFd, OwnedFd};

/// Reads the script named `name` (as the user gave it) at `path`
/// (absolute); `include_dirs` are absolute too.
pub fn read(path: &str, name: &str, include_dirs: &[String]) -> Result<ScriptImage, String> {
    let reason = |e: std::io::Error| format!("{name}: cannot read script: {}", crate::locate::io_reason(&e));
    if std::fs::metadata(path).map_err(reason)?.is_dir() {
        return Err(format!("{name}: is a directory, not a script"));
    }
    let source = std::fs::read(path).map_err(reason)?;
    Ok(ScriptImage { path: path.to_string(), name: name.to_string(), include_dirs: include_dirs.to_vec(), source })
}

/// A memfd holding `image`, close-on-exec in the launcher.
pub fn memfd(image: &ScriptImage) -> Result<OwnedFd, String> {
    // SAFETY: memfd_create with a constant name; the fd is ours alone.
    let fd = unsafe { libc::memfd_create(c"processtap-script".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("cannot keep the script in memory: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just made and is owned by no one else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut file, &image.encode()).map_err(|e| format!("cannot keep the script in memory: {e}"))?;
    Ok(OwnedFd::from(file))
}
