"""Tests for the public package ptap: what it exports and what it does not."""

import ast
import pathlib

import ptap
from ptap import errors, predicates, probes

PACKAGE_DIR = pathlib.Path(ptap.__file__).parent


def test_all_names_exist():
    for name in ptap.__all__:
        assert hasattr(ptap, name), name


def test_exports_the_contract_names():
    contract = {
        "function_entry", "function_exit", "syscall_entry", "syscall_exit",
        "memory_read", "memory_write", "memory_execute", "branch",
        "process_exit", "thread_start", "thread_exit", "module_load",
        "process_id", "thread_id", "module_name", "function_name",
        "function_address", "syscall_num", "syscall_name", "memory_address",
        "memory_size", "memory_value", "branch_taken", "instruction_address",
        "MissingPrototype", "MemoryFault", "Predicate", "Probe",
        "include", "declare", "prototype", "syscall",
    }
    assert contract <= set(ptap.__all__)
    assert len(ptap.__all__) == len(set(ptap.__all__))


def test_exports_are_the_defining_objects():
    assert ptap.Predicate is predicates.Predicate
    assert ptap.Probe is probes.Probe
    assert ptap.function_name is predicates.function_name
    assert ptap.MemoryFault is errors.MemoryFault


def test_prototype_names_are_the_defining_objects():
    from ptap import cdecl, prototypes, syscalls

    assert ptap.include is prototypes.include
    assert ptap.declare is prototypes.declare
    assert ptap.prototype is prototypes.prototype
    assert ptap.syscall is syscalls.syscall
    assert ptap.Prototype is cdecl.Prototype
    assert ptap.PrototypeError is errors.PrototypeError


def test_importing_ptap_imports_no_parser_or_preprocessor():
    # The target imports ptap at every start: pycparser and subprocess
    # are for the rare script that declares or prepares something.
    import subprocess
    import sys

    code = (
        "import sys, ptap; "
        "print(sorted(m for m in ('pycparser', 'subprocess', 'ptap.cparse', 'ptap.prepare') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        cwd=PACKAGE_DIR.parent, check=True,
    )
    assert result.stdout == "[]\n"


#: Modules that cost a traced process milliseconds to import, and that a
#: script which declares, includes and parses nothing must not bring in.
SLOW_MODULES = (
    "dataclasses", "inspect", "re", "enum", "functools", "collections", "contextlib",
    "json", "traceback", "linecache", "tokenize", "typing", "difflib", "subprocess",
    "pycparser", "lib2to3", "ptap.cparse", "ptap.prepare", "ptap.legacy", "ptap.headers",
)

LOAD_AN_EMPTY_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
before = set(sys.modules)
import ptap.script
for _ in range(2):  # Compiled, then from the cache.
    ptap.script.run_script(sys.argv[2], exe="/bin/true", argv=["/bin/true"])
print(sorted(set(sys.modules) - before))
"""


def test_loading_a_script_imports_nothing_slow(tmp_path):
    # Every process the target starts imports ptap and runs the script:
    # the start-up budget has a few milliseconds for all of it.
    import subprocess
    import sys

    script = tmp_path / "empty.ptap"
    script.write_text("@process_exit\ndef bye(ctx):\n    pass\n")
    result = subprocess.run(
        [sys.executable, "-I", "-c", LOAD_AN_EMPTY_SCRIPT, str(PACKAGE_DIR.parent), str(script)],
        capture_output=True, text=True, check=True,
        env={"PTAP_CACHE_DIR": str(tmp_path / "cache")},
    )
    imported = set(ast.literal_eval(result.stdout))
    assert "ptap.probes" in imported  # It did load the package.
    assert not imported & set(SLOW_MODULES), sorted(imported & set(SLOW_MODULES))


def test_exception_bases():
    assert issubclass(ptap.MissingPrototype, LookupError)
    assert issubclass(ptap.MemoryFault, OSError)
    assert issubclass(errors.ScriptError, Exception)


def test_every_module_and_top_level_definition_has_a_docstring():
    for path in PACKAGE_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), path.name
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                assert ast.get_docstring(node), f"{path.name}: {node.name}"


def test_native_module_is_never_imported_at_module_level():
    # The package must import outside a traced program (these tests do);
    # only functions that run inside one may import _ptap.
    for path in PACKAGE_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [alias.name for alias in node.names]
            else:
                continue
            assert not any("_ptap" in name for name in names), path.name


def test_stub_for_the_native_module_exists():
    assert (PACKAGE_DIR / "_ptap.pyi").is_file()


def test_helpers_outside_a_traced_program_say_so():
    import pytest

    for call in (lambda: ptap.symbol("malloc"), lambda: ptap.module(0x1000)):
        with pytest.raises(RuntimeError, match="inside a program traced by processtap"):
            call()
    with pytest.raises(TypeError):
        ptap.symbol(1.5)
