//! Hiding DynamoRIO's variables from the target's environment.
//!
//! DynamoRIO passes what it needs in the environment: the launcher (or
//! drrun) sets `DYNAMORIO_EXE_PATH` and `DYNAMORIO_OPTIONS` (drrun also
//! `DYNAMORIO_CONFIGDIR` and `DYNAMORIO_TAKEOVER_IN_INIT`), DynamoRIO adds
//! them again to the environment of every program the target executes,
//! with `DYNAMORIO_POST_EXECVE`, which it then renames in place to
//! `__disabled__` (it cannot remove it without moving the auxiliary
//! vector). The target would see all of them in `environ`. Before its
//! first instruction we take every `DYNAMORIO_*` entry and DynamoRIO's
//! `__disabled__` out of the `envp` array on its initial stack, and move
//! the auxiliary vector down to follow the shortened array, where libc
//! looks for it (just after the NULL that ends `envp`). DynamoRIO keeps its
//! own copies of the values and its own options, and puts them back into
//! the environment of any program the target executes, so children are
//! still traced.
//!
//! `/proc/PID/environ` still shows the strings: the kernel reads it from
//! the memory the strings were first copied to, which we leave as it is.

/// The prefix of every variable DynamoRIO reads.
const DYNAMORIO_PREFIX: &[u8] = b"DYNAMORIO_";

/// What DynamoRIO leaves of `DYNAMORIO_POST_EXECVE=NN` in an executed
/// program's environment: it writes `__disabled__` and a NUL over the
/// name's start, so the rest of the name follows the NUL.
const DISABLED: &[u8] = b"__disabled__\0T_EXECVE=";

/// What was found in the environment.
pub struct Hidden {
    /// How many entries were taken out.
    pub entries: usize,
    /// DynamoRIO's mark of a program executed by a traced process was
    /// there: this is not the first program of the trace.
    pub after_exec: bool,
}

/// Removes DynamoRIO's variables from the target's initial `envp`.
/// `None` when the initial stack could not be found.
pub fn hide_dynamorio_variables() -> Option<Hidden> {
    let layout = StackLayout::read()?;
    let envp = layout.find_envp()?;
    // SAFETY: `envp` is the target's NULL-terminated environment array on
    // its initial stack, found and checked by find_envp, and the auxiliary
    // vector follows its NULL (the kernel's layout, which DynamoRIO keeps).
    // The target has not run yet, so nothing else reads or writes them
    // while we edit them in place; the entries we move stay inside the
    // words the array and the vector held.
    unsafe {
        let mut count = 0;
        while *envp.add(count) != 0 {
            count += 1;
        }
        let mut after_exec = false;
        let mut kept = 0;
        for i in 0..count {
            let entry = *envp.add(i);
            let disabled = starts_with(entry, DISABLED);
            after_exec |= disabled;
            if !(disabled || starts_with(entry, DYNAMORIO_PREFIX)) {
                *envp.add(kept) = entry;
                kept += 1;
            }
        }
        let removed = count - kept;
        if removed > 0 {
            // The vector: (type, value) pairs up to and including AT_NULL.
            let auxv = envp.add(count + 1);
            let mut words = 0;
            while *auxv.add(words) != AT_NULL {
                words += 2;
            }
            words += 2;
            *envp.add(kept) = 0;
            std::ptr::copy(auxv, envp.add(kept + 1), words);
        }
        Some(Hidden { entries: removed, after_exec })
    }
}

/// The auxiliary vector's end marker.
const AT_NULL: usize = 0;

/// Whether the bytes at `p` start with `prefix`. The comparison stops at
/// the first byte that differs, so it reads past the string's NUL only
/// where `prefix` holds a NUL too.
///
/// # Safety
/// `p` must point to a NUL-terminated string; where `prefix` holds a NUL,
/// the bytes after the string's NUL must be readable up to the prefix's
/// length (environment strings lie one after another below the stack's
/// top, which ends with the executable's name).
unsafe fn starts_with(p: usize, prefix: &[u8]) -> bool {
    let p = p as *const u8;
    prefix.iter().enumerate().all(|(i, &want)| *p.add(i) == want)
}

/// How far below the argument strings the `argv` array may start.
const SEARCH_LIMIT: usize = 256 * 1024;

/// Where the kernel put the target's argument and environment strings.
struct StackLayout {
    arg_start: usize,
    env_start: usize,
    env_end: usize,
    argc: usize,
}

impl StackLayout {
    fn read() -> Option<StackLayout> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which may hold spaces, in ( ).
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<usize> = rest.split(' ').map(|f| f.trim().parse().unwrap_or(0)).collect();
        // proc(5) numbers fields from 1 and `rest` starts at field 3.
        let field = |n: usize| fields.get(n - 3).copied();
        let cmdline = std::fs::read("/proc/self/cmdline").ok()?;
        let argc = cmdline.iter().filter(|&&b| b == 0).count();
        Some(StackLayout { arg_start: field(48)?, env_start: field(50)?, env_end: field(51)?, argc })
    }

    /// The address of `envp[0]`: below the strings lies
    /// `argc, argv[0..argc], NULL, envp[..], NULL, auxv`, and `argv[0]`
    /// points at the first argument string.
    fn find_envp(&self) -> Option<*mut usize> {
        let word = std::mem::size_of::<usize>();
        let top = self.arg_start & !(word - 1);
        let mut p = top;
        while p > top.saturating_sub(SEARCH_LIMIT) {
            p -= word;
            // SAFETY: the words between the initial stack pointer and the
            // strings are mapped stack; we stop at the first match, which
            // lies above the initial stack pointer.
            let (value, before) = unsafe { (*(p as *const usize), *((p - word) as *const usize)) };
            if value == self.arg_start && before == self.argc {
                let envp = (p + (self.argc + 1) * word) as *mut usize;
                // SAFETY: as above; the array ends at a NULL before the strings.
                let first = unsafe { *envp };
                let plausible = first == 0 || (self.env_start..self.env_end).contains(&first);
                return plausible.then_some(envp);
            }
        }
        None
    }
}
