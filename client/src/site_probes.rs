//! The probes that may fire at one site (a function, a system call),
//! decided when the site is set up from what is known then (names,
//! modules, addresses, numbers): each keeps only the part of its predicate
//! that depends on the running thread, tested natively per event.

use ptap_runtime::predicate::{EventFields, Predicate, Value, Variable};

/// Variables known only when the event happens.
pub const RUN_TIME_VARIABLES: [Variable; 2] = [Variable::ThreadId, Variable::ProcessId];

/// A probe that may fire at a site, with the name under which it matched.
#[derive(Clone, PartialEq)]
pub struct SiteProbe {
    /// Index into the tracer's probes.
    pub probe: usize,
    pub name: Option<&'static str>,
    /// What is left of its predicate to test per event (thread and process
    /// ids only), or `None` when it always fires here.
    pub predicate: Option<Predicate>,
}

/// The probes of a site's list that an event chose. The first 63 are
/// bits; the rest (a site rarely has more) are re-tested, when the set is
/// read, with the thread and process ids the event had, which is all a
/// residual predicate asks for. Plain data, so that it can be kept per
/// thread without a destructor and copied into a pending call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ProbeSet {
    /// Bit i: probe i matched, for i < 63; bit 63: some probe from 63 on did.
    bits: u64,
    tid: u32,
    pid: u32,
}

/// How many probes of a list have a bit of their own.
const BITS: usize = 63;
const TAIL: u64 = 1 << BITS;

impl ProbeSet {
    pub const EMPTY: ProbeSet = ProbeSet { bits: 0, tid: 0, pid: 0 };

    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }
}

/// What a predicate decided at set-up leaves to the event: `None` when it
/// cannot match, `Some(None)` when it always does, `Some(Some(rest))` when
/// `rest` must be tested per event.
pub fn residual(predicate: &Predicate, fields: &dyn EventFields) -> Option<Option<Predicate>> {
    match predicate.residual(fields, &RUN_TIME_VARIABLES) {
        Predicate::Const(true) => Some(None),
        Predicate::Const(false) => None,
        rest => Some(Some(rest)),
    }
}

/// The run-time fields of one event: all a residual predicate asks for.
#[derive(Clone, Copy)]
pub struct RunTimeFields {
    pub tid: u32,
    pub pid: u32,
}

impl EventFields for RunTimeFields {
    fn value(&self, var: Variable) -> Option<Value> {
        match var {
            Variable::ThreadId => Some(Value::Int(self.tid as i128)),
            Variable::ProcessId => Some(Value::Int(self.pid as i128)),
            _ => None,
        }
    }
}

fn accepts(sp: &SiteProbe, fields: &RunTimeFields) -> bool {
    sp.predicate.as_ref().is_none_or(|p| p.matches(fields))
}

/// The probes of `list` whose predicates accept an event of thread `tid`
/// in process `pid`.
pub fn matching(list: &[SiteProbe], tid: u32, pid: u32) -> ProbeSet {
    matching_except(list, tid, pid, |_| false)
}

/// [`matching`], leaving out the probes for which `skip` holds (those the
/// code cache already counted inline).
pub fn matching_except(list: &[SiteProbe], tid: u32, pid: u32, skip: impl Fn(&SiteProbe) -> bool) -> ProbeSet {
    let fields = RunTimeFields { tid, pid };
    let wanted = |sp: &SiteProbe| !skip(sp) && accepts(sp, &fields);
    let mut bits = 0;
    for (i, sp) in list.iter().enumerate().take(BITS) {
        if wanted(sp) {
            bits |= 1 << i;
        }
    }
    if list.iter().skip(BITS).any(wanted) {
        bits |= TAIL;
    }
    ProbeSet { bits, tid, pid }
}

/// The members of `set`, in `list`'s order.
pub fn chosen(list: &[SiteProbe], set: ProbeSet) -> impl Iterator<Item = &SiteProbe> + Clone {
    let fields = RunTimeFields { tid: set.tid, pid: set.pid };
    let head = list.iter().take(BITS).enumerate().filter(move |(i, _)| set.bits & (1 << i) != 0).map(|(_, sp)| sp);
    let tail = list.iter().skip(if set.bits & TAIL != 0 { BITS } else { list.len() });
    head.chain(tail.filter(move |sp| accepts(sp, &fields)))
}
