"""Generated hostile scripts cannot hurt the target (issue 11): a fixed seed, 60 scripts.

Each script states what must happen (see tests/hostile_scripts.py); a
failure shows how to run that one script again, its text and its output.
The full campaign is ``/usr/bin/python3.11 tests/hostile_scripts.py --seed 1
--count 300 --jobs 2``.
"""

import pytest

import hostile_scripts

SEED = 11
COUNT = 60


@pytest.fixture(scope="module")
def results(processtap, targets_dir, tmp_path_factory):
    if not (targets_dir / "workers").is_file():
        pytest.fail(f"{targets_dir} lacks the workers target (build tests/targets)")
    workdir = tmp_path_factory.mktemp("hostile")
    fx = hostile_scripts.fixture(workdir, targets_dir)
    return {r[0].index: r for r in hostile_scripts.campaign(SEED, range(COUNT), workdir, jobs=2, fx=fx)}


@pytest.mark.parametrize("index", range(COUNT))
def test_hostile_script(results, index):
    script, path, run, problems = results[index]
    assert not problems, hostile_scripts.report(script, path, run, problems)


def test_the_generator_is_seeded():
    assert hostile_scripts.generate(SEED, 7).text == hostile_scripts.generate(SEED, 7).text
    assert hostile_scripts.generate(SEED, 7).text != hostile_scripts.generate(SEED + 1, 7).text


def test_every_script_states_what_it_expects():
    for index in range(COUNT):
        expect = hostile_scripts.expectation(hostile_scripts.generate(SEED, index).text)
        assert expect["exit_marker"] == expect["target_runs"]
        assert expect["ok"] or expect["tracebacks"] or not expect["target_runs"] or expect["stdout"] != ["same"] \
            or expect["stderr_has"], f"script {index} checks nothing of its own"
