"""aiogram's types are built when first used (bot/lazy_types.py), and every one still can be."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import ROOT


def run(script: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_types_the_bot_never_met_are_not_built_and_every_type_builds_on_demand() -> None:
    out = run(
        """
        from bot.lazy_types import import_aiogram
        assert import_aiogram() is True
        assert import_aiogram() is False  # once per process
        import aiogram.methods, aiogram.types
        from bot.lazy_types import _models
        types = _models(aiogram.types)
        print("types built at import", sum(m.__pydantic_complete__ for m in types), len(types))
        models = types + _models(aiogram.methods)
        for model in models:  # what pydantic does when a deferred model is first used
            model.model_rebuild(raise_errors=True, _parent_namespace_depth=0)
        print("built after", sum(m.__pydantic_complete__ for m in models), len(models))
        """
    )
    lines = [line.split() for line in out.splitlines()]
    at_import, types = int(lines[0][-2]), int(lines[0][-1])
    assert types > 300
    assert at_import < types // 10  # the self-check's few
    assert lines[1][-2] == lines[1][-1]


def test_a_failing_check_builds_every_type_as_aiogram_does() -> None:
    out = run(
        """
        import bot.lazy_types as lazy
        def broken():
            raise RuntimeError("a future pydantic")
        lazy._self_check = broken
        assert lazy.import_aiogram() is True
        import aiogram.types
        models = lazy._models(aiogram.types)
        print(all(m.__pydantic_complete__ for m in models))
        """
    )
    assert out.strip() == "True"
