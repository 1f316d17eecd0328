//! The script this process runs: the image every traced process inherits
//! from the first (`ptap_options::inherited::ScriptImage`), or, in the
//! first process of a trace started without the launcher (`drrun`), the
//! script file read now and left as that image for the processes to come.

use ptap_options::inherited::{InheritedFds, ScriptImage};
use ptap_options::Options;

/// The image at `fds.script`, or one made from `options` and put there.
pub fn load(fds: &InheritedFds, options: &Options) -> Result<ScriptImage, String> {
    if let Some(image) = read_inherited(fds.script) {
        return Ok(image);
    }
    let absolute = |path: &str| {
        std::path::absolute(path).map(|p| p.to_string_lossy().into_owned()).map_err(|e| format!("{path}: {e}"))
    };
    let path = absolute(&options.script)?;
    let source = std::fs::read(&path).map_err(|e| format!("{}: cannot read script: {e}", options.script))?;
    let include_dirs = options.include_dirs.iter().map(|d| absolute(d)).collect::<Result<Vec<_>, _>>()?;
    let image = ScriptImage { path, name: options.script.clone(), include_dirs, source };
    leave_for_children(fds.script, &image);
    Ok(image)
}

/// The image in the inherited memfd, if there is one.
fn read_inherited(fd: i32) -> Option<ScriptImage> {
    // SAFETY: fstat and pread on an fd number into local buffers; a closed
    // or foreign fd fails or does not decode.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 || st.st_size <= 0 {
            return None;
        }
        let mut bytes = vec![0u8; st.st_size as usize];
        let mut done = 0;
        while done < bytes.len() {
            let n = libc::pread(fd, bytes[done..].as_mut_ptr() as *mut _, bytes.len() - done, done as libc::off_t);
            if n <= 0 {
                return None;
            }
            done += n as usize;
        }
        ScriptImage::decode(&bytes)
    }
}

/// Puts `image` in a memfd at `fd`, inheritable. Best effort: without it,
/// processes to come read the script file themselves.
fn leave_for_children(fd: i32, image: &ScriptImage) {
    let bytes = image.encode();
    // SAFETY: memfd_create with a constant name, writes from a live
    // buffer, dup2 to an fd of DynamoRIO's range no one else uses.
    unsafe {
        let memfd = libc::memfd_create(c"processtap-script".as_ptr(), libc::MFD_CLOEXEC);
        if memfd < 0 {
            return;
        }
        if libc::pwrite(memfd, bytes.as_ptr() as *const _, bytes.len(), 0) == bytes.len() as isize {
            libc::dup2(memfd, fd);
        }
        libc::close(memfd);
    }
}
