"""Memory probes end to end: memory_read, memory_write, memory_execute (issue 12).

Targets: tests/targets/{memwatch,heapblocks,secret_read,lock_counter,fault_store,flags_store}.c
(their header comments say what each does and prints).

Every expected number here comes from outside the tracer:

- the program's own output (it prints the values it computed and how many
  times it did things);
- objdump of the built binary: which instructions touch the watched bytes,
  how wide they are, and that the compiler did what the C suggests (one
  store per loop iteration, a vectorised loop, a ``lock add``);
- valgrind's lackey (``--tool=lackey --trace-mem=yes``), which prints every
  instruction (``I  addr,size``) and every data access (`` L``, `` S``,
  `` M`` for a load and store by one instruction, ``addr,size``) of the
  program; :func:`lackey_accesses` filters them to a watched range;
- gdb: breakpoint hit counts, and where glibc's memcpy and memset use
  ``rep movsb`` / ``rep stosb`` and for how many bytes.

Handlers print to ``-o FILE``, never to stdout: the targets' own stdout
is then exactly what they print untraced, which every test checks along
with the exit status (a handler line could also land in the middle of an
unbuffered target's line, which is written in pieces).
"""

import collections
import re
import shutil
import subprocess

import pytest

from conftest import run_command
from function_targets import arch, arch_target, ftarget  # noqa: F401

# ---------------------------------------------------------------------------
# Ground truth from outside the tracer

#: Where valgrind 3.19 maps a PIE executable (ET_DYN), 64-bit or 32-bit: its load base.
#: lackey prints run-time addresses; file offsets are these minus the base.
VALGRIND_PIE_BASE = 0x108000


def nm_symbols(path):
    """{name: (value, size)} of the defined symbols of the file at *path* (``nm -S``)."""
    completed = subprocess.run(["nm", "-S", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert completed.returncode == 0, completed.stderr
    symbols = {}
    for fields in (line.split() for line in completed.stdout.splitlines()):
        if len(fields) == 4:
            symbols[fields[3]] = (int(fields[0], 16), int(fields[1], 16))
        elif len(fields) == 3 and fields[1] not in "Uw":
            symbols.setdefault(fields[2], (int(fields[0], 16), 0))
    return symbols


def objdump_function(path, name):
    """The instructions of function *name*: a list of (address, bytes, text)."""
    completed = subprocess.run(
        ["objdump", "-d", "--insn-width=16", f"--disassemble={name}", path],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert completed.returncode == 0, completed.stderr
    instructions = []
    for line in completed.stdout.splitlines():
        match = re.match(r"^\s+([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t?(.*)$", line)
        if match:
            instructions.append((int(match.group(1), 16), bytes.fromhex(match.group(2)), match.group(3).strip()))
    assert instructions, f"objdump found no function {name} in {path}"
    return instructions


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is needed for this test's ground truth")


def run_lackey(command, tmp_path):
    """Run *command* under ``valgrind --tool=lackey --trace-mem=yes``; returns
    (its stdout, the path of lackey's trace)."""
    need("valgrind")
    log = tmp_path / "lackey.log"
    returncode, stdout, stderr = run_command(
        ["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-file={log}", *command], timeout=300,
    )
    assert returncode == 0, stderr
    return stdout, log


def lackey_events(log):
    """lackey's trace as (kind, address, size, pc) tuples, in program order:
    kind "I" for an instruction (pc is its own address), "read", "write" for
    its data accesses. An ``M`` (one instruction loading and storing the same
    bytes: ``addl $1, counter(%rip)``, ``lock addl``) is a read followed by a
    write, as the contract counts a read-modify-write."""
    pc = None
    with open(log) as lines:
        for line in lines:
            if line.startswith("I "):
                address, size = line[1:].strip().split(",")
                pc = int(address, 16)
                yield ("I", pc, int(size), pc)
            elif line[:3] in (" L ", " S ", " M "):
                address, size = line[3:].strip().split(",")
                address, size = int(address, 16), int(size)
                if line[1] in "LM":
                    yield ("read", address, size, pc)
                if line[1] in "SM":
                    yield ("write", address, size, pc)


def lackey_accesses(log, start, size):
    """The data accesses of lackey's trace that overlap [start, start + size)
    (run-time addresses under valgrind), in program order: (kind, address,
    size, pc). A vector access is one access of its full width (16 bytes for
    movdqa), as in the contract; a ``rep`` string instruction is one access
    per iteration (valgrind runs each iteration as its own block), also as in
    the contract (drutil expands it the same way)."""
    return [
        event for event in lackey_events(log)
        if event[0] != "I" and event[1] < start + size and event[1] + event[2] > start
    ]


def lackey_executions(log, pc):
    """How many times lackey saw the instruction at run-time address *pc* run."""
    return sum(1 for kind, address, _, _ in lackey_events(log) if kind == "I" and address == pc)


def function_of(symbols, offset):
    """The name of the function symbol whose [value, value + size) holds *offset*."""
    for name, (value, size) in symbols.items():
        if value <= offset < value + size:
            return name
    return None


def gdb_breakpoint_hits(command, locations, tmp_path):
    """Run *command* under gdb with a breakpoint at each of *locations*
    (gdb's syntax: ``target_fn``, ``*loop_fn+16``) that only counts; returns
    their hit counts, as ``info breakpoints`` gives them."""
    need("gdb")
    commands = ["set pagination off"]
    for number, location in enumerate(locations, 1):
        commands += [f"break {location}", f"commands {number}", "silent", "continue", "end"]
    commands += ["run", "info breakpoints"]
    script = tmp_path / "hits.gdb"
    script.write_text("\n".join(commands) + "\n")
    args = ["gdb", "-q", "-batch", "-nx", "-x", script, "--args", *command]
    returncode, stdout, stderr = run_command(args, timeout=300)
    assert returncode == 0, stdout + stderr
    hits = {}
    for number, _ in enumerate(locations, 1):
        match = re.search(rf"^{number}\s+breakpoint\s.*?(?:\n\t.*?)*?breakpoint already hit (\d+) time", stdout, re.M)
        hits[locations[number - 1]] = int(match.group(1)) if match else 0
    return hits


#: A gdb script (Python) that finds where glibc's memcpy and memset, called
#: from memwatch's copy() and fill(), run a ``rep movsb`` / ``rep stosb``,
#: and with what count (RCX) and destination (RDI, from the start of
#: buffer). Offsets are from libc's lowest mapped address, which is the
#: module_base ProcessTap gives. gdb stops at a breakpoint on a rep
#: instruction at each iteration; only the first stop of each is recorded.
GDB_REP_SCRIPT = r'''
import gdb, re
gdb.execute("set pagination off")
gdb.execute("set confirm off")
gdb.execute("set environment LD_BIND_NOW=1")
gdb.execute("break copy")
gdb.execute("break fill")
gdb.execute("run")
mappings = gdb.execute("info proc mappings", to_string=True)
libc = min(int(line.split()[0], 16) for line in mappings.splitlines() if line.strip().endswith("libc.so.6"))
buffer = int(gdb.parse_and_eval("(long)&buffer"))
for which in ("copy", "fill"):
    for _ in range(10):
        gdb.execute("stepi", to_string=True)
        if "libc.so.6" in gdb.execute("info symbol $pc", to_string=True):
            break
    text = gdb.execute("disassemble", to_string=True)
    reps = [int(m.group(1), 16) for m in re.finditer(r"^\s*(?:=>)?\s*0x([0-9a-f]+) <[^>]*>:\s+rep (?:movsb|stos)", text, re.M)]
    print("IMPL", which, gdb.execute("info symbol $pc", to_string=True).split()[0], len(reps))
    points = [gdb.Breakpoint("*%#x" % r, internal=True) for r in reps]
    gdb.execute("continue")
    pc = int(gdb.parse_and_eval("$pc"))
    if pc in reps:
        print("REP", which, pc - libc, int(gdb.parse_and_eval("$rcx")), int(gdb.parse_and_eval("$rdi")) - buffer)
    for point in points:
        point.delete()
    if pc in reps:
        gdb.execute("continue")
'''


def gdb_rep_strings(path, tmp_path):
    """{"copy"/"fill": (libc offset of the rep instruction, count, destination
    offset in buffer)} for memwatch's memcpy and memset, natively (gdb)."""
    need("gdb")
    script = tmp_path / "rep.py"
    script.write_text(GDB_REP_SCRIPT)
    returncode, stdout, stderr = run_command(["gdb", "-q", "-batch", "-nx", "-x", script, path], timeout=300)
    assert returncode == 0, stdout + stderr
    found = {}
    for line in stdout.splitlines():
        if line.startswith("REP "):
            _, which, offset, count, destination = line.split()
            found[which] = (int(offset), int(count), int(destination))
    return found, stdout


# ---------------------------------------------------------------------------
# Running a trace


def traced(trace, tmp_path, script, command, options=()):
    """Trace *command* with the handlers' output in a file; returns (result,
    the handlers' lines)."""
    out = tmp_path / f"handlers{len(list(tmp_path.glob('handlers*')))}.txt"
    result = trace(script, *command, options=["-q", "-o", str(out), *options])
    lines = out.read_text().splitlines() if out.exists() else []
    return result, lines


def check_untouched(result, native, handler_lines=(), never_matched=()):
    """The target's stdout and exit status are what they are untraced, no
    handler raised, and the probes warned about at exit as never matched
    are exactly those named in *never_matched*."""
    detail = str(result) + "--- handlers ---\n" + "\n".join(list(handler_lines)[:200])
    assert native.returncode == 0, "the test target itself misbehaves"
    assert result.returncode == native.returncode, detail
    assert result.stdout == native.stdout, detail
    assert "Traceback" not in result.stderr, detail
    warnings = [line for line in result.stderr.splitlines() if line.startswith("[!]")]
    warned = [re.match(r"\[!\] probe (\S+) never matched: ", line) for line in warnings]
    assert all(warned) and sorted(m.group(1) for m in warned) == sorted(never_matched), detail


def fields(lines, prefix):
    return [line[len(prefix):].split() for line in lines if line.startswith(prefix)]


# ---------------------------------------------------------------------------
# 1. One int inside a vectorised global array

TABLE5_SCRIPT = """\
table = symbol_range("table")
watched = table.start + 5 * 4                      # &table[5]

@memory_read(memory_address == watched)
@memory_write(memory_address == watched)
def access(ctx):
    # The access covers table[5]: its value is at watched - ctx.address.
    offset = watched - ctx.address
    value = int.from_bytes(ctx.value[offset:offset + 4], "little")
    line = "[%s] %d %d %s %d" % (ctx.access, ctx.address - table.start, ctx.size, ctx.function_name, value)
    if ctx.access == "write":
        line += " %d" % int.from_bytes(ctx.old_value[offset:offset + 4], "little")
    print(line)
"""


# The same int in an AddressSet: tested in the code cache against the hull
# of the watched ranges and the page map, which an access starting 4 bytes
# before the int must pass.
TABLE5_SET_SCRIPT = TABLE5_SCRIPT.replace("""@memory_read(memory_address == watched)
@memory_write(memory_address == watched)""", """cell = AddressSet()
cell.add(watched, 4)

@memory_read(memory_address >> cell)
@memory_write(memory_address >> cell)""")


@pytest.mark.parametrize("script", [TABLE5_SCRIPT, TABLE5_SET_SCRIPT], ids=["constant", "address-set"])
def test_reads_and_writes_of_one_int_in_a_vectorised_array(trace, ftarget, run_native, tmp_path, script):
    assert script.count("cell") in (0, 4), script      # the replacement took
    path = ftarget("memwatch")
    symbols = nm_symbols(path)
    table = symbols["table"][0]
    # objdump: the loops are vectorised, 16-byte SSE accesses of table.
    add_round = [text for _, _, text in objdump_function(path, "add_round")]
    assert any(t.startswith("movdqa (%rax),%xmm") for t in add_round), add_round
    assert any(t.startswith("paddd") for t in add_round), add_round
    assert any(t.startswith("movaps %xmm0,-0x10(%rax)") for t in add_round), add_round

    # Ground truth: lackey's accesses overlapping table[5], in order.
    native_out, log = run_lackey([path], tmp_path)
    base = VALGRIND_PIE_BASE
    expected = [
        (kind, address - base - table, size, function_of(symbols, pc - base))
        for kind, address, size, pc in lackey_accesses(log, base + table + 20, 4)
    ]
    # What that is, from objdump: init_table's 16-byte store of table[4..7];
    # per round add_round's 16-byte load and store, then main's 4-byte read
    # for printf; sum_table's 16-byte load.
    round_ = [("read", 16, 16, "add_round"), ("write", 16, 16, "add_round"), ("read", 20, 4, "main")]
    assert expected == [("write", 16, 16, "init_table")] + round_ * 4 + [("read", 16, 16, "sum_table")], expected

    native = run_native(path)
    assert native.stdout == native_out
    result, lines = traced(trace, tmp_path, script, [path])
    check_untouched(result, native, lines)
    seen = [(kind, int(offset), int(size), function) for kind, offset, size, function, *_ in
            (line[1:].replace("]", "", 1).split() for line in lines)]
    assert seen == expected, "\n".join(lines)

    # The values after each write are those the program prints (after init: 5).
    printed = [int(line.split()[-1]) for line in native.stdout.splitlines() if line.startswith("table[5] = ")]
    assert printed == [6, 8, 11, 15]
    writes = fields(lines, "[write] ")
    assert [int(w[3]) for w in writes] == [5] + printed, lines
    assert [int(w[4]) for w in writes] == [0, 5] + printed[:-1], lines      # old values
    # A read sees the value before the instruction: add_round reads the
    # previous value, main reads the value it prints, sum_table the last.
    reads = fields(lines, "[read] ")
    assert [int(r[3]) for r in reads] == [5, 6, 6, 8, 8, 11, 11, 15, 15], lines


# ---------------------------------------------------------------------------
# 2. A global counter accessed RIP-relative; memory_value == 0

COUNTER_SCRIPT = """\
@memory_read(memory_address >> symbol_range("counter"))
@memory_write(memory_address >> symbol_range("counter"))
def counter(ctx):
    print("[%s] %s %d %d" % (ctx.access, ctx.function_name, ctx.size, int.from_bytes(ctx.value, "little")))

flag = symbol_range("flag")

@memory_write(memory_address >> flag)
def any_flag(ctx):
    print("[flag] %d" % int.from_bytes(ctx.value, "little"))

@memory_write((memory_address >> flag) & (memory_value == 0))
def zero_flag(ctx):
    print("[zero] %s %d %r" % (ctx.function_name, ctx.size, ctx.value))
"""


def test_rip_relative_counter_and_zero_writes(trace, ftarget, run_native, tmp_path):
    path = ftarget("memwatch")
    symbols = nm_symbols(path)
    assert [t for _, _, t in objdump_function(path, "bump")][0].startswith("addl   $0x1,"), "bump is not one addl"
    _, log = run_lackey([path], tmp_path)
    base = VALGRIND_PIE_BASE
    counter = [(k, s, function_of(symbols, pc - base))
               for k, _, s, pc in lackey_accesses(log, base + symbols["counter"][0], 4)]
    # lackey: 25 M (bump's addl) and main's read for printf.
    assert counter == [("read", 4, "bump"), ("write", 4, "bump")] * 25 + [("read", 4, "main")], counter
    flag_writes = lackey_accesses(log, base + symbols["flag"][0], 4)
    assert [k for k, *_ in flag_writes] == ["write"] * 7, flag_writes

    native = run_native(path)
    (flags_line,) = [line for line in native.stdout.splitlines() if line.startswith("flags:")]
    flags = [int(v) for v in flags_line.split()[1:]]
    assert flags == [0, 3, 0, 0, 7, 0, 1]

    result, lines = traced(trace, tmp_path, COUNTER_SCRIPT, [path])
    check_untouched(result, native, lines)
    seen = [line for line in lines if line.startswith(("[read] ", "[write] "))]
    expected = []
    for value in range(1, 26):
        expected += [f"[read] bump 4 {value - 1}", f"[write] bump 4 {value}"]
    expected.append("[read] main 4 25")
    assert seen == expected, "\n".join(lines)
    assert [int(f[0]) for f in fields(lines, "[flag] ")] == flags, lines
    assert fields(lines, "[zero] ") == [["set_flag", "4", repr(b"\0\0\0\0")]] * flags.count(0), lines


# ---------------------------------------------------------------------------
# 3. memcpy, memset (glibc's rep movsb / rep stosb and vector paths) and an
#    inline rep stosb into a watched global buffer

BUFFER_SCRIPT = """\
buffer = symbol_range("buffer")
bases = {}

@module_load
def loaded(ctx):
    bases[ctx.module] = ctx.module_base

@function_entry(function_name >> ["copy", "fill", "stosb"])
def phase(ctx):
    print("[phase] %s" % ctx.function_name)

@memory_write(memory_address >> buffer)
def written(ctx):
    print("[w] %d %d %s %d %s %s" % (ctx.address - buffer.start, ctx.size, ctx.module,
          ctx.pc - bases[ctx.module], ctx.value.hex(), ctx.old_value.hex()))
"""


def test_memcpy_memset_and_rep_stosb_into_a_watched_buffer(trace, ftarget, run_native, tmp_path):
    path = ftarget("memwatch")
    symbols = nm_symbols(path)
    # objdump: copy and fill are calls of glibc's memcpy and memset (jumps
    # through the PLT); stosb() is one rep stos of bytes.
    assert "memcpy@plt" in objdump_function(path, "copy")[0][2]
    assert "memset@plt" in objdump_function(path, "fill")[0][2]
    (rep_stosb,) = [(a, t) for a, _, t in objdump_function(path, "stosb") if t.startswith("rep stos %al")]
    # gdb, natively: where glibc makes a rep movsb / rep stosb, how many bytes.
    # (On this machine, AVX-512 with ERMS and FSRM: memcpy of 4096 bytes is
    # a 64-byte vector store plus a rep movsb of 4064 bytes, memset of 8192 a
    # rep stosb of 8192; a CPU without them takes vector paths only, which the
    # coverage and content checks below still test.)
    reps, gdb_output = gdb_rep_strings(path, tmp_path)
    assert set(reps) <= {"copy", "fill"}, gdb_output
    # lackey: the inline rep stosb is 300 one-byte stores (one per iteration).
    _, log = run_lackey([path], tmp_path)
    base = VALGRIND_PIE_BASE
    stos = [a - base - symbols["buffer"][0] for k, a, s, pc in
            lackey_accesses(log, base + symbols["buffer"][0], 8192) if pc == base + rep_stosb[0]]
    assert stos == list(range(100, 400)), stos[:10]

    native = run_native(path)
    result, lines = traced(trace, tmp_path, BUFFER_SCRIPT, [path])
    check_untouched(result, native, lines)
    phases = collections.defaultdict(list)
    current = None
    for line in lines:
        if line.startswith("[phase] "):
            current = line.split()[1]
        elif line.startswith("[w] "):
            offset, size, module, pc, value, old = line.split()[1:]
            phases[current].append((int(offset), int(size), module, int(pc), bytes.fromhex(value), bytes.fromhex(old)))
    # Nothing but copy, fill and stosb writes the buffer.
    assert set(phases) == {"copy", "fill", "stosb"}, sorted(phases)

    def replay(events, image):
        for offset, size, _, _, value, _ in events:
            assert len(value) == size
            for i, byte in enumerate(value):
                if 0 <= offset + i < len(image):
                    image[offset + i] = byte
        return image

    def covered(events):
        return {offset + i for offset, size, *_ in events for i in range(size)}

    # memcpy(buffer, source, 4096): every byte of the 4096 written, none after,
    # with source's bytes (i * 7).
    copy = phases["copy"]
    assert all(m == "libc.so.6" for _, _, m, *_ in copy), copy[:5]
    assert covered(copy) == set(range(4096)), "memcpy's writes do not cover exactly buffer[0:4096]"
    assert bytes(replay(copy, bytearray(4096))) == bytes((i * 7) & 0xFF for i in range(4096))
    # memset(buffer, 0x5a, 8192): every byte, all 0x5a.
    fill = phases["fill"]
    assert all(m == "libc.so.6" for _, _, m, *_ in fill), fill[:5]
    assert covered(fill) == set(range(8192))
    assert bytes(replay(fill, bytearray(8192))) == b"\x5a" * 8192
    # Where gdb saw glibc use rep movsb / rep stosb: exactly that many
    # one-byte writes from that instruction, in address order (program order).
    for which, events in (("copy", copy), ("fill", fill)):
        if which in reps:
            pc, count, destination = reps[which]
            from_rep = [offset for offset, size, _, p, *_ in events if p == pc]
            assert from_rep == list(range(destination, destination + count)), (which, reps, from_rep[:10])
    # The inline rep stosb: 300 one-byte writes, in order, 0xa5 over memset's 0x5a.
    assert phases["stosb"] == [
        (offset, 1, "memwatch", rep_stosb[0], b"\xa5", b"\x5a") for offset in range(100, 400)
    ], phases["stosb"][:5]


# ---------------------------------------------------------------------------
# 4. memory_execute: a function's first instruction, an instruction in a loop

EXECUTE_SCRIPT = """\
target_fn = symbol_range("target_fn").start
loop_insn = symbol_range("loop_fn").start + LOOP_OFFSET

@memory_execute(memory_address == target_fn)
def entered(ctx):
    print("[fn] %s %d %d %s %s" % (ctx.access, ctx.address - target_fn, ctx.size, ctx.value.hex(), ctx.function_name))

@memory_execute(memory_address == loop_insn)
def looped(ctx):
    print("[loop] %d %s %s %d" % (ctx.size, ctx.value.hex(), ctx.function_name, ctx.regs.RDX))

@function_entry(function_name == "target_fn")
def called(ctx):
    print("[entry] target_fn")
"""


def test_memory_execute_counts_calls_and_loop_iterations(trace, ftarget, run_native, tmp_path):
    path = ftarget("memwatch")
    symbols = nm_symbols(path)
    first = objdump_function(path, "target_fn")[0]
    loop = objdump_function(path, "loop_fn")
    (bswap, *_) = [insn for insn in loop if insn[2].startswith("bswap")]
    loop_offset = bswap[0] - symbols["loop_fn"][0]
    # gdb: breakpoint hit counts; the program counts its own calls too.
    hits = gdb_breakpoint_hits([path], ["*target_fn", f"*loop_fn+{loop_offset}"], tmp_path)
    native = run_native(path)
    (calls,) = [int(line.split()[-1]) for line in native.stdout.splitlines() if line.startswith("target_fn calls = ")]
    assert hits == {"*target_fn": calls, f"*loop_fn+{loop_offset}": 37}, hits
    _, log = run_lackey([path], tmp_path)
    assert lackey_executions(log, VALGRIND_PIE_BASE + bswap[0]) == 37

    result, lines = traced(trace, tmp_path, EXECUTE_SCRIPT.replace("LOOP_OFFSET", str(loop_offset)), [path])
    check_untouched(result, native, lines)
    assert fields(lines, "[fn] ") == [["execute", "0", str(len(first[1])), first[1].hex(), "target_fn"]] * calls, lines
    # At a function's first instruction the function_entry comes first,
    # then the instruction's own events (docs/scripts.md).
    order = [line.split()[0] for line in lines if line.startswith(("[entry] ", "[fn] "))]
    assert order == ["[entry]", "[fn]"] * calls, lines
    # The loop counter i is in edx at the bswap (objdump: add $0x1,%edx after
    # it): the events come in program order, i = 0..36.
    assert fields(lines, "[loop] ") == [[str(len(bswap[1])), bswap[1].hex(), "loop_fn", str(i)] for i in range(37)], lines


# ---------------------------------------------------------------------------
# 5. An AddressSet filled at malloc's exit and emptied at free's entry

HEAP_SCRIPT = """\
heap = AddressSet()
sizes = {}

@function_exit(function_name == "malloc")
def allocated(ctx):
    if module(ctx.caller) == "heapblocks":          # the program's own blocks
        heap.add(ctx.retval, ctx.args[0])
        sizes[ctx.retval] = ctx.args[0]
        print("[malloc] %d" % ctx.args[0])

@function_entry(function_name == "free")
def freed(ctx):
    if ctx.args[0] in sizes:
        heap.discard(ctx.args[0])
        print("[free] %d %d" % (sizes.pop(ctx.args[0]), len(heap)))

@memory_write(memory_address >> heap)
def heap_write(ctx):
    (start,) = [s for s in sizes if s <= ctx.address < s + sizes[s]]
    print("[w] %d %d %s %d %d" % (sizes[start], ctx.size, ctx.function_name, ctx.address - start,
                                  int.from_bytes(ctx.value, "little")))

@process_exit
def done(ctx):
    print("[left] %d" % len(heap))
"""


def test_address_set_from_malloc_and_free_counts_heap_writes(trace, ftarget, run_native, tmp_path):
    path = ftarget("heapblocks")
    symbols = nm_symbols(path)
    # objdump: each fill_* loop makes one store per element, of its width.
    stores = {
        "fill_ints": "mov    %eax,-0x4(%rdi,%rax,4)",
        "fill_bytes": "mov    %dl,(%rax)",
        "fill_longs": "mov    %rdx,(%rax)",
    }
    for name, store in stores.items():
        writes = [t for _, _, t in objdump_function(path, name) if re.search(r",\s*-?(0x[0-9a-f]+)?\(", t)]
        assert writes == [store], (name, writes)
    # lackey: the stores the fill_* functions make, heap and stack told apart
    # by address (valgrind puts the main stack above 0x1000000000, the heap
    # far below it).
    _, log = run_lackey([path], tmp_path)
    base = VALGRIND_PIE_BASE
    counted = collections.Counter()
    for kind, address, size, pc in lackey_events(log):
        function = function_of(symbols, pc - base) if kind == "write" else None
        if function in stores:
            counted[(function, size, "stack" if address >= 0x1000000000 else "heap")] += 1
    assert counted == {("fill_ints", 4, "heap"): 9, ("fill_bytes", 1, "heap"): 100,
                       ("fill_longs", 8, "heap"): 500, ("fill_bytes", 1, "stack"): 16}, counted

    native = run_native(path)
    result, lines = traced(trace, tmp_path, HEAP_SCRIPT, [path])
    check_untouched(result, native, lines)
    assert fields(lines, "[malloc] ") == [["24"], ["100"], ["4000"], ["24"]], lines
    assert fields(lines, "[free] ") == [["24", "2"], ["100", "2"], ["4000", "1"], ["24", "0"]], lines
    assert fields(lines, "[left] ") == [["0"]], lines
    writes = fields(lines, "[w] ")
    seen = collections.Counter((function, int(size), "heap") for _, size, function, *_ in writes)
    assert seen == {key: n for key, n in counted.items() if key[2] == "heap"}, seen
    assert len(writes) == 609
    # Program order, with the values the program stores (heapblocks.c).
    expected = [["24", "4", "fill_ints", str(4 * i), str(i + 1)] for i in range(6)]
    expected += [["100", "1", "fill_bytes", str(i), str((i * 3 + 1) & 0xFF)] for i in range(100)]
    expected += [["4000", "8", "fill_longs", str(8 * i), str(i * 1000 + 7)] for i in range(500)]
    expected += [["24", "4", "fill_ints", str(4 * i), str(i + 1)] for i in range(3)]
    assert writes == expected, writes[:20]


# ---------------------------------------------------------------------------
# 6. A handler changes the value a read returns

SECRET_SCRIPT = """\
@memory_read(memory_address >> symbol_range("secret_value"))
def lie(ctx):
    print("[read] %s %d %d" % (ctx.function_name, ctx.size, int.from_bytes(ctx.value, "little")))
    ctx.value = (1000).to_bytes(4, "little")
"""


def test_read_handler_changes_what_the_program_reads(trace, arch, arch_target, run_native, tmp_path):
    path = arch_target("secret_read")
    # objdump: compute reads secret_value once, 4 bytes: RIP-relative on
    # x86-64, off the GOT's address on 32-bit x86 (mov 0x1c(%eax),%eax),
    # where it is known only at run time.
    compute = [t for _, _, t in objdump_function(path, "compute")]
    if arch == "x86-64":
        reads = [t for t in compute if "<secret_value>" in t]
    else:
        reads = [t for t in compute if re.match(r"mov\s+0x[0-9a-f]+\(%e\w\w\),%e\w\w$", t)]
    assert len(reads) == 1 and reads[0].startswith("mov    0x"), compute
    native = run_native(path)
    assert native.stdout == "answer = 83\n"
    result, lines = traced(trace, tmp_path, SECRET_SCRIPT, [path])
    detail = str(result) + "\n".join(lines)
    assert result.returncode == 0, detail
    assert result.stdout == "answer = 2001\n", detail           # 2 * 1000 + 1
    assert lines == ["[read] compute 4 41"], detail
    assert "Traceback" not in result.stderr, detail


KEPT_VALUE_SCRIPT = """\
kept = []

@memory_read(memory_address >> symbol_range("secret_value"))
def keep(ctx):
    kept.append(ctx)

@process_exit
def late(ctx):
    try:
        kept[0].value = (1000).to_bytes(4, "little")
    except RuntimeError as e:
        print("[late]", e)
"""


def test_a_kept_ctx_cannot_write_memory_after_its_event(trace, arch_target, run_native, tmp_path):
    path = arch_target("secret_read")
    native = run_native(path)
    result, lines = traced(trace, tmp_path, KEPT_VALUE_SCRIPT, [path])
    check_untouched(result, native, lines)
    assert lines == ["[late] this ctx belongs to an event that is over: keep values, not ctx"], str(result)


# ---------------------------------------------------------------------------
# 7. 8 threads, lock add on one watched counter

LOCK_SCRIPT = """\
import collections, threading
lock = threading.Lock()
writes = collections.defaultdict(list)
reads = collections.Counter()

@memory_write(memory_address >> symbol_range("counter"))
def written(ctx):
    value = int.from_bytes(ctx.value, "little")
    with lock:
        writes[ctx.tid].append(value)

@memory_read(memory_address >> symbol_range("counter"))
def read(ctx):
    with lock:
        reads[ctx.function_name] += 1

@process_exit
def done(ctx):
    for tid, values in sorted(writes.items()):
        ordered = all(a < b for a, b in zip(values, values[1:]))
        print("[thread] %d %d %d %d %s" % (tid == ctx.pid, len(values), min(values), max(values), ordered))
    for name, n in sorted(reads.items()):
        print("[reads] %s %d" % (name, n))
"""


FLAGS_SCRIPT = """\
watched_set = AddressSet()
w = symbol_range("watched")
watched_set.add(w.start, WORD)
values = []

@memory_write(PREDICATE)
def written(ctx):
    values.append((ctx.function_name, ctx.size, int.from_bytes(ctx.value, "little")))

@process_exit
def done(ctx):
    for name in ("add_carrying", "store_below"):
        mine = [v for f, size, v in values if f == name and size == WORD]
        print("[writes] %s %d %s" % (name, len(mine), " ".join(str(v) for v in mine[:4])))
    print("[other] %d" % sum(1 for f, size, v in values if size != WORD or f not in ("add_carrying", "store_below")))
"""


@pytest.mark.parametrize("predicate", ['memory_address >> symbol_range("watched")', "memory_address >> watched_set"],
                         ids=["constant-range", "address-set"])
def test_stores_keep_the_flags_their_neighbours_read(trace, arch, arch_target, run_native, tmp_path, predicate):
    # `add %rdx,(%rdi); adc $0,%rax` and `cmp; mov %rdx,(%rdi); setb`: the
    # probe's code before the store (its test) and on the way to its clean
    # call (a copy of the store, the after-write call) must leave the flags
    # as the program left them, whether the store matches (on `watched`)
    # or not (on `other`): a changed carry changes the counts it prints.
    path = arch_target("flags_store")
    text = {name: [t for _, _, t in objdump_function(path, name)] for name in ("add_carrying", "store_below")}
    # The words are unsigned longs: 4 bytes on 32-bit x86, whose arguments
    # come from the stack into other registers.
    word = 8 if arch == "x86-64" else 4
    pointer = "%rdi" if arch == "x86-64" else r"%e\w\w"
    assert any(re.match(rf"add\s+%\w+,\({pointer}\)", t) for t in text["add_carrying"]), text
    assert any(t.startswith("adc ") for t in text["add_carrying"]), text
    below = text["store_below"]
    store = [i for i, t in enumerate(below) if re.match(rf"mov\s+%\w+,\({pointer}\)", t)]
    assert len(store) == 1 and below[store[0] - 1].startswith("cmp ") and below[store[0] + 1].startswith("setb "), below
    native = run_native(path, "1000")
    assert native.stdout == "carries 500 500\nbelow 500 500\nvalues 999 999\n"
    script = FLAGS_SCRIPT.replace("PREDICATE", predicate).replace("WORD", str(word))
    result, lines = traced(trace, tmp_path, script, [path, "1000"])
    check_untouched(result, native, lines)
    # Every store to `watched` seen, with the value it left: the adds of
    # the top bit alternate it and 0, the movs store 0, 1, 2, ...
    top = 1 << (8 * word - 1)
    assert fields(lines, "[writes] ") == [["add_carrying", "1000", str(top), "0", str(top), "0"],
                                          ["store_below", "1000", "0", "1", "2", "3"]], lines
    assert fields(lines, "[other] ") == [["0"]], lines


def test_threads_lock_add_every_write_seen(trace, arch, arch_target, run_native, tmp_path):
    path = arch_target("lock_counter")
    worker = [t for _, _, t in objdump_function(path, "worker")]
    lock_adds = [t for t in worker if t.startswith("lock addl $0x1,")]
    # RIP-relative on x86-64; off the GOT's address on 32-bit x86.
    assert len(lock_adds) == 1, worker
    if arch == "x86-64":
        assert [t for t in worker if "<counter>" in t] == lock_adds, worker
    native = run_native(path)
    assert native.stdout == "counter = 40000\n"
    result, lines = traced(trace, tmp_path, LOCK_SCRIPT, [path], options=())
    check_untouched(result, native, lines)
    threads = fields(lines, "[thread] ")
    # 8 threads (none of them the initial thread), 5000 lock adds each, every
    # one seen; the values a thread writes grow (program order).
    assert len(threads) == 8, lines
    for is_main, count, low, high, ordered in threads:
        assert (is_main, count, ordered) == ("0", "5000", "True"), lines
        assert 1 <= int(low) and int(high) <= 40000, lines
    assert max(int(t[3]) for t in threads) == 40000, lines
    assert sum(int(t[1]) for t in threads) == 40000          # == the program's final value
    # Each lock add is also a read; main reads the counter once to print it
    # (objdump). lackey is no help here: it shows each lock add as an L and
    # an M (valgrind makes it a load and a compare-and-swap), one read too many.
    assert fields(lines, "[reads] ") == [["main", "1"], ["worker", "40000"]], lines


@pytest.mark.parametrize("test, seen", [("thread_id > 1", True), ("thread_id < 1", False)], ids=["every-thread", "no-thread"])
def test_thread_predicates_tested_inline_see_every_thread_or_none(trace, arch_target, run_native, tmp_path, test, seen):
    # thread_id is tested in the code cache, against a word each thread
    # gets when it starts (the initial thread included): a test that every
    # thread passes loses nothing, one that none passes sees nothing.
    path = arch_target("lock_counter")
    native = run_native(path)
    watched = 'memory_address >> symbol_range("counter")'
    script = LOCK_SCRIPT.replace(f"({watched})", f"(({test}) & ({watched}))")
    assert script.count(test) == 2, script
    result, lines = traced(trace, tmp_path, script, [path], options=())
    check_untouched(result, native, lines, never_matched=() if seen else ("read", "written"))
    threads = fields(lines, "[thread] ")
    if not seen:
        assert threads == [] and fields(lines, "[reads] ") == [], lines
        return
    assert len(threads) == 8 and sum(int(t[1]) for t in threads) == 40000, lines
    assert fields(lines, "[reads] ") == [["main", "1"], ["worker", "40000"]], lines


EXECUTE_THREADS_SCRIPT = """\
import collections, threading
worker = symbol_range("worker").start
counts = collections.Counter()
lock = threading.Lock()

@memory_execute((TEST) & (memory_address == worker + ADD))
def add(ctx):
    with lock:
        counts["add", ctx.tid] += 1

@memory_execute((TEST) & (memory_address == worker + JG))
def jg(ctx):
    with lock:
        counts["jg", ctx.tid] += 1

@process_exit
def done(ctx):
    for (what, tid), n in sorted(counts.items()):
        print("[%s] %d %d" % (what, tid == ctx.pid, n))
"""


@pytest.mark.parametrize("test, seen", [("thread_id > 1", True), ("thread_id < 1", False)], ids=["every-thread", "no-thread"])
def test_memory_execute_tests_threads_inline_with_and_without_live_flags(trace, arch_target, run_native, tmp_path, test, seen):
    # The lock add writes the flags (none live before it); the jg that
    # closes the loop reads them, so its thread test keeps them: the
    # program's count shows that its loop ran as it does untraced.
    path = arch_target("lock_counter")
    worker = objdump_function(path, "worker")
    (add,) = [pc - worker[0][0] for pc, _, t in worker if t.startswith("lock addl")]
    (jg,) = [pc - worker[0][0] for pc, _, t in worker if t.startswith("jg")]
    native = run_native(path)
    script = EXECUTE_THREADS_SCRIPT.replace("TEST", test).replace("ADD", str(add)).replace("JG", str(jg))
    result, lines = traced(trace, tmp_path, script, [path], options=())
    check_untouched(result, native, lines, never_matched=() if seen else ("add", "jg"))
    if not seen:
        assert lines == [], lines
        return
    for what in ("add", "jg"):
        per_thread = fields(lines, f"[{what}] ")
        assert per_thread == [["0", "5000"]] * 8, lines


# ---------------------------------------------------------------------------
# 8. A store that faults gives no write event

FAULT_SCRIPT = """\
page = AddressSet()
start = {}
good = symbol_range("good")

@function_entry(function_name == "watch")
def watch(ctx):
    page.add(ctx.args[0], ctx.args[1])
    print("[watch] %d" % ctx.args[1])
    start["page"] = ctx.args[0]

@memory_write((memory_address >> page) | (memory_address >> good))
def written(ctx):
    where = "good" if ctx.address in good else "page+%d" % (ctx.address - start["page"])
    print("[w] %s %s %d %d" % (where, ctx.function_name, ctx.size, int.from_bytes(ctx.value, "little")))
"""


def test_faulting_store_gives_no_write_event(trace, arch, arch_target, run_native, tmp_path):
    path = arch_target("fault_store")
    store_int = {"x86-64": ["mov    %esi,(%rdi)", "ret"],
                 "i686": ["mov    0x4(%esp),%eax", "mov    0x8(%esp),%edx", "mov    %edx,(%eax)", "ret"]}
    code = objdump_function(path, "store_int")
    assert [t for _, _, t in code] == store_int[arch]
    (store_pc,) = [VALGRIND_PIE_BASE + pc for pc, _, t in code if t == store_int[arch][-2]]
    native = run_native(path)
    assert "store 1 faulted\nstore 2 faulted\nstore 3 done\ngood = 7\nfaults 2\n" in native.stdout
    # lackey: store_int's stores that happened are the third and good's.
    _, log = run_lackey([path], tmp_path)
    assert sum(1 for kind, _, _, pc in lackey_events(log) if kind == "write" and pc == store_pc) == 2
    result, lines = traced(trace, tmp_path, FAULT_SCRIPT, [path])
    check_untouched(result, native, lines)
    assert lines == ["[watch] 4096", "[w] page+16 store_int 4 333", "[w] good store_int 4 7"], "\n".join(lines)


# ---------------------------------------------------------------------------
# 9. Predicates by function and module leave other code uninstrumented

def instrumented(result):
    counts = [int(n) for n in re.findall(r"memory: (\d+) instructions instrumented", result.stderr)]
    assert len(counts) == 1, str(result)
    return counts[0]


def test_function_and_module_predicates_limit_instrumentation(trace, ftarget, run_native, tmp_path):
    path = ftarget("memwatch")
    native = run_native(path)
    # objdump: bump has one instruction that writes memory (its addl; ret
    # only reads the stack).
    assert [t.split()[0] for _, _, t in objdump_function(path, "bump")][:2] == ["addl", "ret"]
    runs = {}
    for name, predicate in (("bump", 'function_name == "bump"'),
                            ("module", 'module_name == "memwatch"'),
                            ("all", "")):
        script = (
            f"@memory_write({predicate})\n"
            "def w(ctx):\n"
            "    print('[w] %s %s' % (ctx.module, ctx.function_name))\n"
        )
        out = tmp_path / f"{name}.txt"
        result = trace(script, path, options=["-v", "-o", str(out)])
        lines = out.read_text().splitlines()
        assert result.returncode == 0 and result.stdout == native.stdout, str(result)
        runs[name] = (instrumented(result), lines)
    n_bump, bump_lines = runs["bump"]
    n_module, module_lines = runs["module"]
    n_all, all_lines = runs["all"]
    assert n_bump == 1, runs.keys()
    assert bump_lines == ["[w] memwatch bump"] * 25
    assert module_lines and all(line.startswith("[w] memwatch ") for line in module_lines)
    assert any(not line.startswith("[w] memwatch ") for line in all_lines)
    # Wider predicates instrument more instructions.
    assert n_bump < n_module < n_all, (n_bump, n_module, n_all)


# ---------------------------------------------------------------------------
# 10. A Python 2 script in the style of the original ProcessTap

PY2_SCRIPT = """\
#!/usr/bin/env processtap
# Who writes the counter, and with what? (Python 2, as for the original.)
import struct
counter = symbol_range("counter")
writers = {}
values = []

def on_write(ctx):
    name = ctx.function_name
    if not writers.has_key(name):
        writers[name] = 0
    writers[name] += 1
    values.append(struct.unpack("<I", ctx.value)[0])

def on_exit(ctx):
    for name, n in writers.items():
        print "%s wrote the counter %d times" % (name, n)
    print "last value %d, in order: %s" % (values[-1], values == range(1, len(values) + 1))

memory_write(memory_address >> counter)(on_write)
process_exit(on_exit)
"""


def test_python2_memory_script_runs(trace, ftarget, run_native, tmp_path):
    path = ftarget("memwatch")
    native = run_native(path)
    out = tmp_path / "py2.txt"
    result = trace(PY2_SCRIPT, path, options=["-q", "-o", str(out)])
    lines = out.read_text().splitlines()
    assert result.returncode == 0 and result.stdout == native.stdout, str(result)
    assert f"[!] {result.script}: Python 2 script translated to Python 3" in result.stderr.splitlines(), str(result)
    # lib2to3 makes range() a list where it is compared: values are 1..25.
    assert lines == ["bump wrote the counter 25 times", "last value 25, in order: True"], lines


# ---------------------------------------------------------------------------
# A global of a library the program opens later with dlopen

LATER_SCRIPT = """\
total = symbol_range("plugin_total")
start = symbol("plugin_total")
print("at the top level:", repr(total), repr(start))

@memory_read(memory_address >> total)
@memory_write(memory_address >> total)
def access(ctx):
    (first, size), = total
    print("[%s] %s %d %d %d %d" % (ctx.access, ctx.function_name, ctx.address - first, ctx.size,
                                  int.from_bytes(ctx.value, "little"), len(total)))

@memory_write(memory_address >> start)
def first_byte(ctx):
    print("[start] %s %d" % (ctx.module, int.from_bytes(ctx.value, "little")))

@process_exit
def done(ctx):
    print("[exit] %d %d" % (len(total), len(start)))
"""


def test_symbol_range_of_a_library_loaded_later(trace, ftarget, run_native, tmp_path):
    """symbol_range() and symbol() of a name no module defines yet follow it:
    the library's global is watched from its first access after each
    dlopen, and its range leaves the set at each dlclose."""
    path, library = ftarget("dlopen_plugin"), ftarget("libplugin.so")
    body = [t for _, _, t in objdump_function(library, "plugin_compute")]
    # The global is reached through the GOT: one read-modify-write of it.
    assert [t for t in body if "(%" in t and "(%rip)" not in t and not t.startswith("lea")] == ["add    %rax,(%rdx)"], body
    assert nm_symbols(library)["plugin_total"][1] == 8
    native = run_native(path, library, "3")
    results = [int(line.split()[1]) for line in native.stdout.splitlines() if line.startswith("plugin:")]
    assert results == [49, 56, 63], native.stdout

    result, lines = traced(trace, tmp_path, LATER_SCRIPT, [path, library, "3"])
    check_untouched(result, native, lines)
    assert lines[0] == "at the top level: symbol_range('plugin_total') (none loaded) symbol('plugin_total') (none loaded)", lines
    # Each load starts from a fresh zero: the add reads 0 and writes the result.
    expected = []
    for value in results:
        expected += [f"[read] plugin_compute 0 8 0 1", f"[write] plugin_compute 0 8 {value} 1", f"[start] libplugin.so {value}"]
    assert lines[1:] == expected + ["[exit] 0 0"], lines


MISSPELT_SCRIPT = """\
@memory_write(memory_address >> symbol_range("plugin_totl"))
def never(ctx):
    print("write")

# It may match what a handler adds to the set: not the followed symbol's
# warning, but one for a probe that had no event.
heap = AddressSet()

@memory_write((memory_address >> symbol_range("plugin_totl")) | (memory_address >> heap))
def maybe(ctx):
    print("write")
"""


def test_a_followed_symbol_that_never_loads_is_warned_about(trace, ftarget, run_native, tmp_path):
    path, library = ftarget("dlopen_plugin"), ftarget("libplugin.so")
    native = run_native(path, library)
    result, lines = traced(trace, tmp_path, MISSPELT_SCRIPT, [path, library])
    assert (result.returncode, result.stdout) == (native.returncode, native.stdout), str(result)
    assert lines == [], lines
    warnings = [line for line in result.stderr.splitlines() if line.startswith("[!]")]
    assert warnings == [
        "[!] probe never never matched: no module that loaded defines 'plugin_totl'",
        "[!] probe maybe never matched: no memory write matched ((memory.address in symbol_range('plugin_totl') (none loaded))"
        " | (memory.address in AddressSet#2(0 ranges)))",
    ], str(result)
