//! Client start-up: options, the tracer's streams, runtime, banner, events.

use crate::{banner, environment, fd_guard, lifecycle, script_image, signal_masks, syscall_filter};
use ptap_options::{parse_client_args, Request, USAGE, VERSION};
use ptap_runtime::output;
use ptap_runtime::{StartConfig, StartError};
use std::time::Instant;

/// Exit status when the script or the command line cannot be used.
const EXIT_USAGE: i32 = 2;

pub fn start(id: dr_sys::ffi::client_id_t, args: &[String]) {
    let started = Instant::now();
    let options = match parse_client_args(args) {
        Ok(Request::Trace(options)) => options,
        Ok(Request::Help) => {
            output::write_all(2, format!("{USAGE}\n").as_bytes());
            dr_sys::process::exit_process(0);
        }
        Ok(Request::Version) => {
            output::write_all(2, format!("processtap {VERSION} (DynamoRIO 11.90)\n").as_bytes());
            dr_sys::process::exit_process(0);
        }
        Err(e) => fail_before_streams(&format!("{e} (see processtap --help)")),
    };
    if options.listing.is_some() {
        // Listing runs nothing: it is the launcher's, before any target.
        fail_before_streams("-l lists probe points without running the target: run processtap -l, not under drrun");
    }
    let hidden = environment::hide_dynamorio_variables();
    // The first program of the trace stops everything when the script
    // cannot run; a program a traced process executes must not fail for
    // the tracer's sake, and runs without probes instead.
    let first_program = hidden.as_ref().is_none_or(|h| !h.after_exec);
    let fds = match output::open(options.output.as_deref()) {
        Ok(fds) => fds,
        Err(e) => fail_before_streams(&e),
    };
    fd_guard::install();
    signal_masks::install();
    syscall_filter::install();
    if !first_program {
        if let Some(main) = dr_sys::module::main_module() {
            fd_guard::close_interpreter_left_open(&main.path);
        }
    }

    let client_path = dr_sys::process::client_path(id);
    let exe = dr_sys::module::main_module().map(|m| m.path).unwrap_or_default();
    let argv = target_argv();
    let script = match script_image::load(&fds, &options) {
        Ok(script) => script,
        Err(message) => return give_up(first_program, &message, &exe),
    };
    // The kernel mapped the executable before the script runs: its
    // symbols are there for symbol() and symbol_range() at the top level.
    if let Some(main) = dr_sys::module::main_module() {
        ptap_runtime::modules::add(&main.name, &main.path, main.start, main.end);
    }
    let config = StartConfig { client_path: &client_path, script: &script, exe: &exe, argv: &argv };
    let runtime = match ptap_runtime::start(&config) {
        Ok(runtime) => runtime,
        // The traceback is out already.
        Err(StartError::Script) => return give_up(first_program, "", &exe),
        Err(StartError::Tracer(message)) => return give_up(first_program, &message, &exe),
    };

    crate::match_reports::start(&runtime.probes, first_program);
    let banner = banner::Banner::new(&options);
    banner.header(&exe, &script.name, &runtime);
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
    match &hidden {
        Some(h) => banner.verbose(&format!("{} of DynamoRIO's variables taken out of the target's environment", h.entries)),
        None => banner.verbose("DynamoRIO's variables stay in the target's environment (its initial stack was not found)"),
    }
    lifecycle::install(runtime, banner);
}

/// The script cannot run in this process. The first program of the trace
/// ends with exit status 2 before it runs; any other goes on without probes.
fn give_up(first_program: bool, message: &str, exe: &str) {
    if first_program {
        if !message.is_empty() {
            output::message(&format!("processtap: {message}"));
        }
        dr_sys::process::exit_process(EXIT_USAGE);
    }
    let pid = dr_sys::process::pid();
    let why = if message.is_empty() { "the script failed".to_string() } else { message.to_string() };
    output::message(&format!("[!] {why}: process {pid} ({exe}) runs without probes"));
}

/// A one-line error before the tracer's streams are open (a command line
/// the client cannot use, which only the first program of a trace can
/// meet): to the process's stderr, which is drrun's or the launcher's.
fn fail_before_streams(message: &str) -> ! {
    output::write_all(2, format!("processtap: {message}\n").as_bytes());
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
