//! `getauxval` for private libraries. The private ld.so was never started,
//! so the private libc's copy of the auxiliary vector is NULL and its
//! `getauxval` crashes; libpython calls it. Ours reads /proc/self/auxv once.

use once_cell::sync::OnceCell;

static AUXV: OnceCell<Vec<(usize, usize)>> = OnceCell::new();

/// Reads the auxiliary vector; call once before any private library runs.
pub fn load() {
    AUXV.get_or_init(|| {
        let bytes = std::fs::read("/proc/self/auxv").unwrap_or_default();
        let word = std::mem::size_of::<usize>();
        bytes
            .chunks_exact(2 * word)
            .map(|pair| {
                let (k, v) = pair.split_at(word);
                (usize::from_ne_bytes(k.try_into().unwrap()), usize::from_ne_bytes(v.try_into().unwrap()))
            })
            .take_while(|&(k, _)| k != 0)
            .collect()
    });
}

/// The `getauxval(3)` that private libraries call instead of libc's.
pub extern "C" fn getauxval(kind: libc::c_ulong) -> libc::c_ulong {
    let found = AUXV.get().and_then(|v| v.iter().find(|&&(k, _)| k == kind as usize));
    match found {
        Some(&(_, value)) => value as libc::c_ulong,
        None => {
            // SAFETY: errno is thread-local to the calling thread.
            unsafe { *libc::__errno_location() = libc::ENOENT };
            0
        }
    }
}
