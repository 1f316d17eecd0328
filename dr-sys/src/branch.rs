//! Conditional branches (`jcc`, `jrcxz`/`jecxz`, `loop`/`loope`/`loopne`):
//! what one is, and places before it for code that runs only when it is
//! taken, or only when it is not.
//!
//! A `jcc` or `jrcxz` is left as it is, the block's one exit, so that
//! DynamoRIO can still put the block in a trace; before it, a meta copy of
//! its test (it changes nothing) jumps around the code of the direction
//! that is not going. A `loop` counts RCX down as it tests, so a copy
//! cannot run first: the block ends as DynamoRIO's `cbr` sample makes it,
//! the branch a meta branch to a label and two application jumps, one to
//! the fallthrough and one (after the label) to the target. DynamoRIO
//! keeps a block with two exits out of traces, which compilers' code,
//! without `loop`, never meets.

use crate::ffi;
use crate::instrument::{Instr, InstrList};
use crate::process::DrContext;

/// One conditional branch of the application, as its block is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConditionalBranch {
    /// Where it goes when taken.
    pub target: usize,
    /// The next instruction, where it goes when not taken.
    pub fallthrough: usize,
    /// `"jne"`, `"jrcxz"`, `"loop"`, ...: as objdump names it.
    pub mnemonic: &'static str,
    /// `"ne"`, `"rcxz"`, `"loop"`, ...: the mnemonic without its `j`.
    pub condition: &'static str,
    test: Test,
}

/// How the branch decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Test {
    /// A `jcc`: condition `n` of [`JCC`].
    Flags(u32),
    /// `jrcxz` or `jecxz`: whether the register is zero.
    CounterZero(ffi::reg_id_t),
    /// A `loop`: RCX counted down, then tested.
    Loop,
}

/// The sixteen `jcc` conditions, in the order of their opcodes
/// (`OP_jo` to `OP_jnle`, and the same for the short forms); each even
/// one's inverse follows it.
const JCC: [(&str, &str); 16] = [
    ("jo", "o"),
    ("jno", "no"),
    ("jb", "b"),
    ("jae", "ae"),
    ("je", "e"),
    ("jne", "ne"),
    ("jbe", "be"),
    ("ja", "a"),
    ("js", "s"),
    ("jns", "ns"),
    ("jp", "p"),
    ("jnp", "np"),
    ("jl", "l"),
    ("jge", "ge"),
    ("jle", "le"),
    ("jg", "g"),
];

/// `instr` as a conditional branch, if it is an application's one.
///
/// # Safety
/// `instr` is an instruction of a list being built by the thread of `dc`.
pub unsafe fn conditional_branch(dc: DrContext, instr: Instr) -> Option<ConditionalBranch> {
    if ffi::instr_is_app(instr) == 0 || ffi::instr_is_cbr(instr) == 0 {
        return None;
    }
    let opcode = ffi::instr_get_opcode(instr) as u32;
    // jecxz is jrcxz with an address-size prefix: it tests ECX.
    let counter = || ffi::opnd_get_reg(ffi::instr_get_src(instr, 1));
    let jcc = |n: u32| (JCC[n as usize].0, JCC[n as usize].1, Test::Flags(n));
    let (mnemonic, condition, test) = match opcode {
        o if (ffi::OP_jo..=ffi::OP_jnle).contains(&o) => jcc(o - ffi::OP_jo),
        o if (ffi::OP_jo_short..=ffi::OP_jnle_short).contains(&o) => jcc(o - ffi::OP_jo_short),
        ffi::OP_jecxz if counter() == ffi::DR_REG_RCX as ffi::reg_id_t => ("jrcxz", "rcxz", Test::CounterZero(counter())),
        ffi::OP_jecxz => ("jecxz", "ecxz", Test::CounterZero(counter())),
        ffi::OP_loop => ("loop", "loop", Test::Loop),
        ffi::OP_loope => ("loope", "loope", Test::Loop),
        ffi::OP_loopne => ("loopne", "loopne", Test::Loop),
        _ => return None,
    };
    let pc = ffi::instr_get_app_pc(instr) as usize;
    Some(ConditionalBranch {
        target: ffi::instr_get_branch_target_pc(instr) as usize,
        fallthrough: pc + ffi::instr_length(dc, instr) as usize,
        mnemonic,
        condition,
        test,
    })
}

/// Where code for each direction asked for goes: inserted before
/// `not_taken` it runs only when the branch falls through, before `taken`
/// only when it jumps. The application's flags and registers there are as
/// the branch sees them (before a `loop`, as it left them: RCX counted
/// down).
#[derive(Clone, Copy)]
pub struct Directions {
    pub not_taken: Option<Instr>,
    pub taken: Option<Instr>,
}

/// Makes the places of [`Directions`] for `instr`, the conditional branch
/// `branch` that ends `bb`, for the directions asked for (see the
/// module's comment). The block's translations must then be stored
/// (`DR_EMIT_STORE_TRANSLATIONS`): what is inserted depends on what ran
/// before.
///
/// # Safety
/// `instr` is the last instruction of `bb`, in an insertion callback of
/// thread `dc`; nothing else rewrites it.
pub unsafe fn direction_points(dc: DrContext, bb: InstrList, instr: Instr, branch: &ConditionalBranch, not_taken: bool, taken: bool) -> Directions {
    let label = || ffi::instr_create_0dst_0src(dc, ffi::OP_LABEL as i32);
    let meta = |i: Instr| ffi::instrlist_meta_preinsert(bb, instr, i);
    let jump_to = |opcode: u32, to: Instr| ffi::instr_create_0dst_1src(dc, opcode as i32, ffi::opnd_create_instr(to));
    match branch.test {
        Test::Loop => split(dc, bb, instr, branch),
        // One direction of a jcc: its inverse (the even and odd
        // conditions pair up) skips the code when it is not going.
        //     j<not the direction> done; <code>; done: jcc
        Test::Flags(n) if not_taken != taken => {
            let done = label();
            let skip_when = if taken { n ^ 1 } else { n };
            meta(jump_to(ffi::OP_jo + skip_when, done));
            meta(done);
            Directions { not_taken: (not_taken).then_some(done), taken: taken.then_some(done) }
        }
        //     j<cc> go; <not-taken code>; jmp done; go: <taken code>; done: jcc
        test => {
            let (go, done) = (label(), label());
            match test {
                Test::Flags(n) => meta(jump_to(ffi::OP_jo + n, go)),
                Test::CounterZero(counter) => {
                    let short = ffi::instr_create_0dst_2src(dc, ffi::OP_jecxz as i32, ffi::opnd_create_instr(go), ffi::opnd_create_reg(counter));
                    meta(short);
                    // jrcxz reaches 127 bytes, less than a clean call's
                    // length: a short jump over a long one.
                    let long = ffi::instr_convert_short_meta_jmp_to_long(dc, bb, short);
                    ffi::instr_set_target(long, ffi::opnd_create_instr(go));
                }
                Test::Loop => unreachable!("a loop is split"),
            }
            let skip_taken = jump_to(ffi::OP_jmp, done);
            meta(skip_taken);
            meta(go);
            meta(done);
            Directions { not_taken: not_taken.then_some(skip_taken), taken: taken.then_some(done) }
        }
    }
}

/// The end of the block as DynamoRIO's `cbr` sample makes it: `instr` a
/// meta branch to a label, then two exits.
unsafe fn split(dc: DrContext, bb: InstrList, instr: Instr, branch: &ConditionalBranch) -> Directions {
    let taken_label = ffi::instr_create_0dst_0src(dc, ffi::OP_LABEL as i32);
    ffi::instr_set_meta_no_translation(instr);
    // A loop reaches 127 bytes, less than a clean call's length:
    // DynamoRIO makes it a short branch over a long jump, the one to
    // retarget.
    let jump = ffi::instr_convert_short_meta_jmp_to_long(dc, bb, instr);
    ffi::instr_set_target(jump, ffi::opnd_create_instr(taken_label));
    let exit_to = |pc: usize| {
        let exit = ffi::instr_create_0dst_1src(dc, ffi::OP_jmp as i32, ffi::opnd_create_pc(pc as *mut u8));
        // An application jump, translated as the instruction it lands on.
        ffi::instr_set_translation(exit, pc as *mut u8);
        exit
    };
    let not_taken = exit_to(branch.fallthrough);
    let taken = exit_to(branch.target);
    ffi::instrlist_append(bb, not_taken);
    ffi::instrlist_meta_append(bb, taken_label);
    ffi::instrlist_append(bb, taken);
    Directions { not_taken: Some(not_taken), taken: Some(taken) }
}
