"""Tests for ptap.probes: the decorators, their checks and the registry."""

import functools

import pytest

import ptap
from ptap import (
    branch,
    branch_taken,
    function_entry,
    function_exit,
    function_name,
    memory_address,
    memory_execute,
    memory_read,
    memory_value,
    memory_write,
    module_load,
    module_name,
    process_exit,
    process_id,
    syscall_entry,
    syscall_exit,
    syscall_name,
    thread_exit,
    thread_id,
    thread_start,
)
from ptap.predicates import ALWAYS, VARIABLES
from ptap.probes import (
    PROBE_KINDS,
    Probe,
    Registry,
    current_registry,
    use_registry,
)


# Handlers defined at module level have plain names, as in a script.
def malloc_entry(ctx):
    pass


def on_load(ctx):
    pass


def on_exit(ctx):
    pass


def handler(ctx):
    pass


DECORATORS = [
    function_entry, function_exit, syscall_entry, syscall_exit, memory_read,
    memory_write, memory_execute, branch, process_exit, thread_start,
    thread_exit, module_load,
]


def test_there_is_a_decorator_for_every_kind():
    assert [decorator.__name__ for decorator in DECORATORS] == list(PROBE_KINDS)


def test_every_kind_provides_known_variables():
    for kind in PROBE_KINDS.values():
        assert set(kind.variables) <= set(VARIABLES)
        assert {"process_id", "thread_id"} <= set(kind.variables)


def test_decorator_with_predicate(registry):
    function_entry(function_name == "malloc")(malloc_entry)

    [probe] = registry.probes
    assert probe == Probe(
        kind="function_entry",
        predicate=function_name == "malloc",
        handler=malloc_entry,
        name="malloc_entry",
    )


def test_decorator_with_empty_parentheses(registry):
    @process_exit()
    def on_exit(ctx):
        pass

    [probe] = registry.probes
    assert probe.kind == "process_exit"
    assert probe.predicate is ALWAYS
    assert probe.handler is on_exit


def test_bare_decorator(registry):
    @thread_start
    def on_thread(ctx):
        pass

    [probe] = registry.probes
    assert probe.kind == "thread_start"
    assert probe.predicate is ALWAYS
    assert probe.handler is on_thread


def test_called_with_the_handler_as_old_scripts_do(registry):
    assert process_exit(on_exit) is on_exit
    assert [probe.handler for probe in registry] == [on_exit]


@pytest.mark.parametrize("decorator", DECORATORS)
def test_every_decorator_returns_the_handler_unchanged(registry, decorator):
    assert decorator(handler) is handler
    assert decorator()(handler) is handler
    assert decorator(process_id == 1)(handler) is handler
    assert [probe.kind for probe in registry] == [decorator.__name__] * 3


def test_stacked_decorators_register_in_order(registry):
    @function_exit(function_name == "free")
    @function_entry(function_name == "malloc")
    def trace(ctx):
        pass

    assert [(p.kind, p.handler) for p in registry] == [
        ("function_entry", trace),
        ("function_exit", trace),
    ]


def test_probes_keep_registration_order_across_handlers(registry):
    @module_load
    def first(ctx):
        pass

    @syscall_entry(syscall_name == "openat")
    def second(ctx):
        pass

    @branch(branch_taken == True)
    def third(ctx):
        pass

    assert [probe.handler for probe in registry.probes] == [first, second, third]
    assert len(registry) == 3


class Tracer:
    def on_exit(self, ctx):
        pass


def test_probe_name_is_the_qualified_name(registry):
    process_exit(Tracer().on_exit)
    process_exit(on_exit)
    assert [probe.name for probe in registry] == ["Tracer.on_exit", "on_exit"]


def test_banner_kind_and_describe(registry):
    module_load(module_name.like("libc*"))(on_load)

    [probe] = registry.probes
    assert probe.banner_kind == "module.load"
    assert probe.describe() == '(module.name like "libc*") on_load'


@pytest.mark.parametrize(
    "kind, banner",
    [
        ("function_entry", "function.entry"),
        ("syscall_exit", "syscall.exit"),
        ("memory_execute", "memory.execute"),
        ("branch", "branch"),
        ("process_exit", "process.exit"),
        ("thread_start", "thread.start"),
    ],
)
def test_banner_names(kind, banner):
    assert PROBE_KINDS[kind].banner_name == banner


def test_describe_without_predicate(registry):
    process_exit(on_exit)

    assert registry.probes[0].describe() == "(true) on_exit"


def test_predicate_with_a_variable_the_kind_lacks(registry):
    with pytest.raises(ValueError) as caught:
        module_load(syscall_name == "open")(on_load)

    assert str(caught.value) == (
        "module_load probe 'on_load': predicate uses syscall_name, which "
        "module_load does not provide (it provides: process_id, thread_id, "
        "module_name)"
    )
    assert len(registry) == 0


@pytest.mark.parametrize(
    "decorator, predicate, variable",
    [
        (syscall_entry, function_name == "malloc", "function_name"),
        (function_entry, memory_address == 0x10, "memory_address"),
        (memory_execute, memory_value == 0, "memory_value"),
        (branch, memory_address == 0x10, "memory_address"),
        (process_exit, module_name == "libc.so.6", "module_name"),
        (memory_read, branch_taken == True, "branch_taken"),
    ],
)
def test_validation_names_probe_and_variable(registry, decorator, predicate, variable):
    with pytest.raises(ValueError, match=f"'handler': predicate uses {variable}"):
        decorator(predicate & (thread_id == 1))(handler)


def test_non_predicate_argument_is_a_type_error(registry):
    with pytest.raises(TypeError, match="predicate"):
        function_entry("malloc")
    with pytest.raises(TypeError, match="predicate"):
        function_entry(function_name)


def test_decorating_a_non_callable_is_a_type_error(registry):
    with pytest.raises(TypeError, match="handler"):
        function_entry(function_name == "malloc")(42)


@pytest.mark.parametrize(
    "handler",
    [lambda: None, lambda ctx, extra: None, lambda *, ctx: None],
)
def test_handler_must_take_one_argument(registry, handler):
    with pytest.raises(TypeError, match=r"one argument \(ctx\)"):
        process_exit(handler)
    assert len(registry) == 0


@pytest.mark.parametrize(
    "handler",
    [lambda ctx: None, lambda ctx, extra=1: None, lambda *args: None,
     functools.partial(lambda tag, ctx: None, "tag")],
)
def test_handlers_callable_with_one_argument_are_accepted(registry, handler):
    process_exit(handler)
    assert len(registry) == 1


def _wrapped(handler):
    """Return *handler* wrapped as decorators do, by a function taking anything."""

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        return handler(*args, **kwargs)

    return wrapper


#: Plain functions of every shape of signature, and decorated ones whose
#: signature inspect takes from elsewhere (``__wrapped__``).
HANDLER_SHAPES = [
    lambda: None,
    lambda ctx: None,
    lambda ctx, /: None,
    lambda ctx, extra: None,
    lambda ctx, extra=1: None,
    lambda ctx=None: None,
    lambda ctx=None, /, extra=2: None,
    lambda *args: None,
    lambda ctx, *args: None,
    lambda ctx, extra, *args: None,
    lambda **kwargs: None,
    lambda ctx, **kwargs: None,
    lambda *, ctx: None,
    lambda ctx, *, flag: None,
    lambda ctx, *, flag=False: None,
    lambda *args, flag: None,
    lambda *args, flag=1, **kwargs: None,
    _wrapped(lambda ctx: None),
    _wrapped(lambda ctx, extra: None),
]


@pytest.mark.parametrize("handler", HANDLER_SHAPES)
def test_handler_check_agrees_with_inspect(registry, handler):
    # The check reads plain functions' code objects instead of asking
    # inspect (too slow to import at every start): it must decide alike.
    import inspect

    try:
        inspect.signature(handler).bind(None)
    except TypeError:
        accepted_by_inspect = False
    else:
        accepted_by_inspect = True
    try:
        process_exit(handler)
    except TypeError:
        accepted = False
    else:
        accepted = True
    assert accepted == accepted_by_inspect
    assert len(registry) == accepted


def test_use_registry_isolates_and_restores():
    outer = current_registry()
    inner = Registry()
    with use_registry(inner):
        assert current_registry() is inner
        process_exit(lambda ctx: None)
    assert current_registry() is outer
    assert len(inner) == 1


def test_decorators_are_exported_by_the_package():
    for decorator in DECORATORS:
        assert getattr(ptap, decorator.__name__) is decorator


def test_unknown_syscall_name_is_an_error_at_decoration(registry):
    with pytest.raises(ValueError) as caught:
        syscall_entry(syscall_name == "opnat")(handler)

    assert str(caught.value) == (
        "syscall_entry probe 'handler': no system call is named 'opnat' "
        "(did you mean 'openat' or 'openat2' or 'open'?)"
    )
    assert len(registry) == 0


@pytest.mark.parametrize(
    "predicate",
    [
        syscall_name >> ["open", "opnat"],
        (process_id == 1) & ~(syscall_name != "wrte"),
        (syscall_name == "read") | (syscall_name >> ["clsoe"]),
    ],
)
def test_unknown_syscall_names_anywhere_in_the_predicate(registry, predicate):
    with pytest.raises(ValueError, match="no system call is named"):
        syscall_exit(predicate)(handler)


def test_known_syscall_names_and_globs_pass(registry):
    syscall_entry(syscall_name >> ["open", "openat", "read"])(handler)
    syscall_exit(syscall_name.like("open*") & (syscall_name != "openat2"))(handler)

    assert len(registry) == 2


def on_branch(ctx):
    pass


def test_branch_once_is_kept_and_described(registry):
    branch(branch_taken == True, once=True)(on_branch)
    branch(on_branch)

    once, every = registry.probes
    assert (once.once, every.once) == (True, False)
    assert once.describe() == "(branch.taken == true) once on_branch"
    assert every.describe() == "(true) on_branch"


@pytest.mark.parametrize("once", [1, "yes", None])
def test_branch_once_takes_a_bool(registry, once):
    with pytest.raises(TypeError, match="branch\\(once=...\\) takes True or False"):
        branch(once=once)
    assert len(registry) == 0


def test_once_is_for_branch_probes_only(registry):
    with pytest.raises(TypeError):
        function_entry(function_name == "f", once=True)


def test_count_probes_register_without_a_handler_and_return_their_counts():
    from ptap import probes
    from ptap.aggregations import NativeCount
    from ptap.predicates import function_name, syscall_name

    registry = probes.Registry()
    with probes.use_registry(registry):
        calls = probes.function_entry(function_name == "malloc", count="function")
        made = probes.syscall_exit(syscall_name == "read", count="thread")
        with pytest.raises(TypeError, match="syscall_entry probes count by 'syscall', 'thread'"):
            probes.syscall_entry(count="caller")
        with pytest.raises(TypeError, match="takes a predicate and no handler"):
            probes.function_entry(print, count="function")
    assert isinstance(calls, NativeCount) and (calls.probe_index, made.probe_index) == (0, 1)
    assert [(p.kind, p.count, p.handler, p.name) for p in registry] == [
        ("function_entry", "function", None, "count(function)"),
        ("syscall_exit", "thread", None, "count(thread)"),
    ]
    assert dict(calls.items()) == {}  # Outside the target nothing is counted.
    with pytest.raises(TypeError, match="count= probes take no handler"):
        calls(lambda ctx: None)
