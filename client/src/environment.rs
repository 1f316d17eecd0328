//! Hiding DynamoRIO's variables from the target's environment.
//!
//! Early injection passes `DYNAMORIO_EXE_PATH` and `DYNAMORIO_OPTIONS` in
//! the environment, and the target would see them in `environ`. Before its
//! first instruction we take them out of the `envp` array on its initial
//! stack. The auxiliary vector must stay where it is (libc finds it after
//! the first NULL of `envp`), so the two freed words become one `AT_IGNORE`
//! auxv entry, which libc skips. DynamoRIO keeps its own copies of both
//! values and puts them back into the environment of any program the
//! target executes, so children are still traced.

/// The variables the launcher (and drrun) add.
const DYNAMORIO_VARIABLES: [&[u8]; 2] = [b"DYNAMORIO_EXE_PATH=", b"DYNAMORIO_OPTIONS="];

/// `AT_IGNORE`: an auxv entry type libc skips.
const AT_IGNORE: usize = 1;

/// How far below the argument strings the `argv` array may start.
const SEARCH_LIMIT: usize = 256 * 1024;

/// Removes DynamoRIO's variables from the target's initial `envp`, if both
/// are there (as with the `processtap` launcher). Returns whether it did.
pub fn hide_dynamorio_variables() -> bool {
    let Some(layout) = StackLayout::read() else { return false };
    let Some(envp) = layout.find_envp() else { return false };
    // SAFETY: `envp` is the target's NULL-terminated environment array on
    // its initial stack, found and checked by find_envp; its strings lie in
    // [env_start, env_end). The target has not run yet, so nothing else
    // reads or writes the array while we edit it in place.
    unsafe {
        let mut count = 0;
        while *envp.add(count) != 0 {
            count += 1;
        }
        let entries = std::slice::from_raw_parts_mut(envp, count + 1);
        let is_ours = |p: usize| DYNAMORIO_VARIABLES.iter().any(|v| starts_with(p, v));
        let ours = entries[..count].iter().filter(|&&p| is_ours(p)).count();
        if ours != 2 {
            // One freed word cannot hold an auxv entry: leave it be.
            return false;
        }
        let mut kept = 0;
        for i in 0..count {
            if !is_ours(entries[i]) {
                entries[kept] = entries[i];
                kept += 1;
            }
        }
        entries[kept] = 0;
        entries[kept + 1] = AT_IGNORE;
        entries[kept + 2] = 0;
    }
    true
}

/// # Safety
/// `p` must point to a NUL-terminated string.
unsafe fn starts_with(p: usize, prefix: &[u8]) -> bool {
    let s = std::ffi::CStr::from_ptr(p as *const std::ffi::c_char).to_bytes();
    s.starts_with(prefix)
}

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
