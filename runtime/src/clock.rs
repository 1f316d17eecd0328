//! The time of events: `ctx.timestamp` and `ctx.duration`, in nanoseconds
//! of CLOCK_MONOTONIC (the clock strace's `-T` and bpftrace's `nsecs` use,
//! which no change of the wall clock moves).
//!
//! The clock is read through the kernel's vDSO, as the program's own libc
//! does (~20 ns): the private libc DynamoRIO loads for the client has no
//! vDSO set up and makes a real system call each time (~150 ns, on every
//! call with an exit probe). The vDSO's `__vdso_clock_gettime` is found
//! once from its ELF image in memory; where it cannot be, the system call
//! serves.

use once_cell::sync::OnceCell;

type ClockGettime = unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int;

/// The vDSO's clock_gettime, found at the first reading.
static VDSO_CLOCK_GETTIME: OnceCell<Option<ClockGettime>> = OnceCell::new();

/// Now, in nanoseconds of CLOCK_MONOTONIC.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    match VDSO_CLOCK_GETTIME.get_or_init(find_vdso_clock_gettime) {
        // SAFETY: the vDSO's function takes what clock_gettime(2) takes
        // and writes only the timespec it is given.
        Some(vdso) => unsafe { vdso(libc::CLOCK_MONOTONIC, &mut now) },
        // SAFETY: as above, through the system call.
        None => unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut now as *mut libc::timespec) as libc::c_int },
    };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// `__vdso_clock_gettime` in the vDSO the kernel mapped into this process.
fn find_vdso_clock_gettime() -> Option<ClockGettime> {
    let base = vdso_base()?;
    // The vDSO is one or two pages of ELF the kernel keeps mapped for the
    // process's life; its headers say how long the image is.
    // SAFETY: `base` is the start of the mapped vDSO image, readable.
    let header = unsafe { std::slice::from_raw_parts(base as *const u8, 64) };
    let size = vdso_image_size(header)?;
    // SAFETY: as above, for the whole image.
    let image = unsafe { std::slice::from_raw_parts(base as *const u8, size) };
    let elf = goblin::elf::Elf::parse(image).ok()?;
    let symbol = elf
        .dynsyms
        .iter()
        .find(|s| s.st_value != 0 && elf.dynstrtab.get_at(s.st_name) == Some("__vdso_clock_gettime"))?;
    // The symbols are offsets from the image's start (its first PT_LOAD
    // is at vaddr 0).
    let address = base + symbol.st_value as usize;
    // SAFETY: the symbol is the vDSO's clock_gettime, with its C signature.
    Some(unsafe { std::mem::transmute::<usize, ClockGettime>(address) })
}

/// Where the vDSO starts: the kernel's AT_SYSINFO_EHDR, from
/// `/proc/self/auxv` (the private libc's getauxval does not have it).
fn vdso_base() -> Option<usize> {
    let auxv = std::fs::read("/proc/self/auxv").ok()?;
    let word = std::mem::size_of::<usize>();
    auxv.chunks_exact(2 * word).find_map(|pair| {
        let (key, value) = pair.split_at(word);
        let key = usize::from_ne_bytes(key.try_into().ok()?);
        let value = usize::from_ne_bytes(value.try_into().ok()?);
        (key == libc::AT_SYSINFO_EHDR as usize && value != 0).then_some(value)
    })
}

/// The length of the ELF image whose first 64 bytes are `header`: to the
/// end of its section headers, which come last in the vDSO.
fn vdso_image_size(header: &[u8]) -> Option<usize> {
    let header = goblin::elf::Elf::parse_header(header).ok()?;
    let sections_end = header.e_shoff as usize + header.e_shnum as usize * header.e_shentsize as usize;
    (sections_end > 0 && sections_end < 1 << 20).then_some(sections_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_moves_forward_with_the_system_clock() {
        let system = || {
            let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: writes the timespec given.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
            t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
        };
        let (before, a) = (system(), monotonic_ns());
        std::thread::sleep(std::time::Duration::from_millis(2));
        let (b, after) = (monotonic_ns(), system());
        assert!(before <= a && a + 2_000_000 <= b && b <= after, "{before} {a} {b} {after}");
    }

    #[test]
    fn the_vdso_clock_is_found() {
        assert!(find_vdso_clock_gettime().is_some());
    }
}
