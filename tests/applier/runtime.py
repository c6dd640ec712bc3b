"""Runs a Pulumi program (its __main__.py) under the mock runtime and waits for every registration.

Mirrors pulumi.runtime.mocks.test and the language host: fresh settings and root Stack per run (so one process
can run `up` many times), config set before the program starts, the program run as __main__ from its own
directory, then run_pulumi_func -> wait_for_rpcs until no registration or apply is outstanding.
"""

from __future__ import annotations

import asyncio
import os
import runpy
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pulumi
from pulumi.runtime.settings import SETTINGS, get_root_resource, set_root_resource
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from .errors import ResourceError
from .registration import ApplyingMonitor


def _program_modules(project_dir: Path) -> dict[str, ModuleType]:
    """The program's own modules in sys.modules: the project's tests/ excluded, and so is the virtualenv, which
    lives inside the project (Pulumi.yaml's `virtualenv: venv`): re-importing pulumi itself would give the
    program a second SDK with no config and no monitor."""
    root = str(project_dir.resolve()) + os.sep
    outside = tuple(str(Path(p).resolve()) + os.sep for p in (project_dir / "tests", sys.prefix, sys.base_prefix))

    def is_program(file: str) -> bool:
        return file.startswith(root) and not file.startswith(outside) and "site-packages" not in file

    return {name: module for name, module in list(sys.modules.items())
            if is_program(getattr(module, "__file__", None) or "")}


@contextmanager
def _fresh_program_modules(project_dir: Path) -> Iterator[None]:
    """Each run imports the program afresh, as a new `pulumi up` process would; afterwards the modules other
    code already imported are put back, so their classes (exceptions, dataclasses) keep their identity."""
    saved = _program_modules(project_dir)
    for name in saved:
        del sys.modules[name]
    try:
        yield
    finally:
        for name in _program_modules(project_dir):
            del sys.modules[name]
        sys.modules.update(saved)


def _quiet_reported_failures(loop: asyncio.AbstractEventLoop) -> None:
    """A failed resource rejects its outputs; futures nobody awaited would each log the error again at garbage
    collection. It is already in ApplyFailed, so only other, unexpected errors reach the default handler."""
    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if not isinstance(context.get("exception"), ResourceError):
            loop.default_exception_handler(context)
    loop.set_exception_handler(handler)
    if not getattr(loop, "_wst_apl_executor", False):
        # The engine runs registrations on executor threads; containers waiting for health hold one each.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=32, thread_name_prefix="applier"))
        loop._wst_apl_executor = True


def run_program(project_dir: Path, project: str, stack: str, config: dict[str, str], secret_keys: list[str],
                monitor: ApplyingMonitor) -> dict[str, Any]:
    """Run the program; return its resolved stack outputs. Program and registration errors propagate."""
    set_root_resource(None)
    _quiet_reported_failures(_ensure_event_loop())
    pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config, secret_keys)
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    cwd, path = os.getcwd(), list(sys.path)
    os.chdir(project_dir)
    sys.path.insert(0, str(project_dir))
    try:
        with _fresh_program_modules(project_dir):
            main = str(project_dir / "__main__.py")
            _sync_await(run_pulumi_func(lambda: runpy.run_path(main, run_name="__main__")))
            exports = getattr(get_root_resource(), "outputs", {}) or {}
            return {key: _sync_await(pulumi.Output.from_input(value).future()) for key, value in exports.items()}
    finally:
        os.chdir(cwd)
        sys.path[:] = path
