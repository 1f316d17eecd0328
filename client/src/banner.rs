//! The banner on the tracer's stderr, as the original ProcessTap printed it:
//! what is traced, with which probes, and each module as it loads.

use ptap_options::Options;
use ptap_runtime::output;
use ptap_runtime::probe::{Probe, ProbeKind};
use ptap_runtime::Runtime;

pub struct Banner {
    quiet: bool,
    verbose: bool,
}

impl Banner {
    pub fn new(options: &Options) -> Banner {
        Banner { quiet: options.quiet, verbose: options.verbose }
    }

    fn line(&self, text: &str) {
        if !self.quiet {
            output::message(text);
        }
    }

    /// A line printed only with `-v`.
    pub fn verbose(&self, text: &str) {
        if self.verbose {
            self.line(&format!("[*] {text}"));
        }
    }

    /// The executable, the script, the system calls and headers it knows
    /// of, and its probes, grouped by kind.
    pub fn header(&self, exe: &str, script: &str, runtime: &Runtime) {
        // The architecture: the launcher chose this client by the
        // executable's ELF class.
        let arch = if cfg!(target_arch = "x86_64") { "x86-64" } else { "32-bit x86" };
        self.line(&format!("[*] Executable file: {exe} ({arch})"));
        self.line(&format!("[*] PTAP file: {script}"));
        if let Some(count) = runtime.syscall_count {
            self.line(&format!("[*] Loaded {count} system calls"));
        }
        for (header, functions) in &runtime.headers {
            self.line(&format!("[*] Parsing '{header}' ({functions} functions)"));
        }
        let probes = &runtime.probes;
        self.line("[*] Loaded probes:");
        for kind in ProbeKind::ALL {
            let of_kind: Vec<&Probe> = probes.iter().filter(|p| p.kind == kind).collect();
            if of_kind.is_empty() {
                continue;
            }
            self.line(&format!("    [*] {}", kind.banner_name()));
            for p in of_kind {
                let once = if p.once { " once" } else { "" };
                self.line(&format!("        [+] {}{once} {}", p.predicate_text, p.name));
            }
        }
    }

    /// One module as it loads.
    pub fn module(&self, path: &str, start: usize, end: usize) {
        let width = 2 * std::mem::size_of::<usize>();
        self.line(&format!("[*] Parsing '{path}' [{start:0width$x}-{end:0width$x}]"));
    }

    /// The tracer's own messages (handler error counts); shown even with -q.
    pub fn message(&self, text: &str) {
        output::message(text);
    }
}
