//! Client start-up: options, runtime, banner, events.

use crate::{banner, environment, lifecycle};
use ptap_options::{parse_tracer_args, Request, USAGE, VERSION};
use ptap_runtime::output::write_all;
use ptap_runtime::{StartConfig, StartError};
use std::time::Instant;

/// Exit status when the script or the command line cannot be used.
const EXIT_USAGE: i32 = 2;

pub fn start(id: dr_sys::ffi::client_id_t, args: &[String]) {
    let started = Instant::now();
    let options = match parse_tracer_args(args) {
        Ok((Request::Trace(options), _)) => options,
        Ok((Request::Help, _)) => {
            write_all(2, format!("{USAGE}\n").as_bytes());
            dr_sys::process::exit_process(0);
        }
        Ok((Request::Version, _)) => {
            write_all(2, format!("processtap {VERSION} (DynamoRIO 11.90)\n").as_bytes());
            dr_sys::process::exit_process(0);
        }
        Err(e) => fail(&format!("{e} (see processtap --help)")),
    };
    if let Err(e) = std::fs::File::open(&options.script) {
        fail(&format!("{}: cannot read script: {e}", options.script));
    }

    let env_hidden = environment::hide_dynamorio_variables();
    let client_path = dr_sys::process::client_path(id);
    let exe = dr_sys::module::main_module().map(|m| m.path).unwrap_or_default();
    let argv = target_argv();
    let config = StartConfig {
        client_path: &client_path,
        script: &options.script,
        output: options.output.as_deref(),
        include_dirs: &options.include_dirs,
        exe: &exe,
        argv: &argv,
    };
    let runtime = match ptap_runtime::start(&config) {
        Ok(runtime) => runtime,
        Err(StartError::Script) => dr_sys::process::exit_process(EXIT_USAGE),
        Err(StartError::Tracer(message)) => fail(&message),
    };

    let unsupported: Vec<String> = runtime
        .probes
        .iter()
        .filter(|p| !lifecycle::handles(p.kind) && !crate::functions::handles(p.kind) && !crate::syscalls::handles(p.kind))
        .map(|p| format!("{} ({})", p.kind.name(), p.name))
        .collect();
    if !unsupported.is_empty() {
        fail(&format!("this version cannot yet run these probes: {}", unsupported.join(", ")));
    }

    let banner = banner::Banner::new(runtime.streams, &options);
    banner.header(&exe, &options.script, &runtime);
    banner.verbose(&format!(
        "ProcessTap {VERSION} ({}), DynamoRIO 11.90, CPython {}; {} private libraries mended ({} versioned imports, {} overrides); started in {} ms (mends {:.0}, Python {:.0}, script {:.0})",
        client_path,
        runtime.python_version,
        runtime.mends.libraries,
        runtime.mends.stats.versioned,
        runtime.mends.stats.overridden,
        started.elapsed().as_millis(),
        runtime.timings.mends,
        runtime.timings.python,
        runtime.timings.script,
    ));
    if !env_hidden {
        banner.verbose("DynamoRIO's variables stay in the target's environment (not started by the processtap launcher)");
    }
    lifecycle::install(runtime, banner);
}

/// A one-line error before the target runs: exit status 2.
fn fail(message: &str) -> ! {
    write_all(2, format!("processtap: {message}\n").as_bytes());
    dr_sys::process::exit_process(EXIT_USAGE)
}

/// The target's argv: under early injection the process was started with
/// the command's own argv, which /proc/self/cmdline shows.
fn target_argv() -> Vec<String> {
    let cmdline = std::fs::read("/proc/self/cmdline").unwrap_or_default();
    // Each argument ends with a NUL, empty ones included.
    let args = cmdline.strip_suffix(&[0]).unwrap_or(&cmdline);
    if args.is_empty() {
        return Vec::new();
    }
    args.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}
