"""`sagsflow kommune ...` (API keys, delivery channels) and `sagsflow sim ...` (simulator, load).

Database: `DATABASE_URL`, else the embedded default's PostgreSQL (`sagsflow dev up`) on `SAGSFLOW_POSTGRES_PORT`.
Secrets are printed once, to stdout, and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import typer
from pydantic import SecretStr, ValidationError

from domain.kommune_protocol import new_secret as new_webhook_secret
from eventlog.channels import ChannelStore
from eventlog.db import Pool
from eventlog.migrate import migrated_pool
from runtime import services
from runtime.config import Settings
from runtime.kommune_config import (
    ChannelConfigError,
    InboxChannel,
    KommuneChannel,
    KommuneSettings,
    PushChannel,
    documents_key_ring,
    load_or_create_secret_file,
    sim_master_secret_path,
)

T = TypeVar("T")
CONNECT_TIMEOUT = 5.0


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(1)


def with_pool(settings: Settings, work: Callable[[Pool], Awaitable[T]]) -> T:
    """Run `work` with a migrated pool (an unreachable database is reported by `cli.main`)."""
    url = services.database_url(settings)

    async def run() -> T:
        async with migrated_pool(url, max_size=2, connect_timeout=CONNECT_TIMEOUT) as pool:
            return await work(pool)

    return asyncio.run(run())


def _kommune_codes(raw: list[str]) -> frozenset[str]:
    from domain.kommuner import is_kommune, normalize_kode

    codes = frozenset(normalize_kode(k) for k in raw)
    for kode in sorted(codes):
        if not is_kommune(kode):
            raise _fail(f"{kode!r} is not one of the 98 kommune codes")
    return codes


def _shares(raw: list[str]) -> dict[str, float]:
    shares: dict[str, float] = {}
    for item in raw:
        kode, sep, share = item.partition("=")
        try:
            value = float(share)
        except ValueError:
            value = -1.0
        if not sep or value <= 0:
            raise ValueError(f"{item!r} is not KODE=SHARE with a share between 0 and 1, e.g. 147=0.1")
        (kode,) = _kommune_codes([kode.strip()])
        shares[kode] = value
    return shares


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _overlap(raw: str) -> timedelta:
    """`24h`, `90m`, `7d`, `30s` or `0` (the old secret stops signing at once)."""
    text = raw.strip().lower()
    number, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "s")
    if not number.isdigit():
        raise _fail(f"--overlap: {raw!r} is not a duration such as 24h, 90m, 7d or 0")
    return timedelta(seconds=int(number) * _UNITS[unit])


def register(app: typer.Typer) -> None:
    kommune = typer.Typer(help="Kommune systems: API keys and delivery channels.", no_args_is_help=True)
    sim = typer.Typer(help="The kommune simulator and the load generator.", no_args_is_help=True)

    @kommune.command("add-key")
    def add_key(
        kode: str = typer.Argument(..., help="Kommune code, e.g. 329"),
        label: str = typer.Option("", help="A note for operators, e.g. the system's name"),
    ) -> None:
        """Create an API key for one kommune's system and print it ONCE (only its hash is stored)."""
        from eventlog.api_keys import ApiKeys, AuthError

        async def work(pool: Pool) -> str:
            return await ApiKeys(pool).create_kommune_key(kode, label=label)

        try:
            key = with_pool(Settings(), work)
        except AuthError as exc:
            raise _fail(str(exc)) from None
        typer.echo(key)
        typer.echo("Store this key now: it is not shown again.", err=True)

    @kommune.command("revoke-key")
    def revoke(key_id: str = typer.Argument(..., help="The key id: the middle part of sfk.<id>.<secret>")) -> None:
        """Revoke an API key by its id."""
        from eventlog.api_keys import ApiKeys

        async def work(pool: Pool) -> bool:
            return await ApiKeys(pool).revoke(key_id)

        if not with_pool(Settings(), work):
            raise _fail(f"no active key with id {key_id!r}")
        typer.echo(f"revoked {key_id}")

    @kommune.command("keys")
    def keys() -> None:
        """List API keys (ids and metadata only)."""
        from eventlog.api_keys import ApiKeyInfo, ApiKeys

        async def work(pool: Pool) -> list[ApiKeyInfo]:
            return await ApiKeys(pool).all_keys()

        for r in with_pool(Settings(), work):
            state = f"revoked {r.revoked_at:%Y-%m-%d}" if r.revoked_at else "active"
            who = r.kommune_kode or "-"
            typer.echo(f"{r.key_id}  {r.role:<7} {who:<4} {state:<18} {r.label}")

    @kommune.command("channel")
    def channel(
        kode: str = typer.Argument(..., help="Kommune code"),
        kind: str = typer.Argument(..., help="push or inbox"),
        url: str | None = typer.Option(None, help="Webhook URL (push)"),
        secret: str | None = typer.Option(
            None, help="Signing secret (push), whsec_<base64>; default: a new random one, printed once"
        ),
        rate: float = typer.Option(2.0, help="Pushes per second to this kommune"),
        burst: int = typer.Option(5, help="Pushes allowed at once after a quiet spell"),
        timeout: float = typer.Option(10.0, help="Push timeout, seconds"),
    ) -> None:
        """Set a kommune's delivery channel: `push --url URL` (prints the new signing secret once) or `inbox`."""
        settings = Settings()
        new_secret: str | None = None
        try:
            if kind == "push":
                if not url:
                    raise _fail("push needs --url")
                new_secret = secret or new_webhook_secret()
                chosen: PushChannel | InboxChannel = PushChannel(
                    url=url, secret=SecretStr(new_secret), rate_per_second=rate, burst=burst, timeout_seconds=timeout
                )
            elif kind == "inbox":
                chosen = InboxChannel()
            else:
                raise _fail("kind must be push or inbox")
            ring = documents_key_ring(settings, KommuneSettings())
        except ValidationError as exc:
            raise _fail(f"invalid channel: {exc.errors()[0]['loc'][-1]}: {exc.errors()[0]['msg']}") from None

        async def work(pool: Pool) -> None:
            await ChannelStore(pool, ring).set_channel(kode, chosen)

        try:
            with_pool(settings, work)
        except ChannelConfigError as exc:
            raise _fail(str(exc)) from None
        typer.echo(f"kommune {kode}: {kind}")
        if new_secret is not None and secret is None:
            typer.echo(new_secret)
            typer.echo(
                "Give this Standard Webhooks secret to the kommune's system now: it is not shown again.", err=True
            )

    @kommune.command("rotate-secret")
    def rotate_secret(
        kode: str = typer.Argument(..., help="Kommune code"),
        overlap: str = typer.Option("24h", help="How long the old secret keeps signing too: 24h, 90m, 7d, 0"),
    ) -> None:
        """Give a push channel a new signing secret and print it ONCE; until the overlap ends every push carries
        two signatures (new and old), so the kommune's system switches without losing a message."""
        settings = Settings()
        span = _overlap(overlap)
        ring = documents_key_ring(settings, KommuneSettings())

        async def work(pool: Pool) -> tuple[str, datetime]:
            return await ChannelStore(pool, ring).rotate_secret(kode, span)

        try:
            fresh, until = with_pool(settings, work)
        except ChannelConfigError as exc:
            raise _fail(str(exc)) from None
        # The secret alone on stdout (for a script to capture); what to do with it on stderr.
        typer.echo(fresh)
        typer.echo(
            f"kommune {kode}: new push secret; the old one also signs until {until:%Y-%m-%d %H:%M:%S %Z} "
            "(workers pick the change up within 30 s). Give this secret to the kommune's system now: it is not "
            "shown again.",
            err=True,
        )

    @kommune.command("channels")
    def channels() -> None:
        """List channels set in the database (others follow the channels file or the dev default)."""
        settings = Settings()
        ring = documents_key_ring(settings, KommuneSettings())

        async def work(pool: Pool) -> dict[str, KommuneChannel]:
            return await ChannelStore(pool, ring).channels()

        for kode, ch in sorted(with_pool(settings, work).items(), key=lambda kv: int(kv[0])):
            typer.echo(f"{kode:>4}  {ch.kind:<5} {getattr(ch, 'url', '')}")

    @sim.command("keys")
    def sim_keys(keys_file: Path | None = typer.Option(None, help="Default: <data dir>/sim-keys.json")) -> None:
        """Create (or reuse) an API key for each of the 98 kommuner for the simulator."""
        from sim.keys import provision_sim_keys

        settings = Settings()
        path = keys_file or settings.data_dir / "sim-keys.json"

        async def work(pool: Pool) -> dict[str, str]:
            return await provision_sim_keys(pool, path)

        created = with_pool(settings, work)
        typer.echo(f"{len(created)} kommune keys in {path}")

    @sim.command("serve")
    def sim_serve(
        port: int | None = typer.Option(None, help="Default: SAGSFLOW_SIM_PORT"),
        api_url: str | None = typer.Option(None, help="Our API; default http://<api_host>:<api_port>"),
        keys_file: Path | None = typer.Option(None, help="JSON kommune code -> API key; default from the data dir"),
        seed: int = typer.Option(1),
        compression: float = typer.Option(1.0, help="Model seconds per real second (86400: a day per second)"),
        extension_unit: str = typer.Option("days", help="days, or seconds under the demo policy"),
        act: bool = typer.Option(True, help="--no-act: receive only"),
        late_kommune: list[str] = typer.Option(
            [], "--late-kommune", help="A kommune whose tasks are answered only after --late-after-days (repeatable)"
        ),
        late_after_days: float = typer.Option(365.0, min=0.001, help="Model days before a late kommune answers"),
    ) -> None:
        """Run the simulator of all 98 kommune systems (push receiver, inbox poller, answers through our API)."""
        from sim.run import run_simulator

        settings = Settings()
        ksettings = KommuneSettings()
        path = keys_file or settings.data_dir / "sim-keys.json"
        api_keys: dict[str, str] = {}
        if path.exists():
            api_keys = json.loads(path.read_text())
        elif act:
            typer.echo(f"no keys file at {path}: run `sagsflow sim keys` first, or pass --no-act", err=True)
            raise typer.Exit(1)
        master = load_or_create_secret_file(sim_master_secret_path(settings))
        base = services.api_url(settings, api_url)
        if act:
            asyncio.run(services.require_api(base))
        asyncio.run(
            run_simulator(
                port=port or settings.sim_port,
                host="127.0.0.1",
                api_url=base,
                api_keys=api_keys,
                master_secret=master,
                inbox_kommuner=ksettings.inbox_set,
                seed=seed,
                compression=compression,
                extension_unit="seconds" if extension_unit == "seconds" else "days",
                act=act,
                late_kommuner=_kommune_codes(late_kommune),
                late_answer_days=late_after_days,
            )
        )

    @sim.command("load")
    def sim_load(
        api_url: str | None = typer.Option(None, help="Our API; default http://<api_host>:<api_port>"),
        rate: float = typer.Option(300.0, help="Applications per week (model time)"),
        compression: float = typer.Option(1.0, help="Model seconds per real second"),
        count: int | None = typer.Option(None, help="Stop after this many; default: until Ctrl-C"),
        seed: int = typer.Option(1),
        token_file: Path | None = typer.Option(
            None, "--token-file", help="The intake identity's token (default: SAGSFLOW_STAFF_TOKEN); never inline"
        ),
        kommune_share: list[str] = typer.Option(
            [], "--kommune-share", help="KODE=SHARE: a fixed share of the applications for one kommune (repeatable)"
        ),
    ) -> None:
        """Submit seeded applications to POST /v1/applications at a Poisson rate."""
        from sim.client import SagsflowApiClient
        from sim.load import ApplicationFactory, run_load
        from sim.population import PopulationSampler
        from sim.staff_token import NoToken, staff_token

        settings = Settings()
        try:
            sampler = PopulationSampler(shares=_shares(kommune_share))
        except ValueError as exc:
            raise _fail(f"--kommune-share: {exc}") from None

        async def go() -> None:
            base = services.api_url(settings, api_url)
            await services.require_api(base)
            try:
                token = staff_token(token_file)
            except NoToken as exc:
                raise _fail(f"sim load: {exc}") from None
            async with SagsflowApiClient(base, intake_token=token) as client:
                stats = await run_load(
                    client,
                    ApplicationFactory(seed, sampler),
                    rate_per_week=rate,
                    compression=compression,
                    count=count,
                )
            typer.echo(f"submitted {stats.submitted}, failed {stats.failed}, by status {dict(stats.by_status)}")

        try:
            asyncio.run(go())
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)

    app.add_typer(kommune, name="kommune")
    _register_caseworker(sim)
    app.add_typer(sim, name="sim")


def _register_caseworker(sim: typer.Typer) -> None:
    @sim.command("caseworkers")
    def sim_caseworkers(
        api_url: str | None = typer.Option(None, help="Our API; default http://<api_host>:<api_port>"),
        token_file: Path | None = typer.Option(
            None, "--token-file", help="A caseworker's token (default: SAGSFLOW_STAFF_TOKEN); never inline"
        ),
        seed: int = typer.Option(1),
        interval: float = typer.Option(5.0, help="Seconds between rounds"),
        leave_kommune: list[str] = typer.Option(
            [], "--leave-kommune", help="Leave this kommune's cases for people to decide (repeatable)"
        ),
    ) -> None:
        """Demo caseworkers: decide cases that are ready for decision, through the ops API."""
        from runtime.temporal import connect
        from sim.caseworker import run_caseworkers
        from sim.staff_token import NoToken, staff_token

        settings = Settings()
        url = services.api_url(settings, api_url)
        leave = _kommune_codes(leave_kommune)

        async def main() -> None:
            client = await connect(settings)
            await services.require_api(url)
            try:
                token = staff_token(token_file)
            except NoToken as exc:
                raise _fail(f"sim caseworkers: {exc}") from None
            await run_caseworkers(
                client,
                url,
                token,
                seed=seed,
                interval_seconds=interval,
                leave_kommuner=leave,
            )

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())
