//! What every traced process inherits from the first: the tracer's output
//! streams, the script, and the pipe of reports to the launcher.
//!
//! They are file descriptors at the top of DynamoRIO's reserved range:
//! DynamoRIO keeps the highest `-steal_fds` (96) fds below the hard
//! `RLIMIT_NOFILE` for itself and hides them from the target, which
//! cannot open, `dup2` onto or `fcntl(F_DUPFD)` into them (the client
//! refuses its `close` and keeps `close_range` off them). They are not
//! close-on-exec, so every process the target forks or execs inherits
//! them. The launcher puts them in place before the target starts; under a
//! plain `drrun` the first traced process makes them.
//!
//! - The tracer's stdout (what handlers print, or the `-o` file) and its
//!   stderr (banner, tracebacks, warnings): the client in each process
//!   writes there, never to the process's own fds 1 and 2, which belong to
//!   the target (a child's fd 1 may be a pipe its parent reads, or a file
//!   it is writing).
//! - The script, as the first process read it ([`ScriptImage`], in a
//!   memfd): a process that changed directory, or a script that was a pipe
//!   (`/dev/stdin`, `<(...)`), is read once and run the same everywhere.
//! - The write end of a pipe only the launcher reads ([`Report`]), so that
//!   it can warn once per run about a probe that matched nothing in any
//!   process (absent under `drrun`).

/// DynamoRIO's default `-steal_fds`: the fds it reserves below the hard limit.
pub const DYNAMORIO_RESERVED_FDS: u64 = 96;

/// The numbers of the inherited fds in every traced process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InheritedFds {
    /// The tracer's stdout.
    pub out: i32,
    /// The tracer's stderr.
    pub err: i32,
    /// The report pipe to the launcher.
    pub reports: i32,
    /// The script image.
    pub script: i32,
}

impl InheritedFds {
    /// The fds for a process whose hard `RLIMIT_NOFILE` is `hard_limit`
    /// (DynamoRIO does not let the target change it), or `None` when the
    /// limit leaves DynamoRIO no reserved range to put them in.
    pub fn for_hard_limit(hard_limit: u64) -> Option<InheritedFds> {
        if hard_limit <= DYNAMORIO_RESERVED_FDS || hard_limit > i32::MAX as u64 {
            return None;
        }
        let top = hard_limit as i32;
        Some(InheritedFds { out: top - 1, err: top - 2, reports: top - 3, script: top - 4 })
    }

    /// All of them.
    pub fn all(&self) -> [i32; 4] {
        [self.out, self.err, self.reports, self.script]
    }

    /// The lowest of them.
    pub fn lowest(&self) -> i32 {
        self.all().into_iter().min().unwrap_or(self.script)
    }

    /// Whether `fd` is one of them.
    pub fn contains(&self, fd: i64) -> bool {
        self.all().iter().any(|&f| f as i64 == fd)
    }
}

/// The script as the first process of the trace read it, with what every
/// process needs to run it as that process would: the script's absolute
/// path (its directory goes first on `sys.path`), the name to show for it,
/// the `-I` directories made absolute, and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptImage {
    /// Empty when there is no script file, only `-e` programs.
    pub path: String,
    pub name: String,
    pub include_dirs: Vec<String>,
    /// The `-e` programs, run after the script.
    pub programs: Vec<String>,
    pub source: Vec<u8>,
}

impl ScriptImage {
    /// Reads the script the user named `script` (relative to the working
    /// directory), with its path and `include_dirs` made absolute, and
    /// keeps the `-e` `programs`; with programs only (`script` empty) there
    /// is no file to read, and the image is named `-e`.
    pub fn read(script: &str, include_dirs: &[String], programs: &[String]) -> Result<ScriptImage, String> {
        let absolute = |path: &str| {
            std::path::absolute(path).map(|p| p.to_string_lossy().into_owned()).map_err(|e| format!("{path}: {e}"))
        };
        let include_dirs = include_dirs.iter().map(|d| absolute(d)).collect::<Result<Vec<_>, _>>()?;
        let programs = programs.to_vec();
        if script.is_empty() {
            return Ok(ScriptImage { path: String::new(), name: "-e".into(), include_dirs, programs, source: Vec::new() });
        }
        let reason = |e: std::io::Error| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            };
            format!("{script}: cannot read script: {why}")
        };
        let path = absolute(script)?;
        if std::fs::metadata(&path).map_err(reason)?.is_dir() {
            return Err(format!("{script}: is a directory, not a script"));
        }
        let source = std::fs::read(&path).map_err(reason)?;
        Ok(ScriptImage { path, name: script.to_string(), include_dirs, programs, source })
    }
}

impl ScriptImage {
    /// A new memfd holding the image, close-on-exec. Written with `pwrite`,
    /// a system call DynamoRIO's loader leaves alone (a client's `write` is
    /// DynamoRIO's, which reports errors its own way).
    pub fn to_memfd(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::FromRawFd;
        let bytes = self.encode();
        // SAFETY: memfd_create with a constant name; the fd is ours alone.
        let fd = unsafe { libc::memfd_create(c"processtap-script".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just made and is owned by no one else.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let mut done = 0;
        while done < bytes.len() {
            // SAFETY: writes from a live buffer into our fd.
            let n = unsafe {
                libc::pwrite(std::os::fd::AsRawFd::as_raw_fd(&fd), bytes[done..].as_ptr() as *const _, bytes.len() - done, done as libc::off_t)
            };
            if n <= 0 {
                return Err(std::io::Error::last_os_error());
            }
            done += n as usize;
        }
        Ok(fd)
    }
}

/// What a [`ScriptImage`] starts with, for a check that the fd is one.
const IMAGE_MAGIC: &[u8] = b"processtap script image 1\0";

impl ScriptImage {
    /// The bytes written to the memfd: the magic, then NUL-ended fields
    /// (path, name, the number of include dirs, each dir), then the source.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = IMAGE_MAGIC.to_vec();
        let count = self.include_dirs.len().to_string();
        let programs = self.programs.len().to_string();
        let fields = [&self.path, &self.name, &count]
            .into_iter()
            .chain(&self.include_dirs)
            .chain([&programs])
            .chain(&self.programs);
        for field in fields {
            bytes.extend_from_slice(field.as_bytes());
            bytes.push(0);
        }
        bytes.extend_from_slice(&self.source);
        bytes
    }

    /// The image `bytes` hold, or `None` if they are not one.
    pub fn decode(bytes: &[u8]) -> Option<ScriptImage> {
        let mut rest = bytes.strip_prefix(IMAGE_MAGIC)?;
        let mut field = || -> Option<String> {
            let end = rest.iter().position(|&b| b == 0)?;
            let text = String::from_utf8(rest[..end].to_vec()).ok()?;
            rest = &rest[end + 1..];
            Some(text)
        };
        let path = field()?;
        let name = field()?;
        let count: usize = field()?.parse().ok()?;
        let include_dirs = (0..count).map(|_| field()).collect::<Option<Vec<_>>>()?;
        let programs: usize = field()?.parse().ok()?;
        let programs = (0..programs).map(|_| field()).collect::<Option<Vec<_>>>()?;
        Some(ScriptImage { path, name, include_dirs, programs, source: rest.to_vec() })
    }
}

/// One report on the report pipe. Each is a line, written with one
/// `write` of less than `PIPE_BUF` bytes, so reports of several processes
/// never mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Probe `index` (its place in the script's list) can match only what
    /// some module or the system-call table holds; `warning` is what to
    /// print if nothing ever does.
    MayNeverMatch { index: usize, warning: String },
    /// Probe `index` matched a function or system call in some process.
    Matched { index: usize },
}

/// Reports longer than this are cut, to stay below `PIPE_BUF` (4096).
const MAX_REPORT: usize = 1024;

impl Report {
    /// The report as the line written to the pipe.
    pub fn to_line(&self) -> String {
        let mut line = match self {
            Report::MayNeverMatch { index, warning } => format!("warn {index} {}", warning.replace('\n', " ")),
            Report::Matched { index } => format!("matched {index}"),
        };
        if line.len() > MAX_REPORT {
            let mut end = MAX_REPORT;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
        }
        line.push('\n');
        line
    }

    /// Parses a line written by [`Report::to_line`] (without its newline).
    pub fn parse(line: &str) -> Option<Report> {
        let (kind, rest) = line.split_once(' ')?;
        match kind {
            "warn" => {
                let (index, warning) = rest.split_once(' ')?;
                Some(Report::MayNeverMatch { index: index.parse().ok()?, warning: warning.to_string() })
            }
            "matched" => Some(Report::Matched { index: rest.parse().ok()? }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fds_sit_at_the_top_of_the_reserved_range() {
        let fds = InheritedFds::for_hard_limit(20000).unwrap();
        assert_eq!(fds.all(), [19999, 19998, 19997, 19996]);
        assert!(fds.lowest() as u64 >= 20000 - DYNAMORIO_RESERVED_FDS);
        assert!(fds.contains(19998) && !fds.contains(19995));
        assert_eq!(InheritedFds::for_hard_limit(64), None);
    }

    #[test]
    fn script_images_round_trip() {
        let image = ScriptImage {
            path: "/home/u/s.ptap".into(),
            name: "/dev/stdin".into(),
            include_dirs: vec!["/inc".into(), "/other inc".into()],
            programs: vec!["process_exit: print(1) ;; x = 2".into(), "y = 3\nz = 4".into()],
            source: b"print('hi')\n\0binary\xff".to_vec(),
        };
        assert_eq!(ScriptImage::decode(&image.encode()), Some(image));
        assert_eq!(ScriptImage::decode(b"print('not an image')"), None);
    }

    #[test]
    fn reports_round_trip() {
        for r in [
            Report::Matched { index: 3 },
            Report::MayNeverMatch { index: 0, warning: "probe m never matched: no function named 'mallo'".into() },
        ] {
            let line = r.to_line();
            assert!(line.ends_with('\n') && line.len() < 4096);
            assert_eq!(Report::parse(line.trim_end_matches('\n')), Some(r));
        }
        assert_eq!(Report::parse("bogus"), None);
    }
}
