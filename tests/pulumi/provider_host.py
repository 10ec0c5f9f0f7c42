"""The engine's side of a dynamic provider, driven here: the SDK's own provider host
(`python -m pulumi.dynamic`, the process the engine starts, run in the program directory) over
gRPC, with the calls and the state bookkeeping of the engine's steps.

`HostedResource` keeps what the engine keeps per resource (id, checked inputs, outputs) and
updates it as the engine does: create stores the answer's properties; update stores exactly what
`update` returned (nothing merged); refresh (`read`) stores the answer's properties, or drops the
resource when the answer has no id; delete forgets it. Olds passed to diff/update/read are the
stored outputs, as the engine passes them.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys

import dill
import grpc
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from harness import ROOT

PROVIDER_KEY = "__provider"


def _run(coro):
    loop = asyncio.new_event_loop()  # private: asyncio.run would unset the SDK's loop
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def serialize(props: dict):
    return _run(rpc.serialize_properties(props, {}))


def deserialize(struct) -> dict:
    return rpc.deserialize_properties(struct, keep_unknowns=True)


def blob(provider) -> str:
    """`provider` serialized as the SDK ships it in `__provider`."""
    return base64.b64encode(dill.dumps(provider, recurse=True)).decode()


class ProviderHost:
    def __init__(self):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pulumi.dynamic"],
            cwd=ROOT,
            env={**env, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            port = int(self.proc.stdout.readline().strip())
            self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
            self.stub.Configure(provider_pb2.ConfigureRequest(args=serialize({})))
        except BaseException:
            self.close()
            raise

    def close(self):
        if getattr(self, "channel", None):
            self.channel.close()
        self.proc.kill()
        self.proc.communicate()


class HostedResource:
    def __init__(self, host: ProviderHost, provider, urn: str):
        self.host, self.urn, self.blob = host, urn, blob(provider)
        self.id = None
        self.inputs: dict = {}
        self.outputs: dict = {}

    def _props(self, props):
        return serialize({**props, PROVIDER_KEY: self.blob})

    @staticmethod
    def _plain(struct):
        return {k: v for k, v in deserialize(struct).items() if k != PROVIDER_KEY}

    def check(self, news: dict) -> dict:
        resp = self.host.stub.Check(
            provider_pb2.CheckRequest(urn=self.urn, olds=self._props(self.inputs), news=self._props(news))
        )
        return self._plain(resp.inputs)

    def diff(self, news: dict) -> provider_pb2.DiffResponse:
        return self.host.stub.Diff(
            provider_pb2.DiffRequest(
                id=self.id, urn=self.urn, olds=self._props(self.outputs), news=self._props(self.check(news))
            )
        )

    def create(self, news: dict) -> dict:
        checked = self.check(news)
        resp = self.host.stub.Create(
            provider_pb2.CreateRequest(urn=self.urn, properties=self._props(checked))
        )
        self.id, self.inputs, self.outputs = resp.id, checked, self._plain(resp.properties)
        return self.outputs

    def up(self, news: dict) -> str:
        """What `pulumi up` does with new inputs: "same", "update" or "replace"."""
        d = self.diff(news)
        if d.changes != provider_pb2.DiffResponse.DIFF_SOME:
            return "same"
        if d.replaces:
            self.delete()
            self.create(news)
            return "replace"
        checked = self.check(news)
        resp = self.host.stub.Update(
            provider_pb2.UpdateRequest(
                id=self.id, urn=self.urn, olds=self._props(self.outputs), news=self._props(checked)
            )
        )
        self.inputs, self.outputs = checked, self._plain(resp.properties)
        return "update"

    def refresh(self) -> bool:
        """`pulumi refresh`: False (and the resource forgotten) when the provider reports it gone."""
        resp = self.host.stub.Read(
            provider_pb2.ReadRequest(
                id=self.id,
                urn=self.urn,
                properties=self._props(self.outputs),
                inputs=self._props(self.inputs),
            )
        )
        if not resp.id:
            self.id, self.outputs = None, {}
            return False
        self.id, self.outputs = resp.id, self._plain(resp.properties)
        return True

    def delete(self) -> None:
        self.host.stub.Delete(
            provider_pb2.DeleteRequest(id=self.id, urn=self.urn, properties=self._props(self.outputs))
        )
        self.id, self.outputs = None, {}

    def delete_again(self, outputs: dict, id_: str) -> None:
        """Delete with a stale state: what `destroy` does after the thing vanished outside."""
        self.host.stub.Delete(
            provider_pb2.DeleteRequest(id=id_, urn=self.urn, properties=self._props(outputs))
        )
