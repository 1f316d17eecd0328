//! ProcessTap's options: one definition, shared by the `processtap` launcher
//! and by `libptap.so`, which receives them as DynamoRIO client arguments.
//!
//! The launcher is called as `processtap [OPTIONS] SCRIPT [--] COMMAND ...`
//! and hands `[OPTIONS] SCRIPT` to the client in the same form that
//! `drrun -c libptap.so [OPTIONS] SCRIPT [OPTIONS] -- COMMAND ...` does, so
//! the two parsers ([`parse_launcher_args`], [`parse_client_args`]) share
//! one definition of each option; [`Options::to_client_args`] is their
//! inverse. [`inherited`] is the other thing both sides agree on: what every
//! traced process inherits from the first (the tracer's streams, the script).

pub mod layout;
pub mod inherited;
pub mod tracing;

use std::fmt;

/// The version printed by `--version` and in the banner with `-v`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The usage text shared by `--help` in the launcher and the client.
pub const USAGE: &str = "\
usage: processtap [OPTIONS] SCRIPT.ptap [--] COMMAND [ARGS...]
       processtap [OPTIONS] -e PROGRAM [-e PROGRAM...] [--] COMMAND [ARGS...]
       processtap [OPTIONS] -t syscalls[=NAME,...] [--] COMMAND [ARGS...]
       processtap [OPTIONS] -t functions=GLOB[,GLOB...] [--] COMMAND [ARGS...]
       processtap -l [PATTERN] [-- COMMAND]
       processtap SCRIPT.ptap -l [PATTERN] -- COMMAND
       drrun -c libptap.so [OPTIONS] SCRIPT.ptap -- COMMAND [ARGS...]

Runs COMMAND under DynamoRIO with the probes of SCRIPT.ptap, a Python 3
script whose handlers run inside the target, of the one-liner PROGRAMs, or
of -t, which prints each system call as strace does, or each function
call as ltrace does.

options:
  -o FILE     write what handlers print to FILE instead of stdout
  -q          quiet: no banner on stderr
  -v          verbose: more detail in the banner
  -I DIR      add DIR to the header search path of include()
  -e PROGRAM  probes on the command line: clauses KIND(PREDICATE): STATEMENTS,
              one per line or separated by ' ;; ', and plain Python lines;
              after SCRIPT.ptap when both are given, e.g.
              -e 'syscall_entry(syscall_name == \"openat\"): print(ctx.args[1])'
  -t syscalls[=NAME,...]
              print every system call (or those named) as strace does, on
              stderr or to the -o FILE, with no banner (unless -v); with a
              script or -e, beside their probes
  -t functions=GLOB[,GLOB...]
              print each call of the functions named (malloc, 'str*',
              'libc.so.6:str*') as ltrace does, by the C library's
              prototypes
  -s N        with -t: print at most N bytes of each string (default 32)
  -T          with -t: the time spent in each call, <seconds>
  -tt         with -t: the wall-clock time of each call, HH:MM:SS.microseconds
  -c          with -t: a table of calls, errors and time per system call at
              each process's exit, instead of the lines
  --json      -t's calls, and the aggregations printed at exit, as JSON
              lines (emit(**fields) in a script writes them anyway)
  -l [PATTERN]
              list, without running it, the functions of COMMAND and of
              the libraries it would load, and the system calls, that
              match PATTERN ('malloc*', 'libc.so.6:str*', 'syscall:open*');
              with a script or -e, what each probe would match
  --help      show this help and exit
  --version   show the version and exit

The exit status is COMMAND's own (128+N if it died of signal N), or 2 when
the script fails to load or the command line is wrong.";

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Trace a command with a script.
    Trace(Options),
    Help,
    Version,
}

/// The options that shape one tracing run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `-o FILE`: where handler output goes; `None` is the tracer's stdout.
    pub output: Option<String>,
    /// `-q`: no banner.
    pub quiet: bool,
    /// `-v`: a more detailed banner.
    pub verbose: bool,
    /// `-I DIR`, in the order given.
    pub include_dirs: Vec<String>,
    /// The script, as the user named it; empty when only `-e` programs
    /// give the probes.
    pub script: String,
    /// `-e PROGRAM`, in the order given; after parsing, the program of
    /// `-t` last (see [`tracing`]).
    pub programs: Vec<String>,
    /// `-t` and the options that shape it, while parsing.
    tracing: tracing::Tracing,
    /// `-l [PATTERN]`: list probe points instead of tracing.
    pub listing: Option<Listing>,
}

/// What `-l` asked to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The glob, if one was given: `malloc*`, `libc.so.6:str*`, `syscall:open*`.
    pub pattern: Option<String>,
}

/// A command line that cannot be used, with a message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Parses the launcher's `[OPTIONS] SCRIPT [OPTIONS --] [--] COMMAND...` and
/// returns the request and the index of the command's first argument.
///
/// Options may also follow the script when a `--` ends them, which is what
/// the `#!` form gives: the kernel runs `./s.ptap -q -- ls` as
/// `processtap ./s.ptap -q -- ls`. A word after the script that is not an
/// option starts the command (`processtap s.ptap grep -- -x f` runs
/// `grep -- -x f`).
pub fn parse_launcher_args(args: &[String]) -> Result<(Request, usize), UsageError> {
    let mut options = Options::default();
    let after_script = match parse_leading_options(args, &mut options)? {
        Leading::Script(after) => after,
        Leading::Help => return Ok((Request::Help, args.len())),
        Leading::Version => return Ok((Request::Version, args.len())),
    };
    let rest = &args[after_script..];
    let command_start = match rest.first().map(String::as_str) {
        Some("--") => after_script + 1,
        Some(word) if word.starts_with('-') && word.len() > 1 => {
            let Some(dashes) = rest.iter().position(|a| a == "--") else {
                return Err(UsageError(format!(
                    "option {word} after the script: end the options with '--' before the command"
                )));
            };
            parse_options(&rest[..dashes], &mut options)?;
            after_script + dashes + 1
        }
        _ => after_script,
    };
    // The launcher's pid: the first traced process is its child.
    options.finish_tracing(std::process::id())?;
    Ok((Request::Trace(options), command_start))
}

/// Parses the client's `[OPTIONS] SCRIPT [OPTIONS]`: the launcher passes
/// options before the script, `drrun -c libptap.so SCRIPT -q -- ...`
/// after it.
pub fn parse_client_args(args: &[String]) -> Result<Request, UsageError> {
    let mut options = Options::default();
    match parse_leading_options(args, &mut options)? {
        Leading::Script(after) => parse_options(&args[after..], &mut options)?,
        Leading::Help => return Ok(Request::Help),
        Leading::Version => return Ok(Request::Version),
    }
    // Under drrun the first traced process parses -t itself: its parent
    // is the one whose children are the first processes.
    options.finish_tracing(std::os::unix::process::parent_id())?;
    Ok(Request::Trace(options))
}

/// What the arguments before the script asked for.
enum Leading {
    /// A script, at the index before this one.
    Script(usize),
    Help,
    Version,
}

/// Parses options up to the script, which it stores.
fn parse_leading_options(args: &[String], options: &mut Options) -> Result<Leading, UsageError> {
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        match arg {
            "--help" | "-h" => return Ok(Leading::Help),
            "--version" => return Ok(Leading::Version),
            // With -e programs or -t and no script: the command follows.
        // (--json alone gives no probes: a script is still needed.)
            "--" if options.has_probes() => return Ok(Leading::Script(i)),
            "--" => return Err(UsageError("no script given before '--'".into())),
            _ if arg.starts_with('-') && arg.len() > 1 => i += parse_option(args, i, options)?,
            _ if options.has_probes() => return Ok(Leading::Script(i)),
            _ => {
                options.script = arg.to_string();
                return Ok(Leading::Script(i + 1));
            }
        }
    }
    if options.has_probes() {
        return Ok(Leading::Script(args.len()));
    }
    Err(UsageError("no script given".into()))
}

/// Parses `args`, which must all be options.
fn parse_options(args: &[String], options: &mut Options) -> Result<(), UsageError> {
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if !arg.starts_with('-') || arg == "-" {
            return Err(UsageError(format!("unexpected argument {arg} among the options")));
        }
        if matches!(arg, "--help" | "-h" | "--version") {
            return Err(UsageError(format!("{arg} must come before the script")));
        }
        i += parse_option(args, i, options)?;
    }
    Ok(())
}

/// Parses the option at `args[i]`; returns how many arguments it took.
fn parse_option(args: &[String], i: usize, options: &mut Options) -> Result<usize, UsageError> {
    let arg = args[i].as_str();
    let value = || {
        args.get(i + 1).cloned().ok_or_else(|| UsageError(format!("option {arg} needs an argument")))
    };
    match arg {
        "-q" => options.quiet = true,
        "-v" => options.verbose = true,
        "-o" => {
            options.output = Some(value()?);
            return Ok(2);
        }
        "-I" => {
            options.include_dirs.push(value()?);
            return Ok(2);
        }
        "-e" => {
            options.programs.push(value()?);
            return Ok(2);
        }
        "-t" => {
            options.tracing.add_spec(&value()?)?;
            return Ok(2);
        }
        "-s" => {
            options.tracing.set_string_size(&value()?)?;
            return Ok(2);
        }
        "-T" => options.tracing.durations = true,
        "-tt" => options.tracing.timestamps = true,
        "-c" => options.tracing.summary = true,
        "--json" => options.tracing.json = true,
        "-l" => {
            // The pattern is optional: a word that is not an option or '--'.
            let pattern = args.get(i + 1).filter(|a| *a != "--" && !a.starts_with('-')).cloned();
            let taken = 1 + pattern.is_some() as usize;
            options.listing = Some(Listing { pattern });
            return Ok(taken);
        }
        _ if arg.starts_with("-o") => options.output = Some(arg[2..].to_string()),
        _ if arg.starts_with("-I") => options.include_dirs.push(arg[2..].to_string()),
        _ => return Err(UsageError(format!("unknown option {arg}"))),
    }
    Ok(1)
}

impl Options {
    /// Whether the command line gives probes without a script (`-e`, `-t`).
    fn has_probes(&self) -> bool {
        !self.programs.is_empty() || self.tracing.is_on() || self.listing.is_some()
    }

    /// Turns `-t` and its options into the last program; `first_parent`
    /// is the pid whose children are the first traced processes.
    fn finish_tracing(&mut self, first_parent: u32) -> Result<(), UsageError> {
        let tracing = std::mem::take(&mut self.tracing);
        if let Some(program) = tracing.program(self.output.is_some(), first_parent)? {
            self.programs.push(program);
            // strace's lines alone, as strace prints them; -v brings the
            // banner back.
            self.quiet |= !self.verbose;
        }
        Ok(())
    }

    /// The client arguments that [`parse_client_args`] turns back into
    /// these options: `[OPTIONS] SCRIPT [-e PROGRAM]...`.
    pub fn to_client_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(out) = &self.output {
            args.extend(["-o".to_string(), out.clone()]);
        }
        if self.quiet {
            args.push("-q".into());
        }
        if self.verbose {
            args.push("-v".into());
        }
        for dir in &self.include_dirs {
            args.extend(["-I".to_string(), dir.clone()]);
        }
        if !self.script.is_empty() {
            args.push(self.script.clone());
        }
        // After the script, as on the launcher's command line. The programs
        // themselves travel in the script image (DynamoRIO cannot pass
        // their ';'): the client sees that there are some.
        for _ in &self.programs {
            args.extend(["-e".to_string(), "(in the script image)".to_string()]);
        }
        args
    }
}

/// Joins client arguments into the `path;id;options` value of DynamoRIO's
/// `-client_lib` option, quoted the way DynamoRIO's own `drrun` quotes it.
pub fn client_lib_option(client_path: &str, args: &[String]) -> Result<String, UsageError> {
    let mut opts = Vec::new();
    for arg in args {
        if arg.contains(';') {
            return Err(UsageError(format!("DynamoRIO cannot pass ';' to a client: {arg}")));
        }
        if arg.contains('"') {
            return Err(UsageError(format!("DynamoRIO cannot pass '\"' to a client: {arg}")));
        }
        if arg.contains(char::is_whitespace) || arg.is_empty() {
            opts.push(format!("\"{arg}\""));
        } else {
            opts.push(arg.clone());
        }
    }
    let value = format!("{client_path};0;{}", opts.join(" "));
    let delim = ['\'', '`']
        .into_iter()
        .find(|d| !value.contains(*d))
        .ok_or_else(|| UsageError("arguments hold both ' and `, which DynamoRIO cannot pass".into()))?;
    Ok(format!("{delim}{value}{delim}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn launcher(v: &[&str]) -> (Options, Vec<String>) {
        let args = strings(v);
        let (req, rest) = parse_launcher_args(&args).unwrap();
        let Request::Trace(o) = req else { panic!("{req:?}") };
        (o, args[rest..].to_vec())
    }

    #[test]
    fn parses_options_script_and_command() {
        let (o, command) = launcher(&["-q", "-o", "out.txt", "-I", "inc", "-Iinc2", "s.ptap", "--", "ls", "-l"]);
        assert_eq!(o.output.as_deref(), Some("out.txt"));
        assert!(o.quiet && !o.verbose);
        assert_eq!(o.include_dirs, ["inc", "inc2"]);
        assert_eq!(o.script, "s.ptap");
        assert_eq!(command, ["ls", "-l"]);
        assert_eq!(launcher(&["s.ptap", "ls", "-l"]).1, ["ls", "-l"]);
    }

    #[test]
    fn options_may_follow_the_script_before_dashes() {
        // What `./s.ptap -q -o f -- cmd` gives through `#!/usr/bin/env processtap`.
        let (o, command) = launcher(&["./s.ptap", "-q", "-o", "f", "--", "cmd", "-x"]);
        assert!(o.quiet);
        assert_eq!(o.output.as_deref(), Some("f"));
        assert_eq!(command, ["cmd", "-x"]);
        // A command's own `--` is the command's.
        assert_eq!(launcher(&["s.ptap", "grep", "--", "-x", "f"]).1, ["grep", "--", "-x", "f"]);
        let err = parse_launcher_args(&strings(&["s.ptap", "-q", "ls"])).unwrap_err();
        assert!(err.0.contains("end the options with '--'"), "{err}");
        let err = parse_launcher_args(&strings(&["s.ptap", "-q", "oops", "--", "ls"])).unwrap_err();
        assert!(err.0.contains("unexpected argument oops"), "{err}");
    }

    #[test]
    fn client_args_round_trip() {
        let o = Options {
            output: Some("a b".into()),
            quiet: true,
            verbose: true,
            include_dirs: vec!["x".into()],
            script: "t.ptap".into(),
            programs: Vec::new(),
            tracing: Default::default(),
            listing: None,
        };
        assert_eq!(parse_client_args(&o.to_client_args()).unwrap(), Request::Trace(o.clone()));
        // drrun's form: options after the script.
        let Request::Trace(after) = parse_client_args(&strings(&["s.ptap", "-q", "-o", "f"])).unwrap() else { panic!() };
        assert!(after.quiet && after.output.as_deref() == Some("f") && after.script == "s.ptap");
    }

    #[test]
    fn one_liner_programs_with_or_without_a_script() {
        let (o, command) = launcher(&["-e", "process_exit: print(1)", "--", "ls", "-l"]);
        assert_eq!((o.script.as_str(), o.programs.as_slice(), command.as_slice()), ("", &["process_exit: print(1)".to_string()][..], &strings(&["ls", "-l"])[..]));
        // Without '--': the first word after the options is the command.
        let (o, command) = launcher(&["-q", "-e", "a", "-e", "b", "cat", "f"]);
        assert_eq!((o.quiet, o.programs.len(), command), (true, 2, strings(&["cat", "f"])));
        // A script first, then programs.
        let (o, command) = launcher(&["s.ptap", "-e", "x = 1", "--", "ls"]);
        assert_eq!((o.script.as_str(), o.programs.len(), command), ("s.ptap", 1, strings(&["ls"])));
        // The client is told there are programs (they travel in the image).
        let Request::Trace(client) = parse_client_args(&o.to_client_args()).unwrap() else { panic!() };
        assert_eq!((client.script.as_str(), client.programs.len()), ("s.ptap", 1));
        let Request::Trace(client) = parse_client_args(&launcher(&["-e", "x", "--", "ls"]).0.to_client_args()).unwrap() else { panic!() };
        assert_eq!((client.script.as_str(), client.programs.len()), ("", 1));
    }

    #[test]
    fn listing_takes_an_optional_pattern() {
        let (o, command) = launcher(&["-l", "malloc*", "--", "ls"]);
        assert_eq!((o.listing.unwrap().pattern.as_deref(), command), (Some("malloc*"), strings(&["ls"])));
        let (o, command) = launcher(&["-l", "--", "ls"]);
        assert_eq!((o.listing.unwrap().pattern, command), (None, strings(&["ls"])));
        let (o, command) = launcher(&["-l", "syscall:open*"]);
        assert!(o.listing.is_some() && command.is_empty());
        let (o, command) = launcher(&["s.ptap", "-l", "--", "ls"]);
        assert_eq!((o.script.as_str(), o.listing.unwrap().pattern, command), ("s.ptap", None, strings(&["ls"])));
    }

    #[test]
    fn rejects_bad_command_lines() {
        let err = |v: &[&str]| parse_launcher_args(&strings(v)).unwrap_err().0;
        assert!(err(&["-x", "s.ptap"]).contains("unknown option -x"));
        assert!(err(&["-o"]).contains("needs an argument"));
        assert!(err(&["-q"]).contains("no script"));
        assert!(err(&["--", "ls"]).contains("no script given before '--'"));
        assert!(err(&["-e"]).contains("option -e needs an argument"));
        assert_eq!(parse_launcher_args(&strings(&["--help", "s"])).unwrap().0, Request::Help);
        assert_eq!(parse_client_args(&strings(&["--version"])).unwrap(), Request::Version);
    }

    #[test]
    fn quotes_client_lib_like_drrun() {
        let v = client_lib_option("/p/libptap.so", &strings(&["-o", "my out", "s.ptap"])).unwrap();
        assert_eq!(v, "'/p/libptap.so;0;-o \"my out\" s.ptap'");
        assert!(client_lib_option("/p", &strings(&["a;b"])).is_err());
    }
}
