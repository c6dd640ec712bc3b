"""A Python language host for the Pulumi engine, built on the SDK's own LanguageRuntime server.

Why ours: the upstream host (module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) is not
served by the Go module proxy these machines reach, at any version. The Python SDK ships the server that the
Automation API uses for inline programs (`pulumi.automation._server.LanguageServer`); this file serves it as a
plugin: the engine starts us with its address as the last argument, we print our port and serve, and `Run`
executes the project's entry point (`__main__.py`) in-process, exactly as an inline program runs.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from concurrent import futures
from pathlib import Path

import grpc
from pulumi.automation._server import LanguageServer
from pulumi.runtime.proto import language_pb2_grpc

from run_plugin import run_plugin

MAX_MESSAGE = 400 * 1024 * 1024   # the engine's own limit for gRPC messages


class ProjectLanguageServer(LanguageServer):
    def __init__(self, engine_address: str):
        super().__init__(self._run_entry_point)
        self.engine_address = engine_address
        self.entry_point: Path | None = None

    def _run_entry_point(self) -> None:
        assert self.entry_point is not None
        project_dir = str(self.entry_point.parent)
        os.chdir(project_dir)
        sys.path.insert(0, project_dir)
        runpy.run_path(str(self.entry_point), run_name="__main__")

    def Run(self, request, context):
        directory = Path(request.info.program_directory or request.pwd or os.getcwd())
        entry = request.info.entry_point or "."
        path = directory / entry
        self.entry_point = path / "__main__.py" if path.is_dir() else path
        if not request.args and self.engine_address:
            request.args.append(self.engine_address)   # LanguageServer reads the engine address from args[0]
        return super().Run(request, context)

    def RunPlugin(self, request, context):
        return run_plugin(request, context)   # policy packs (`--policy-pack`): see run_plugin.py


def main(argv: list[str]) -> None:
    engine_address = next((a for a in reversed(argv) if not a.startswith("-")), "")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.max_send_message_length", MAX_MESSAGE),
                                  ("grpc.max_receive_message_length", MAX_MESSAGE)])
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(ProjectLanguageServer(engine_address), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    # The engine interrupts its plugins when it is done with them: that is the normal way out, not an error.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: server.stop(grace=None))
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main(sys.argv[1:])
