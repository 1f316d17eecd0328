//! `-t`: tracing without a script, as strace (system calls) and ltrace
//! (functions) do, and the options that shape it (`-s`, `-T`, `-tt`, `-c`).
//!
//! They become one more `-e` program, which calls `ptap.tracing.start`:
//! the probes and the printing are Python's (`ptap/tracing.py`,
//! `ptap/strace.py`), like any script's, and travel to every process in
//! the script image with the other programs.

use crate::UsageError;

/// The headers whose prototypes `-t functions=...` decodes calls by.
const FUNCTION_HEADERS: [&str; 4] = ["stdlib.h", "string.h", "stdio.h", "unistd.h"];

/// What `-t` and its options asked for, while the command line is parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracing {
    /// `-t syscalls`: every system call (`Some(empty)`), or those named.
    syscalls: Option<Vec<String>>,
    /// `-t syscalls` without names was given.
    all_syscalls: bool,
    /// `-t functions=GLOB,...`: the globs, `MODULE:GLOB` or `GLOB`.
    functions: Vec<String>,
    /// `-s N`.
    string_size: Option<usize>,
    /// `-T`.
    pub durations: bool,
    /// `-tt`.
    pub timestamps: bool,
    /// `-c`.
    pub summary: bool,
    /// `--json`: `-t`'s calls and the aggregations as JSON lines.
    pub json: bool,
}

impl Tracing {
    /// Whether `-t` was given.
    pub fn is_on(&self) -> bool {
        self.syscalls.is_some() || !self.functions.is_empty()
    }

    /// Takes one `-t SPEC`: `syscalls`, `syscalls=NAME[,NAME...]` or
    /// `functions=GLOB[,GLOB...]`.
    pub fn add_spec(&mut self, spec: &str) -> Result<(), UsageError> {
        let (class, names) = match spec.split_once('=') {
            Some((class, names)) => (class, Some(names)),
            None => (spec, None),
        };
        match (class, names) {
            ("syscalls", _) => {}
            ("functions", Some(globs)) => return self.add_functions(spec, globs),
            _ => return Err(UsageError(format!("-t {spec}: expected syscalls, syscalls=NAME,... or functions=GLOB,..."))),
        }
        let list = self.syscalls.get_or_insert_with(Vec::new);
        match names {
            None => self.all_syscalls = true,
            Some(names) => {
                for name in names.split(',') {
                    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                        return Err(UsageError(format!("-t {spec}: {name:?} is not a system call's name")));
                    }
                    if !list.iter().any(|n| n == name) {
                        list.push(name.to_string());
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes the globs of `-t functions=GLOB,...`: `malloc`, `str*`,
    /// `libc.so.6:str*`.
    fn add_functions(&mut self, spec: &str, globs: &str) -> Result<(), UsageError> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_*?[]!.:+-@".contains(&b);
        for glob in globs.split(',') {
            if glob.is_empty() || !glob.bytes().all(allowed) || glob.ends_with(':') {
                return Err(UsageError(format!("-t {spec}: {glob:?} is not a function's name or glob")));
            }
            if !self.functions.iter().any(|g| g == glob) {
                self.functions.push(glob.to_string());
            }
        }
        Ok(())
    }

    /// Takes `-s N`.
    pub fn set_string_size(&mut self, value: &str) -> Result<(), UsageError> {
        match value.parse::<usize>() {
            Ok(n) => {
                self.string_size = Some(n);
                Ok(())
            }
            Err(_) => Err(UsageError(format!("-s {value}: expected a number of bytes"))),
        }
    }

    /// The program that does what was asked, if `-t` was given.
    /// `to_output`: `-o` was given, and the lines go there rather than to
    /// the tracer's stderr; `first_parent`: the pid whose children are the
    /// first traced processes (they print no `[pid N]` before their first
    /// child or thread, as strace does).
    pub fn program(&self, to_output: bool, first_parent: u32) -> Result<Option<String>, UsageError> {
        // --json alone: the aggregations and emit() are JSON's anyway.
        let json = if self.json { "import ptap.jsonlines ;; ptap.jsonlines.enable() ;; " } else { "" };
        if !self.is_on() {
            let stray = [(self.string_size.is_some(), "-s"), (self.durations, "-T"), (self.timestamps, "-tt"), (self.summary, "-c")];
            if let Some((_, option)) = stray.iter().find(|(given, _)| *given) {
                return Err(UsageError(format!("{option} shapes what -t prints: give -t syscalls or -t functions=... too")));
            }
            return Ok(self.json.then(|| json.trim_end_matches(" ;; ").to_string()));
        }
        // Names and globs hold no quote (add_spec): quoted as they are.
        let quoted = |names: &[String]| format!("[{}]", names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", "));
        let syscalls = match &self.syscalls {
            None => "[]".to_string(),
            Some(_) if self.all_syscalls => "None".to_string(),
            Some(names) => quoted(names),
        };
        // The prototypes of the C library functions people trace, as
        // ltrace knows them; include() calls the launcher prepares.
        let headers = if self.functions.is_empty() {
            String::new()
        } else {
            FUNCTION_HEADERS.iter().map(|h| format!("include('{h}') ;; ")).collect()
        };
        let python_bool = |b: bool| if b { "True" } else { "False" };
        Ok(Some(format!(
            "{json}import ptap.tracing ;; {headers}ptap.tracing.start(syscalls={syscalls}, functions={}, string_size={}, durations={}, timestamps={}, summary={}, to_output={}, first_parent={first_parent}, json={})",
            quoted(&self.functions),
            self.string_size.unwrap_or(32),
            python_bool(self.durations),
            python_bool(self.timestamps),
            python_bool(self.summary),
            python_bool(to_output),
            python_bool(self.json),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_become_one_program() {
        let mut t = Tracing::default();
        t.add_spec("syscalls=openat,read").unwrap();
        t.add_spec("syscalls=read,close").unwrap();
        t.durations = true;
        t.set_string_size("64").unwrap();
        let program = t.program(false, 7).unwrap().unwrap();
        assert_eq!(
            program,
            "import ptap.tracing ;; ptap.tracing.start(syscalls=['openat', 'read', 'close'], functions=[], string_size=64, durations=True, timestamps=False, summary=False, to_output=False, first_parent=7, json=False)"
        );
        t.add_spec("syscalls").unwrap();
        assert!(t.program(true, 7).unwrap().unwrap().contains("syscalls=None, functions=[], string_size=64"));
        let mut f = Tracing::default();
        f.add_spec("functions=malloc,libc.so.6:str*").unwrap();
        let program = f.program(false, 7).unwrap().unwrap();
        assert!(program.starts_with("import ptap.tracing ;; include('stdlib.h') ;; "), "{program}");
        assert!(program.contains("start(syscalls=[], functions=['malloc', 'libc.so.6:str*'], string_size=32"), "{program}");
    }

    #[test]
    fn bad_specs_and_stray_options_are_usage_errors() {
        let mut t = Tracing::default();
        assert!(t.add_spec("sycalls").unwrap_err().0.contains("expected syscalls"));
        assert!(t.add_spec("functions").unwrap_err().0.contains("functions=GLOB"));
        assert!(t.add_spec("functions=mal'loc").unwrap_err().0.contains("is not a function's name or glob"));
        assert!(t.add_spec("syscalls=open'at").unwrap_err().0.contains("is not a system call's name"));
        assert!(t.add_spec("syscalls=").unwrap_err().0.contains("is not a system call's name"));
        assert!(t.set_string_size("many").is_err());
        let mut stray = Tracing { summary: true, ..Default::default() };
        assert!(stray.program(false, 1).unwrap_err().0.contains("-c shapes what -t prints"));
        assert!(!stray.is_on());
        stray.summary = false;
        assert_eq!(stray.program(false, 1).unwrap(), None);
        stray.json = true;
        assert_eq!(stray.program(false, 1).unwrap().as_deref(), Some("import ptap.jsonlines ;; ptap.jsonlines.enable()"));
    }
}
