//! The report pipe: what the traced processes say about their probes,
//! gathered while the target runs, so that a probe that matched nothing in
//! the whole run (a misspelt function name, say) gets one warning at the
//! end instead of one per process, or none.

use ptap_options::inherited::Report;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The pipe, before the target starts.
pub struct ReportReader {
    read: OwnedFd,
    write: OwnedFd,
    /// Closing `stop` tells the reading thread the target has ended.
    stop_read: OwnedFd,
    stop: OwnedFd,
}

/// The pipe being read by a thread of the launcher.
pub struct ReportsInBackground {
    stop: OwnedFd,
    thread: std::thread::JoinHandle<Reports>,
}

/// What the processes reported.
#[derive(Default)]
struct Reports {
    warnings: BTreeMap<usize, String>,
    matched: BTreeSet<usize>,
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 gave us these two fds, owned by no one else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl ReportReader {
    /// Makes the pipe. Its write end is non-blocking: a process whose
    /// report does not fit drops it rather than wait for the launcher.
    pub fn start() -> std::io::Result<ReportReader> {
        let (read, write) = pipe()?;
        // SAFETY: plain fcntl on an fd we own.
        unsafe {
            let flags = libc::fcntl(write.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(write.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
            // Room for many processes' reports (64 KiB by default).
            libc::fcntl(read.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
        }
        let (stop_read, stop) = pipe()?;
        Ok(ReportReader { read, write, stop_read, stop })
    }

    /// The fd the target inherits.
    pub fn write_end(&self) -> i32 {
        self.write.as_raw_fd()
    }

    /// Closes the launcher's write end and reads in a thread until
    /// [`ReportsInBackground::finish`].
    pub fn read_in_background(self) -> ReportsInBackground {
        let ReportReader { read, write, stop_read, stop } = self;
        drop(write);
        let thread = std::thread::spawn(move || read_until_stopped(read, stop_read));
        ReportsInBackground { stop, thread }
    }
}

impl ReportsInBackground {
    /// Reads what is left and returns the warnings of probes that some
    /// process said may never match and none said matched, in the
    /// script's order.
    pub fn finish(self) -> Vec<String> {
        drop(self.stop);
        let reports = self.thread.join().unwrap_or_default();
        reports.warnings.into_iter().filter(|(i, _)| !reports.matched.contains(i)).map(|(_, w)| w).collect()
    }
}

/// Reads reports until `stop` is closed (or every writer is gone), then
/// takes what is already in the pipe.
fn read_until_stopped(read: OwnedFd, stop: OwnedFd) -> Reports {
    let mut reports = Reports::default();
    let mut file = std::fs::File::from(read);
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut polled = [
            libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: stop.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: `polled` is a valid array of two pollfds.
        let n = unsafe { libc::poll(polled.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if polled[0].revents != 0 {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => take_lines(&mut pending, &buf[..n], &mut reports),
            }
            continue;
        }
        if polled[1].revents != 0 {
            // The target has ended: what its processes wrote is in the pipe.
            // SAFETY: plain fcntl on an fd we own.
            unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
            while let Ok(n @ 1..) = file.read(&mut buf) {
                take_lines(&mut pending, &buf[..n], &mut reports);
            }
            break;
        }
    }
    reports
}

/// Adds `bytes` to `pending` and records every whole line in it.
fn take_lines(pending: &mut Vec<u8>, bytes: &[u8], reports: &mut Reports) {
    pending.extend_from_slice(bytes);
    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        match Report::parse(String::from_utf8_lossy(&line[..end]).as_ref()) {
            Some(Report::MayNeverMatch { index, warning }) => {
                reports.warnings.entry(index).or_insert(warning);
            }
            Some(Report::Matched { index }) => {
                reports.matched.insert(index);
            }
            None => {}
        }
    }
}
