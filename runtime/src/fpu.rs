//! The application's floating-point state across the handlers.
//!
//! A handler's arithmetic sets the sticky exception flags that C's
//! `fetestexcept` reads (1.0 / 3.0 sets "inexact"), in MXCSR on x86-64
//! and, with Debian's i386 CPython, which computes with x87 instructions,
//! in x87's status word as well; DynamoRIO's clean calls save the vector
//! registers, not these. A program that tests its flags would see the
//! handler's. So [`with_python`](crate::dispatch::with_python) keeps the
//! state while Python runs ([`Kept`]) and puts it back after: MXCSR on
//! x86-64; on 32-bit x86 the whole x87 and SSE state, in an FXSAVE area,
//! where `ctx.retval` reads and writes st0 (the i386 C ABI returns `float`
//! and `double` there, and both ABIs a `long double`; on x86-64 st0 is read
//! and written where it stands, as nothing of ours uses x87).
//!
//! The conversions between the 80-bit extended format and `f64` are plain
//! functions, tested on every architecture.

/// The 80-bit extended value `bytes` (little-endian: 64-bit significand
/// with its explicit integer bit, then sign and 15-bit exponent) as the
/// nearest `f64`.
pub fn extended_to_f64(bytes: [u8; 10]) -> f64 {
    let significand = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let sign_exponent = u16::from_le_bytes([bytes[8], bytes[9]]);
    let negative = sign_exponent & 0x8000 != 0;
    let exponent = i32::from(sign_exponent & 0x7fff);
    let magnitude = if exponent == 0x7fff {
        if significand << 1 == 0 { f64::INFINITY } else { f64::NAN }
    } else if significand == 0 {
        0.0
    } else {
        // exponent 0 is a denormal: the same scale as exponent 1.
        let power = exponent.max(1) - 16383;
        // The significand rounded once to 53 bits, scaled to [1, 2) (or
        // below, for a denormal or an unnormal), then by the power in
        // exact steps of powers of two.
        let mut value = significand as f64 * power_of_two(-63);
        let mut left = power;
        while left != 0 && value != 0.0 && value.is_finite() {
            let step = left.clamp(-1022, 1023);
            value *= power_of_two(step);
            left -= step;
        }
        value
    };
    if negative { -magnitude } else { magnitude }
}

/// `value` in the 80-bit extended format (exactly: every `f64` is one).
pub fn f64_to_extended(value: f64) -> [u8; 10] {
    let bits = value.to_bits();
    let sign = ((bits >> 63) as u16) << 15;
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (exponent, significand) = match exponent {
        0x7ff => (0x7fff, (1 << 63) | (fraction << 11)),
        0 if fraction == 0 => (0, 0),
        0 => {
            // An f64 denormal is a normal extended value.
            let shifted = fraction << 11;
            let zeros = shifted.leading_zeros() as i32;
            (16383 - 1022 - zeros, shifted << zeros)
        }
        e => (e - 1023 + 16383, (1 << 63) | (fraction << 11)),
    };
    let mut out = [0; 10];
    out[..8].copy_from_slice(&significand.to_le_bytes());
    out[8..].copy_from_slice(&(sign | exponent as u16).to_le_bytes());
    out
}

/// 2^`power`, for `power` in -1022..=1023.
fn power_of_two(power: i32) -> f64 {
    f64::from_bits(((power + 1023) as u64) << 52)
}

/// An FXSAVE area (its layout is the processor's; FXSAVE needs 16-byte
/// alignment).
#[repr(C, align(16))]
struct Area([u8; 512]);

// Offsets into the area.
const STATUS_WORD: usize = 2;
const ABRIDGED_TAGS: usize = 4;
const ST0: usize = 32;

impl Area {
    const fn new() -> Area {
        Area([0; 512])
    }

    /// The thread's x87 and SSE state into the area.
    fn save(&mut self) {
        // SAFETY: FXSAVE writes the 512 bytes of a 16-byte aligned area
        // and changes no register.
        unsafe { std::arch::asm!("fxsave [{}]", in(reg) self.0.as_mut_ptr(), options(nostack, preserves_flags)) };
    }

    /// The area's state back into the thread's registers.
    fn restore(&self) {
        // SAFETY: the area holds a state FXSAVE wrote, with at most st0's
        // bytes and tag changed (both to valid values).
        unsafe { std::arch::asm!("fxrstor [{}]", in(reg) self.0.as_ptr(), options(nostack, preserves_flags, readonly)) };
    }

    /// The physical register st0 is (the status word's TOP field).
    fn top(&self) -> usize {
        usize::from(u16::from_le_bytes([self.0[STATUS_WORD], self.0[STATUS_WORD + 1]]) >> 11 & 7)
    }

    /// st0's value, `None` if the x87 stack is empty.
    fn st0(&self) -> Option<f64> {
        let valid = self.0[ABRIDGED_TAGS] & (1 << self.top()) != 0;
        valid.then(|| extended_to_f64(self.0[ST0..ST0 + 10].try_into().unwrap()))
    }

    /// Sets st0 (pushed, if the x87 stack was empty).
    fn set_st0(&mut self, value: f64) {
        self.0[ST0..ST0 + 10].copy_from_slice(&f64_to_extended(value));
        self.0[ABRIDGED_TAGS] |= 1 << self.top();
    }
}

#[cfg(target_arch = "x86")]
pub use state::{set_st0, st0, Kept};

/// The thread's MXCSR, saved when made and put back when dropped.
#[cfg(target_arch = "x86_64")]
pub struct Kept(u32);

#[cfg(target_arch = "x86_64")]
impl Kept {
    pub fn new() -> Kept {
        let mut mxcsr = 0u32;
        // SAFETY: STMXCSR writes the 4 bytes given, and changes no register.
        unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut mxcsr, options(nostack, preserves_flags)) };
        Kept(mxcsr)
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for Kept {
    fn drop(&mut self) {
        // SAFETY: a value STMXCSR read (no reserved bit set).
        unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &self.0, options(nostack, preserves_flags, readonly)) };
    }
}

/// The application's st0 (a `long double` result) on x86-64, where
/// nothing of ours computes with x87 instructions: read as it stands.
#[cfg(target_arch = "x86_64")]
pub fn st0() -> Result<Option<f64>, &'static str> {
    let mut area = Area::new();
    area.save();
    Ok(area.st0())
}

/// Sets the application's st0 on x86-64.
#[cfg(target_arch = "x86_64")]
pub fn set_st0(value: f64) -> Result<(), &'static str> {
    let mut area = Area::new();
    area.save();
    area.set_st0(value);
    area.restore();
    Ok(())
}

#[cfg(target_arch = "x86")]
mod state {
    use super::Area;
    use std::cell::{Cell, UnsafeCell};

    thread_local! {
        /// The thread's area, and whether a [`Kept`] holds a state in it.
        static AREA: UnsafeCell<Area> = const { UnsafeCell::new(Area::new()) };
        static KEPT: Cell<bool> = const { Cell::new(false) };
    }

    /// The thread's x87 (and SSE) state, saved when made and put back when
    /// dropped, with what [`set_st0`] changed meanwhile. One at a time on
    /// a thread (`with_python` makes it only at its outermost level).
    pub struct Kept(());

    impl Kept {
        pub fn new() -> Kept {
            debug_assert!(!KEPT.get());
            // SAFETY: the thread's own area, which nothing else borrows now.
            AREA.with(|a| unsafe { (*a.get()).save() });
            KEPT.set(true);
            Kept(())
        }
    }

    impl Drop for Kept {
        fn drop(&mut self) {
            KEPT.set(false);
            // SAFETY: as in new.
            AREA.with(|a| unsafe { (*a.get()).restore() });
        }
    }

    fn with_area<R>(f: impl FnOnce(&mut Area) -> R) -> Result<R, &'static str> {
        if !KEPT.get() {
            return Err("st0 is kept only while handlers run");
        }
        // SAFETY: the thread's own area, borrowed only here and briefly.
        Ok(AREA.with(|a| f(unsafe { &mut *a.get() })))
    }

    /// The application's st0 (`None` if the x87 stack is empty), as it was
    /// when the handlers began.
    pub fn st0() -> Result<Option<f64>, &'static str> {
        with_area(|area| area.st0())
    }

    /// Sets the application's st0, for when the handlers end.
    pub fn set_st0(value: f64) -> Result<(), &'static str> {
        with_area(|area| area.set_st0(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_and_minus_two_have_the_documented_encodings() {
        assert_eq!(f64_to_extended(1.0), [0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
        assert_eq!(f64_to_extended(-2.0), [0, 0, 0, 0, 0, 0, 0, 0x80, 0x00, 0xc0]);
    }

    #[test]
    fn every_kind_of_double_goes_there_and_back() {
        for v in [0.0, -0.0, 1.0, -2.5, 1e300, -1e-300, f64::MIN_POSITIVE, 5e-324, f64::MAX, 0.1, 27.0, f64::INFINITY, f64::NEG_INFINITY] {
            let back = extended_to_f64(f64_to_extended(v));
            assert_eq!(back.to_bits(), v.to_bits(), "{v:e}");
        }
        assert!(extended_to_f64(f64_to_extended(f64::NAN)).is_nan());
    }

    #[test]
    fn extended_values_round_to_nearest_and_out_of_range_ones_saturate() {
        // 1 + 2^-60: more precision than a double has.
        let mut bytes = f64_to_extended(1.0);
        bytes[0] = 8;
        assert_eq!(extended_to_f64(bytes), 1.0);
        // 2^16000 and 2^-16000.
        assert_eq!(extended_to_f64([0, 0, 0, 0, 0, 0, 0, 0x80, 0x7f, 0x7e]), f64::INFINITY);
        assert_eq!(extended_to_f64([0, 0, 0, 0, 0, 0, 0, 0x80, 0x7f, 0x01]), 0.0);
    }
}
