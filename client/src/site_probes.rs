//! The probes that may fire at one site (a function, a system call),
//! decided when the site is set up from what is known then (names,
//! modules, addresses, numbers): each keeps only the part of its predicate
//! that depends on the running thread, tested natively per event.

use ptap_runtime::predicate::{EventFields, Predicate, Value, Variable};

/// Variables known only when the event happens.
pub const RUN_TIME_VARIABLES: [Variable; 2] = [Variable::ThreadId, Variable::ProcessId];

/// A probe that may fire at a site, with the name under which it matched.
#[derive(Clone)]
pub struct SiteProbe {
    /// Index into the tracer's probes.
    pub probe: usize,
    pub name: Option<&'static str>,
    /// What is left of its predicate to test per event (thread and process
    /// ids only), or `None` when it always fires here.
    pub predicate: Option<Predicate>,
}

/// A set of indices into a site's probe list (sites have few probes; a
/// site with more than 64 on one side keeps the first 64).
pub type ProbeSet = u64;

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
struct RunTimeFields {
    tid: u32,
    pid: u32,
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

/// The probes of `list` whose predicates accept an event of thread `tid`
/// in process `pid`.
pub fn matching(list: &[SiteProbe], tid: u32, pid: u32) -> ProbeSet {
    let fields = RunTimeFields { tid, pid };
    let mut set: ProbeSet = 0;
    for (i, sp) in list.iter().enumerate().take(64) {
        if sp.predicate.as_ref().is_none_or(|p| p.matches(&fields)) {
            set |= 1 << i;
        }
    }
    set
}

/// The members of `set`, as indices into `list`.
pub fn chosen(list: &[SiteProbe], set: ProbeSet) -> impl Iterator<Item = &SiteProbe> + Clone {
    list.iter().take(64).enumerate().filter(move |(i, _)| set & (1 << i) != 0).map(|(_, sp)| sp)
}
