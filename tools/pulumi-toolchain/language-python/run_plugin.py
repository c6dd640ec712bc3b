"""`RunPlugin` for our language host: how the engine starts a Python policy pack (`--policy-pack DIR`).

Why here: when a language plugin for the pack's runtime exists (ours always does), the engine does not look for
a `pulumi-analyzer-policy-python` plugin; it asks the language host to RunPlugin the pack's directory and reads
the analyzer's port from the streamed stdout (sdk/go/common/resource/plugin/analyzer_plugin.go, NewPolicyAnalyzer).
The SDK's LanguageServer leaves RunPlugin unimplemented, so `pulumi preview --policy-pack` failed with
"Method not implemented!". Like the upstream Python host, the pack runs as `python -u -m pulumi.policy
<engine> <pack dir>` under the pack's own virtualenv (PulumiPolicy.yaml runtime.options.virtualenv).
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from queue import Queue
from typing import Iterator

from pulumi.runtime.proto import language_pb2

CHUNK = 4096


def plugin_python(program_dir: Path, virtualenv: str | None) -> str:
    """The interpreter of the pack's virtualenv; a missing one is the operator's to create, so say how."""
    if not virtualenv:
        return "python3"
    venv = Path(virtualenv) if os.path.isabs(virtualenv) else program_dir / virtualenv
    python = venv / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(
            f"the policy pack's virtualenv {venv} does not exist: create it with `python3 -m venv {venv} && "
            f"{venv}/bin/pip install -r {program_dir}/requirements.txt`")
    return str(python)


def _pump(stream, field: str, queue: Queue) -> None:
    for chunk in iter(lambda: stream.read1(CHUNK), b""):
        queue.put(language_pb2.RunPluginResponse(**{field: chunk}))
    queue.put(None)


def run_plugin(request, context) -> Iterator[language_pb2.RunPluginResponse]:
    """Run the plugin program, stream its stdout/stderr, end with its exit code; stop it when the engine hangs up."""
    program_dir = Path(request.info.program_directory or request.info.root_directory or request.pwd)
    option = request.info.options.fields.get("virtualenv")
    virtualenv = option.string_value if option is not None else None
    if request.kind != "analyzer":
        raise NotImplementedError(f"RunPlugin of a {request.kind!r} plugin: only policy packs (analyzer) are run here")
    try:
        python = plugin_python(program_dir, virtualenv)
    except FileNotFoundError as exc:
        yield language_pb2.RunPluginResponse(stderr=f"{exc}\n".encode())
        yield language_pb2.RunPluginResponse(exitcode=1)
        return
    env = {**os.environ, **{k.split("=", 1)[0]: k.split("=", 1)[1] for k in request.env if "=" in k}}
    if virtualenv:
        env["VIRTUAL_ENV"] = str(Path(python).parent.parent)
    process = subprocess.Popen([python, "-u", "-m", "pulumi.policy", *request.args, str(program_dir)],
                               cwd=request.pwd or str(program_dir), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # The engine cancels the call when it is done with the analyzer: that is the pack's normal end.
    context.add_callback(process.kill)
    queue: Queue = Queue()
    for stream, field in ((process.stdout, "stdout"), (process.stderr, "stderr")):
        threading.Thread(target=_pump, args=(stream, field, queue), daemon=True).start()
    open_streams = 2
    while open_streams:
        item = queue.get()
        if item is None:
            open_streams -= 1
            continue
        yield item
    yield language_pb2.RunPluginResponse(exitcode=process.wait())
