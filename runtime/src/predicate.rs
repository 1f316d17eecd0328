//! Predicates on the Rust side: the tree a script's `ptap.predicates`
//! objects describe (received through their `to_data()` tuples), decided
//! natively so that Python is entered only for events that match.
//! `ptap-lib/ptap/predicates.py` holds the reference semantics; this module
//! mirrors them.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyInt, PyString, PyTuple};

/// A variable a predicate can test, named as in scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variable {
    ProcessId,
    ThreadId,
    ModuleName,
    FunctionName,
    FunctionAddress,
    SyscallNum,
    SyscallName,
    MemoryAddress,
    MemorySize,
    MemoryValue,
    BranchTaken,
    InstructionAddress,
}

impl Variable {
    /// Every variable.
    pub const ALL: [Variable; 12] = {
        use Variable::*;
        [ProcessId, ThreadId, ModuleName, FunctionName, FunctionAddress, SyscallNum, SyscallName, MemoryAddress, MemorySize,
         MemoryValue, BranchTaken, InstructionAddress]
    };

    pub fn from_name(name: &str) -> Option<Variable> {
        use Variable::*;
        Some(match name {
            "process_id" => ProcessId,
            "thread_id" => ThreadId,
            "module_name" => ModuleName,
            "function_name" => FunctionName,
            "function_address" => FunctionAddress,
            "syscall_num" => SyscallNum,
            "syscall_name" => SyscallName,
            "memory_address" => MemoryAddress,
            "memory_size" => MemorySize,
            "memory_value" => MemoryValue,
            "branch_taken" => BranchTaken,
            "instruction_address" => InstructionAddress,
            _ => return None,
        })
    }
}

/// A constant in a predicate, or a variable's value at an event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    Int(i128),
    Str(String),
    Bytes(Vec<u8>),
    Bool(bool),
    /// The bytes `first..=last` of a memory access: the value of
    /// `memory_address`, which a test matches when any of them passes it.
    Span(i128, i128),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A predicate tree. `&` and `|` are n-ary: `a & b & c` is one `And` of
/// three, not two nested ones, so that a predicate of hundreds of terms
/// is a flat list rather than a deep tree (deciding one recurses, and
/// DynamoRIO's module-load events run on a 56 KiB stack; ptap-lib refuses
/// predicates nested deeper than it allows).
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    Const(bool),
    And(Vec<Predicate>),
    Or(Vec<Predicate>),
    Not(Box<Predicate>),
    Compare(Variable, CompareOp, Value),
    OneOf(Variable, Vec<Value>),
    /// Half-open interval `[start, stop)`.
    InRange(Variable, i128, i128),
    Like(Variable, String),
    /// Some byte of the access is in one of the ranges of an
    /// [`crate::address_sets`] set, as it is at the event.
    InSet(Variable, u64),
}

/// The values of the variables at one event; `None` for a variable the
/// event does not have (ptap-lib rejects such predicates at load time).
pub trait EventFields {
    fn value(&self, var: Variable) -> Option<Value>;
}

impl Predicate {
    /// Decides the predicate for one event.
    pub fn matches(&self, fields: &dyn EventFields) -> bool {
        match self {
            Predicate::Const(b) => *b,
            Predicate::And(all) => all.iter().all(|p| p.matches(fields)),
            Predicate::Or(any) => any.iter().any(|p| p.matches(fields)),
            Predicate::Not(a) => !a.matches(fields),
            Predicate::Compare(var, op, constant) => fields.value(*var).is_some_and(|v| compare(&v, *op, constant)),
            Predicate::OneOf(var, values) => fields.value(*var).is_some_and(|v| values.iter().any(|c| compare(&v, CompareOp::Eq, c))),
            Predicate::InRange(var, start, stop) => match fields.value(*var) {
                Some(Value::Int(v)) => *start <= v && v < *stop,
                Some(Value::Span(first, last)) => first < *stop && last >= *start,
                Some(Value::Bytes(b)) => little_endian(&b).is_some_and(|v| *start <= v && v < *stop),
                _ => false,
            },
            Predicate::Like(var, glob) => matches!(fields.value(*var), Some(Value::Str(s)) if glob_match(glob.as_bytes(), s.as_bytes())),
            Predicate::InSet(var, set) => match fields.value(*var) {
                Some(Value::Span(first, last)) => crate::address_sets::overlaps(*set, first as usize, last as usize),
                Some(Value::Int(v)) => crate::address_sets::overlaps(*set, v as usize, v as usize),
                _ => false,
            },
        }
    }

    /// Decides the predicate from the fields known when code is translated
    /// (names, modules, addresses); `None` when the answer depends on a
    /// variable in `runtime` (thread and process ids), known only when the
    /// event happens. See [`Self::residual`] for what is then left to test.
    pub fn decide_static(&self, fields: &dyn EventFields, runtime: &[Variable]) -> Option<bool> {
        match self.residual(fields, runtime) {
            Predicate::Const(b) => Some(b),
            _ => None,
        }
    }

    /// What is left to decide at run time once the fields known now are
    /// known: every leaf on a variable outside `runtime` is replaced by its
    /// value and the tree simplified, so the per-event test touches only
    /// the run-time variables (no names, no allocation).
    pub fn residual(&self, fields: &dyn EventFields, runtime: &[Variable]) -> Predicate {
        use Predicate::*;
        match self {
            Const(b) => Const(*b),
            And(all) => junction_residual(all, fields, runtime, false).map_or(Const(false), |rest| join(rest, And, true)),
            Or(any) => junction_residual(any, fields, runtime, true).map_or(Const(true), |rest| join(rest, Or, false)),
            Not(a) => match a.residual(fields, runtime) {
                Const(b) => Const(!b),
                x => Not(Box::new(x)),
            },
            // A set changes while the program runs: never decided early.
            InSet(..) => self.clone(),
            Compare(var, ..) | OneOf(var, _) | InRange(var, ..) | Like(var, _) => {
                if runtime.contains(var) {
                    self.clone()
                } else {
                    Const(self.matches(fields))
                }
            }
        }
    }

    /// Whether some leaf tests `var`.
    pub fn mentions(&self, var: Variable) -> bool {
        use Predicate::*;
        match self {
            Const(_) => false,
            And(terms) | Or(terms) => terms.iter().any(|t| t.mentions(var)),
            Not(a) => a.mentions(var),
            InSet(v, _) | Compare(v, ..) | OneOf(v, _) | InRange(v, ..) | Like(v, _) => *v == var,
        }
    }

    /// The address sets its leaves test, in the order they appear.
    pub fn sets(&self) -> Vec<u64> {
        use Predicate::*;
        match self {
            And(terms) | Or(terms) => terms.iter().flat_map(|t| t.sets()).collect(),
            Not(a) => a.sets(),
            InSet(_, id) => vec![*id],
            Const(_) | Compare(..) | OneOf(..) | InRange(..) | Like(..) => Vec::new(),
        }
    }

    /// A copy with every module-relative function address (`"libfoo.so+0x1136"`)
    /// replaced by the absolute address `resolve` gives, or by -1 (which no
    /// function has) when `resolve` does not know the module.
    pub fn resolve_module_offsets(&self, resolve: &dyn Fn(&str) -> Option<i128>) -> Predicate {
        let value = |var: &Variable, v: &Value| match (var, v) {
            (Variable::FunctionAddress, Value::Str(s)) => Value::Int(resolve(s).unwrap_or(-1)),
            _ => v.clone(),
        };
        match self {
            Predicate::And(all) => Predicate::And(all.iter().map(|p| p.resolve_module_offsets(resolve)).collect()),
            Predicate::Or(any) => Predicate::Or(any.iter().map(|p| p.resolve_module_offsets(resolve)).collect()),
            Predicate::Not(a) => Predicate::Not(Box::new(a.resolve_module_offsets(resolve))),
            Predicate::Compare(var, op, v) => Predicate::Compare(*var, *op, value(var, v)),
            Predicate::OneOf(var, vs) => Predicate::OneOf(*var, vs.iter().map(|v| value(var, v)).collect()),
            other => other.clone(),
        }
    }

    /// The function addresses the predicate names with `==` or `>>` (after
    /// [`Self::resolve_module_offsets`]): places to instrument even where
    /// no symbol starts, as in stripped binaries.
    pub fn named_addresses(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.collect_addresses(&mut out);
        out
    }

    fn collect_addresses(&self, out: &mut Vec<usize>) {
        let int = |v: &Value| match v {
            Value::Int(i) if *i >= 0 => Some(*i as usize),
            _ => None,
        };
        match self {
            Predicate::And(terms) | Predicate::Or(terms) => {
                for p in terms {
                    p.collect_addresses(out);
                }
            }
            Predicate::Compare(Variable::FunctionAddress, CompareOp::Eq, v) => out.extend(int(v)),
            Predicate::OneOf(Variable::FunctionAddress, vs) => out.extend(vs.iter().filter_map(int)),
            _ => {}
        }
    }

    /// Parses the tuples of `Predicate.to_data()`.
    pub fn from_data(data: &Bound<'_, PyAny>) -> PyResult<Predicate> {
        let t = data.cast::<PyTuple>()?;
        let tag: String = t.get_item(0)?.extract()?;
        let var = |i: usize| -> PyResult<Variable> {
            let name: String = t.get_item(i)?.extract()?;
            Variable::from_name(&name).ok_or_else(|| bad(format!("unknown predicate variable {name}")))
        };
        Ok(match tag.as_str() {
            "const" => Predicate::Const(t.get_item(1)?.extract()?),
            "and" => Predicate::And(Self::junction_from_data(t, "and")?),
            "or" => Predicate::Or(Self::junction_from_data(t, "or")?),
            "not" => Predicate::Not(Box::new(Self::from_data(&t.get_item(1)?)?)),
            "cmp" => {
                let op: String = t.get_item(2)?.extract()?;
                let op = match op.as_str() {
                    "==" => CompareOp::Eq,
                    "!=" => CompareOp::Ne,
                    "<" => CompareOp::Lt,
                    "<=" => CompareOp::Le,
                    ">" => CompareOp::Gt,
                    ">=" => CompareOp::Ge,
                    _ => return Err(bad(format!("unknown comparison {op}"))),
                };
                Predicate::Compare(var(1)?, op, value_from(&t.get_item(3)?)?)
            }
            "in" => {
                let values = t.get_item(2)?.try_iter()?.map(|v| value_from(&v?)).collect::<PyResult<_>>()?;
                Predicate::OneOf(var(1)?, values)
            }
            "range" => Predicate::InRange(var(1)?, t.get_item(2)?.extract()?, t.get_item(3)?.extract()?),
            "like" => Predicate::Like(var(1)?, t.get_item(2)?.extract()?),
            "set" => Predicate::InSet(var(1)?, t.get_item(2)?.extract()?),
            _ => return Err(bad(format!("unknown predicate node {tag}"))),
        })
    }
}

/// Where the accesses a predicate accepts can be: `memory_address` must
/// meet one of `ranges` (`[start, end)`) or a range of one of `sets`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Footprint {
    pub ranges: Vec<(usize, usize)>,
    pub sets: Vec<u64>,
}

impl Footprint {
    fn range(start: i128, end: i128) -> Footprint {
        let clamp = |v: i128| v.clamp(0, usize::MAX as i128) as usize;
        Footprint { ranges: vec![(clamp(start), clamp(end))], sets: Vec::new() }
    }

    /// Bytes its constant ranges span.
    pub fn constant_bytes(&self) -> u128 {
        self.ranges.iter().map(|&(s, e)| e.saturating_sub(s) as u128).sum()
    }

    fn intersect(self, other: Footprint) -> Footprint {
        if !self.sets.is_empty() || !other.sets.is_empty() {
            // Keep the side with sets only, else the smaller: both are sound.
            return if other.ranges.is_empty() || (self.constant_bytes() > other.constant_bytes() && self.sets.is_empty()) { other } else { self };
        }
        let mut ranges = Vec::new();
        for &(a, b) in &self.ranges {
            for &(c, d) in &other.ranges {
                let (start, end) = (a.max(c), b.min(d));
                if start < end {
                    ranges.push((start, end));
                }
            }
        }
        Footprint { ranges, sets: Vec::new() }
    }
}

impl Predicate {
    /// Where `memory_address` must lie for the predicate to hold (sound,
    /// not always tight), or `None` when anywhere: what the code cache may
    /// test before it calls the client.
    pub fn address_footprint(&self) -> Option<Footprint> {
        use Predicate::*;
        const A: Variable = Variable::MemoryAddress;
        match self {
            Const(false) => Some(Footprint::default()),
            Compare(A, op, Value::Int(v)) => match op {
                CompareOp::Eq => Some(Footprint::range(*v, *v + 1)),
                CompareOp::Lt => Some(Footprint::range(0, *v)),
                CompareOp::Le => Some(Footprint::range(0, *v + 1)),
                CompareOp::Gt => Some(Footprint::range(*v + 1, u64::MAX as i128)),
                CompareOp::Ge => Some(Footprint::range(*v, u64::MAX as i128)),
                CompareOp::Ne => None,
            },
            OneOf(A, values) => {
                let mut all = Footprint::default();
                for v in values {
                    let Value::Int(v) = v else { return None };
                    all.ranges.extend(Footprint::range(*v, *v + 1).ranges);
                }
                Some(all)
            }
            InRange(A, start, stop) => Some(Footprint::range(*start, *stop)),
            InSet(A, id) => Some(Footprint { ranges: Vec::new(), sets: vec![*id] }),
            And(terms) => terms.iter().filter_map(|t| t.address_footprint()).reduce(Footprint::intersect),
            Or(terms) => {
                let mut all = Footprint::default();
                for t in terms {
                    let f = t.address_footprint()?;
                    all.ranges.extend(f.ranges);
                    all.sets.extend(f.sets);
                }
                Some(all)
            }
            _ => None,
        }
    }
}

impl Predicate {
    /// The terms of the chain of `tag` tuples starting at `t`: Python's
    /// `a & b & c` is `(and, (and, a, b), c)`, walked here in a loop.
    fn junction_from_data(t: &Bound<'_, PyTuple>, tag: &str) -> PyResult<Vec<Predicate>> {
        let mut rights = Vec::new();
        let mut node = t.clone();
        loop {
            rights.push(node.get_item(2)?);
            let left = node.get_item(1)?;
            let left = left.cast::<PyTuple>()?;
            if left.get_item(0)?.extract::<String>()? != tag {
                rights.push(left.clone().into_any());
                break;
            }
            node = left.clone();
        }
        rights.iter().rev().map(Self::from_data).collect()
    }
}

/// The residuals of a junction's terms with the constants that do not
/// decide it dropped, or `None` when one decides it (`decisive`: false
/// for `&`, true for `|`).
fn junction_residual(terms: &[Predicate], fields: &dyn EventFields, runtime: &[Variable], decisive: bool) -> Option<Vec<Predicate>> {
    let mut rest = Vec::new();
    for term in terms {
        match term.residual(fields, runtime) {
            Predicate::Const(b) if b == decisive => return None,
            Predicate::Const(_) => {}
            other => rest.push(other),
        }
    }
    Some(rest)
}

/// A junction of `terms`: its identity (`empty`) for none, the term for one.
fn join(mut terms: Vec<Predicate>, junction: fn(Vec<Predicate>) -> Predicate, empty: bool) -> Predicate {
    match terms.len() {
        0 => Predicate::Const(empty),
        1 => terms.pop().unwrap(),
        _ => junction(terms),
    }
}

fn bad(message: String) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(message)
}

fn value_from(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    // bool before int: Python's bool is an int.
    if v.is_instance_of::<PyBool>() {
        Ok(Value::Bool(v.extract()?))
    } else if v.is_instance_of::<PyInt>() {
        Ok(Value::Int(v.extract()?))
    } else if v.is_instance_of::<PyString>() {
        Ok(Value::Str(v.extract()?))
    } else if let Ok(b) = v.cast::<PyBytes>() {
        Ok(Value::Bytes(b.as_bytes().to_vec()))
    } else {
        Err(bad(format!("unsupported predicate constant {v}")))
    }
}

/// Bytes read as a little-endian unsigned integer; `None` past 2**127,
/// which is more than any predicate constant.
fn little_endian(bytes: &[u8]) -> Option<i128> {
    let (low, high) = bytes.split_at(bytes.len().min(15));
    if high.iter().any(|&b| b != 0) {
        return None;
    }
    Some(low.iter().rev().fold(0i128, |v, &b| (v << 8) | b as i128))
}

fn compare(value: &Value, op: CompareOp, constant: &Value) -> bool {
    match (value, constant) {
        // Some byte of the access passes: the first is the lowest, the
        // last the highest; != is the negation of ==.
        (Value::Span(first, last), Value::Int(c)) => {
            return match op {
                CompareOp::Eq => first <= c && c <= last,
                CompareOp::Ne => !(first <= c && c <= last),
                CompareOp::Lt => first < c,
                CompareOp::Le => first <= c,
                CompareOp::Gt => last > c,
                CompareOp::Ge => last >= c,
            }
        }
        // memory_value compared with an int: the bytes as an unsigned number.
        (Value::Bytes(b), Value::Int(_)) => {
            return match little_endian(b) {
                Some(v) => compare(&Value::Int(v), op, constant),
                None => matches!(op, CompareOp::Ne | CompareOp::Gt | CompareOp::Ge),
            }
        }
        _ => {}
    }
    if std::mem::discriminant(value) != std::mem::discriminant(constant) {
        return op == CompareOp::Ne;
    }
    match op {
        CompareOp::Eq => value == constant,
        CompareOp::Ne => value != constant,
        CompareOp::Lt => value < constant,
        CompareOp::Le => value <= constant,
        CompareOp::Gt => value > constant,
        CompareOp::Ge => value >= constant,
    }
}

/// fnmatch-style glob: `*`, `?`, `[abc]`, `[!abc]`, `[a-z]`; case-sensitive,
/// as Python's `fnmatch.fnmatchcase`.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(pattern, p, text[t]) {
                        if matched {
                            p = next;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[open] == '['`;
/// returns whether it matched and the index after `]`, or `None` when the
/// class is not closed (then `[` is literal, as in fnmatch).
fn class_match(pattern: &[u8], open: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'!');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() {
        if pattern[i] == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            matched |= pattern[i] <= c && c <= pattern[i + 2];
            i += 3;
        } else {
            matched |= pattern[i] == c;
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fields(Vec<(Variable, Value)>);
    impl EventFields for Fields {
        fn value(&self, var: Variable) -> Option<Value> {
            self.0.iter().find(|(v, _)| *v == var).map(|(_, x)| x.clone())
        }
    }

    #[test]
    fn globs_match_like_fnmatchcase() {
        assert!(glob_match(b"libc*", b"libc.so.6"));
        assert!(!glob_match(b"libc*", b"libcrypto"[..3].as_ref()));
        assert!(glob_match(b"str?cmp", b"strncmp"));
        assert!(glob_match(b"*[0-9]", b"lib6"));
        assert!(!glob_match(b"*[!0-9]", b"lib6"));
        assert!(glob_match(b"a*b*c", b"aXXbYYc"));
        assert!(!glob_match(b"a*b*c", b"aXXbYY"));
        assert!(glob_match(b"[ab", b"[ab"));
    }

    #[test]
    fn static_decisions_leave_run_time_variables_open() {
        let f = Fields(vec![(Variable::FunctionName, Value::Str("malloc".into()))]);
        let name = Predicate::Compare(Variable::FunctionName, CompareOp::Eq, Value::Str("malloc".into()));
        let other = Predicate::Compare(Variable::FunctionName, CompareOp::Eq, Value::Str("free".into()));
        let tid = Predicate::Compare(Variable::ThreadId, CompareOp::Eq, Value::Int(1));
        let rt = [Variable::ThreadId, Variable::ProcessId];
        assert_eq!(name.decide_static(&f, &rt), Some(true));
        assert_eq!(Predicate::And(vec![other.clone(), tid.clone()]).decide_static(&f, &rt), Some(false));
        assert_eq!(Predicate::And(vec![name.clone(), tid.clone()]).decide_static(&f, &rt), None);
        assert_eq!(Predicate::Or(vec![name, tid.clone()]).decide_static(&f, &rt), Some(true));
        assert_eq!(Predicate::Not(Box::new(tid.clone())).decide_static(&f, &rt), None);
        let both = Predicate::And(vec![Predicate::Compare(Variable::FunctionName, CompareOp::Eq, Value::Str("malloc".into())), tid.clone()]);
        assert_eq!(both.residual(&f, &rt), tid);
    }

    #[test]
    fn module_offsets_resolve_to_addresses() {
        let p = Predicate::Compare(Variable::FunctionAddress, CompareOp::Eq, Value::Str("app+0x1136".into()));
        let resolved = p.resolve_module_offsets(&|s| (s == "app+0x1136").then_some(0x401136));
        assert_eq!(resolved.named_addresses(), vec![0x401136]);
        assert_eq!(p.resolve_module_offsets(&|_| None).named_addresses(), Vec::<usize>::new());
    }

    #[test]
    fn trees_decide_events() {
        let f = Fields(vec![(Variable::ModuleName, Value::Str("libc.so.6".into())), (Variable::ThreadId, Value::Int(7))]);
        let libc = Predicate::Like(Variable::ModuleName, "libc*".into());
        let tid = Predicate::Compare(Variable::ThreadId, CompareOp::Gt, Value::Int(5));
        assert!(Predicate::And(vec![libc.clone(), tid.clone()]).matches(&f));
        assert!(!Predicate::Not(Box::new(libc)).matches(&f));
        assert!(Predicate::InRange(Variable::ThreadId, 7, 8).matches(&f));
        assert!(!Predicate::InRange(Variable::ThreadId, 0, 7).matches(&f));
        assert!(Predicate::OneOf(Variable::ThreadId, vec![Value::Int(1), Value::Int(7)]).matches(&f));
        assert!(Predicate::Compare(Variable::ModuleName, CompareOp::Ne, Value::Int(3)).matches(&f));
    }
}
