//! `dr-sys`: ProcessTap's layer over the `dynamorio-sys` bindings.
//!
//! This crate is the only place that names raw DynamoRIO functions. It
//! re-exports the bindings as [`ffi`] for the few callers that must build
//! instruction lists, and wraps the calls the rest of ProcessTap makes in
//! small safe functions: the process and thread we run in ([`process`]),
//! DynamoRIO's private loader ([`loader`]), memory DynamoRIO hands out
//! ([`memory`]), the modules of the target ([`module`]), the machine
//! context ([`mcontext`]), the vector-register state ([`simd`]), system
//! calls ([`syscall`]), function wrapping ([`wrap`]), the clean calls
//! inserted while blocks are built ([`instrument`]), the
//! instruction-level layer of memory accesses ([`access`]: drreg, drutil,
//! drx) and of conditional branches ([`branch`]).
//!
//! The DynamoRIO extensions (drmgr, ...) are linked statically: see
//! `build.rs`.

pub use dynamorio_sys as ffi;

// Compile-time asserts that the bindings of the DynamoRIO types ProcessTap
// uses have the size and alignment the target's C compiler gives them (see
// `check_binding_sizes` in build.rs): bindings generated for the wrong
// architecture fail here instead of misreading registers at run time.
include!(concat!(env!("OUT_DIR"), "/binding_sizes.rs"));

pub mod access;
pub mod branch;
pub mod instrument;
pub mod loader;
pub mod mcontext;
pub mod memory;
pub mod module;
pub mod process;
pub mod simd;
pub mod syscall;
pub mod wrap;

/// The DynamoRIO API version a client built with this crate targets. A client
/// exports it as `_USES_DR_VERSION_`; DynamoRIO refuses clients without it.
pub const DR_API_VERSION: i32 = 1190;

/// Where `dynamorio-sys` built DynamoRIO, for tools and tests run from the
/// build tree. Users go through the stable link `target/<profile>/dynamorio`.
pub const DYNAMORIO_BUILD_DIR: &str = env!("PTAP_DYNAMORIO_BUILD");
