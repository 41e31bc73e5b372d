"""`sagsflow replay`: the replay gate before a deploy (workflows/replay.py does the work).

Without paths it fetches histories from the cluster (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE) and decodes them with the
production codec key ring (SAGSFLOW_CODEC_KEY_FILE); with paths it replays files, decoded with `--key-ring` if given
(the saved histories in tests/histories are encrypted with their own test ring), else with the codec key ring.
One line per workflow type, one per failure; exit 1 on any failure, so a script or CI job stops the rollout.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from cli.schedules import exit_without_finalizing
from runtime.config import get_settings
from runtime.crypto import KeyRing, KeyRingError

# Per workflow type; deploy/replay-gate.sh passes its own N (default the same).
DEFAULT_LIMIT = 50


def merged_ring(files: list[Path]) -> KeyRing:
    """One ring holding every key of the rings given (the first one's active key): histories of a rotation span
    keys from more than one ring file."""
    rings = []
    for path in files:
        try:
            rings.append(KeyRing.from_json(path.read_text()))
        except (OSError, KeyRingError) as exc:
            raise typer.BadParameter(f"{path}: {exc}", param_hint="--key-ring") from None
    keys: dict[str, bytes] = {}
    for ring in rings:
        keys.update(ring.keys)
    return KeyRing(active=rings[0].active, keys=keys)


def register(app: typer.Typer) -> None:
    @app.command("replay")
    def replay_command(
        paths: Annotated[
            list[Path] | None,
            typer.Argument(
                help="History files or directories of them (`temporal workflow show -o json` output, or the saved "
                "histories of tests/histories). Without any: fetch histories from the cluster.",
                exists=True,
            ),
        ] = None,
        limit: Annotated[
            int, typer.Option(min=1, help="From the cluster: the N most recent executions of each workflow type.")
        ] = DEFAULT_LIMIT,
        query: Annotated[
            str | None,
            typer.Option(help="From the cluster: a visibility query narrowing what is fetched, e.g. 'CloseTime > …'."),
        ] = None,
        key_ring: Annotated[
            list[Path] | None,
            typer.Option(
                "--key-ring",
                help="A key ring file to decode with instead of the codec key ring (repeatable; keys are merged).",
                exists=True,
                dir_okay=False,
            ),
        ] = None,
    ) -> None:
        """Replay workflow histories against this code; exit 1 if any would not replay (a non-deterministic change)."""
        settings = get_settings()

        # Imported here: every `sagsflow` command would otherwise load the workflows and the replayer at start-up.
        from runtime.temporal import connect
        from runtime.temporal import key_ring as codec_key_ring
        from workflows.replay import ReplayReport, from_cluster, from_files, replay

        async def run() -> ReplayReport:

            ring = merged_ring(key_ring) if key_ring else codec_key_ring(settings)
            if paths:
                return await replay(from_files(paths), ring)
            client = await connect(settings)
            return await replay(from_cluster(client, limit=limit, query=query), ring)

        report = asyncio.run(run())
        for line in report.lines():
            typer.echo(line)
        # Files named but no history among them is a mistake (a wrong directory), not a pass; an empty cluster is not.
        exit_without_finalizing(1 if paths and not report.replayed else report.exit_code)
