//! ProcessTap's options: one definition, shared by the `processtap` launcher
//! and by `libptap.so`, which receives them as DynamoRIO client arguments.
//!
//! The launcher is called as `processtap [OPTIONS] SCRIPT [--] COMMAND ...`
//! and hands `[OPTIONS] SCRIPT` to the client in the same form that
//! `drrun -c libptap.so [OPTIONS] SCRIPT -- COMMAND ...` does, so one parser
//! ([`parse_tracer_args`]) serves both; [`Options::to_client_args`] is its
//! inverse.

pub mod layout;

use std::fmt;

/// The version printed by `--version` and in the banner with `-v`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The usage text shared by `--help` in the launcher and the client.
pub const USAGE: &str = "\
usage: processtap [OPTIONS] SCRIPT.ptap [--] COMMAND [ARGS...]
       drrun -c libptap.so [OPTIONS] SCRIPT.ptap -- COMMAND [ARGS...]

Runs COMMAND under DynamoRIO with the probes of SCRIPT.ptap, a Python 3
script whose handlers run inside the target.

options:
  -o FILE     write what handlers print to FILE instead of stdout
  -q          quiet: no banner on stderr
  -v          verbose: more detail in the banner
  -I DIR      add DIR to the header search path of include()
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
    /// The script, as the user named it.
    pub script: String,
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

/// Parses `[OPTIONS] SCRIPT [REST...]` and returns the request and the
/// index of the first argument after the script (the command, for the
/// launcher; nothing, for the client).
pub fn parse_tracer_args(args: &[String]) -> Result<(Request, usize), UsageError> {
    let mut options = Options::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        match arg {
            "--help" | "-h" => return Ok((Request::Help, i + 1)),
            "--version" => return Ok((Request::Version, i + 1)),
            "-q" => options.quiet = true,
            "-v" => options.verbose = true,
            "-o" | "-I" => {
                let value = args
                    .get(i + 1)
                    .ok_or_else(|| UsageError(format!("option {arg} needs an argument")))?
                    .clone();
                if arg == "-o" {
                    options.output = Some(value);
                } else {
                    options.include_dirs.push(value);
                }
                i += 1;
            }
            "--" => return Err(UsageError("no script given before '--'".into())),
            _ if arg.starts_with("-o") && arg.len() > 2 => options.output = Some(arg[2..].to_string()),
            _ if arg.starts_with("-I") && arg.len() > 2 => options.include_dirs.push(arg[2..].to_string()),
            _ if arg.starts_with('-') && arg.len() > 1 => {
                return Err(UsageError(format!("unknown option {arg}")))
            }
            _ => {
                options.script = arg.to_string();
                return Ok((Request::Trace(options), i + 1));
            }
        }
        i += 1;
    }
    Err(UsageError("no script given".into()))
}

impl Options {
    /// The client arguments that [`parse_tracer_args`] turns back into
    /// these options: `[OPTIONS] SCRIPT`.
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
        args.push(self.script.clone());
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

    #[test]
    fn parses_options_script_and_command() {
        let args = strings(&["-q", "-o", "out.txt", "-I", "inc", "-Iinc2", "s.ptap", "--", "ls", "-l"]);
        let (req, rest) = parse_tracer_args(&args).unwrap();
        let Request::Trace(o) = req else { panic!() };
        assert_eq!(o.output.as_deref(), Some("out.txt"));
        assert!(o.quiet && !o.verbose);
        assert_eq!(o.include_dirs, ["inc", "inc2"]);
        assert_eq!(o.script, "s.ptap");
        assert_eq!(&args[rest..], ["--", "ls", "-l"]);
    }

    #[test]
    fn client_args_round_trip() {
        let o = Options { output: Some("a b".into()), quiet: true, verbose: true, include_dirs: vec!["x".into()], script: "t.ptap".into() };
        let (req, rest) = parse_tracer_args(&o.to_client_args()).unwrap();
        assert_eq!(req, Request::Trace(o.clone()));
        assert_eq!(rest, o.to_client_args().len());
    }

    #[test]
    fn rejects_bad_command_lines() {
        assert!(parse_tracer_args(&strings(&["-x", "s.ptap"])).unwrap_err().0.contains("unknown option -x"));
        assert!(parse_tracer_args(&strings(&["-o"])).unwrap_err().0.contains("needs an argument"));
        assert!(parse_tracer_args(&strings(&["-q"])).unwrap_err().0.contains("no script"));
        assert_eq!(parse_tracer_args(&strings(&["--help", "s"])).unwrap().0, Request::Help);
    }

    #[test]
    fn quotes_client_lib_like_drrun() {
        let v = client_lib_option("/p/libptap.so", &strings(&["-o", "my out", "s.ptap"])).unwrap();
        assert_eq!(v, "'/p/libptap.so;0;-o \"my out\" s.ptap'");
        assert!(client_lib_option("/p", &strings(&["a;b"])).is_err());
    }
}
