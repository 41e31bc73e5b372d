"""`sagsflow search-attributes register`: register our custom search attributes on a Temporal cluster.

The names and types come from workflows/search_attributes.py `REGISTRATION`, the one list the workflows set, so a
cluster never holds another copy to drift from. A worker that sets an unregistered attribute fails every workflow
task, so this runs before workers are deployed (deploy/k8s/search-attributes-job.yaml) and fails loudly: any error,
or an attribute already registered with another type, ends with a non-zero exit and one line saying what.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import typer
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from cli.schedules import exit_without_finalizing
from runtime.config import Settings, get_settings
from runtime.temporal import temporal_address
from workflows.search_attributes import REGISTRATION

CONFLICT_EXIT = 1


class SearchAttributeConflict(Exception):
    """The cluster has one of our names with another type: changing a type is a migration, not a registration."""


@dataclass(frozen=True)
class Registered:
    created: list[str]
    present: list[str]


def indexed_type(kind: str) -> IndexedValueType.ValueType:
    """`Keyword` → INDEXED_VALUE_TYPE_KEYWORD, as the `temporal` CLI spells the types in REGISTRATION."""
    return IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")


async def _known(client: Client, namespace: str) -> dict[str, IndexedValueType.ValueType]:
    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    return dict(listed.custom_attributes)


def _conflicts(known: dict[str, IndexedValueType.ValueType]) -> list[str]:
    return [
        f"{name} is {IndexedValueType.Name(known[name]).removeprefix('INDEXED_VALUE_TYPE_').title()}, not {kind}"
        for name, kind in REGISTRATION.items()
        if name in known and known[name] != indexed_type(kind)
    ]


async def register_search_attributes(client: Client, namespace: str) -> Registered:
    """Add those of REGISTRATION the namespace lacks; idempotent. SearchAttributeConflict for a type mismatch."""
    known = await _known(client, namespace)
    if conflicts := _conflicts(known):
        raise SearchAttributeConflict("; ".join(conflicts))
    missing = [name for name in REGISTRATION if name not in known]
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=namespace,
                    search_attributes={name: indexed_type(REGISTRATION[name]) for name in missing},
                )
            )
        except RPCError as exc:
            # Another run registered them between our list and add (two Jobs, a compose restart): check again.
            if exc.status != RPCStatusCode.ALREADY_EXISTS:
                raise
            known = await _known(client, namespace)
            if conflicts := _conflicts(known):
                raise SearchAttributeConflict("; ".join(conflicts)) from None
    return Registered(created=missing, present=[name for name in REGISTRATION if name not in missing])


def _not_up_yet(exc: BaseException) -> bool:
    if isinstance(exc, RuntimeError) and str(exc).startswith("Failed client connect"):
        return True
    return isinstance(exc, RPCError) and exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)


async def register_when_up(settings: Settings, wait_seconds: float) -> Registered:
    """Connect and register, retrying for `wait_seconds` while the cluster is not answering yet (it may be starting
    next to us); then the last connection error goes to cli/main.py, which names the address and the setting."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            # No data converter: the operator service carries no payloads, so the Job needs no codec key.
            client = await Client.connect(temporal_address(settings), namespace=settings.temporal_namespace)
            return await register_search_attributes(client, settings.temporal_namespace)
        except Exception as exc:
            if not _not_up_yet(exc) or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(2.0)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Temporal search attributes (workflows/search_attributes.py).", no_args_is_help=True)

    @group.command("register")
    def register_command(
        wait: float = typer.Option(
            0.0, "--wait", min=0, help="Seconds to keep retrying while Temporal does not answer yet"
        ),
    ) -> None:
        """Register every search attribute the workflows set, in TEMPORAL_NAMESPACE; safe to run again."""
        settings = get_settings()
        try:
            done = asyncio.run(register_when_up(settings, wait))
        except SearchAttributeConflict as exc:
            typer.echo(
                f"search attributes registered with another type in {settings.temporal_namespace}: {exc}", err=True
            )
            exit_without_finalizing(CONFLICT_EXIT)
        for name in done.created:
            typer.echo(f"{name}: created ({REGISTRATION[name]})")
        for name in done.present:
            typer.echo(f"{name}: already registered")
        exit_without_finalizing(0)

    app.add_typer(group, name="search-attributes")
