"""Bad input at every entry point (datasets, configs, checkpoints, images, command lines, output
folders), each run through the job's own ``main``: the job refuses it with a one-line reason that
names the file, key or value at fault, never a traceback, and ``docs/BAD_INPUTS.md`` shows exactly
what it prints."""

from __future__ import annotations

import difflib

import pytest

from tests.reliability import bad_inputs


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return bad_inputs.run_all(tmp_path_factory.mktemp("bad-inputs"))


def test_every_bad_input_is_refused_with_a_reason(results):
    for case, code, text in results:
        where = f"{case.entry}: {case.what}"
        assert code != -1, f"{where}: {text}"  # an exception reached the user as a traceback
        assert code in (1, 2, 3), f"{where}: exit status {code}"
        assert text and "Traceback" not in text, f"{where}: {text!r}"


def test_the_table_in_the_docs_is_what_the_jobs_print(results):
    want = bad_inputs.table(results)
    have = bad_inputs.DOC.read_text()
    diff = "".join(difflib.unified_diff(have.splitlines(True), want.splitlines(True), "docs", "jobs"))
    assert have == want, (
        "docs/BAD_INPUTS.md differs from what the jobs print; check the change, then "
        f"`python -m tests.reliability.bad_inputs --write`:\n{diff}"
    )
