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
    let image = ScriptImage::read(&options.script, &options.include_dirs, &options.programs)?;
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
    if let Ok(memfd) = image.to_memfd() {
        // SAFETY: dup2 to an fd of DynamoRIO's range no one else uses; the
        // copy is not close-on-exec.
        unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&memfd), fd) };
    }
}
