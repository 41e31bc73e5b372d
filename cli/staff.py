"""`sagsflow staff add NAME --role caseworker`: a person's bearer token from the embedded default's local issuer.

Production people sign in at the organisation's OpenID Connect provider (SAGSFLOW_OIDC_ISSUER); this command then
refuses, since a token we minted would not be accepted there. It prints only the token, so a shell can capture it:
`export TOKEN=$(sagsflow staff add 'Karin Sagsbehandler' --role caseworker)`.
"""

from __future__ import annotations

import typer

from runtime.config import get_settings
from runtime.identity import DEFAULT_TTL, LOCAL_KEY_FILE, ROLES, LocalIssuer, Role, parse_duration

_ROLE_HELP = "A role the person holds (repeat for more): " + ", ".join(ROLES)


def register(app: typer.Typer) -> None:
    staff = typer.Typer(help="Staff identities (the embedded default's local issuer).", no_args_is_help=True)

    @staff.command("add")
    def add(
        name: str = typer.Argument(..., help="The person's name, as the Web UI and the API show it"),
        role: list[str] = typer.Option(..., "--role", help=_ROLE_HELP),
        subject: str | None = typer.Option(None, "--subject", help="Stable id (default: derived from the name)"),
        ttl: str = typer.Option(
            f"{int(DEFAULT_TTL.total_seconds()) // 3600}h", "--ttl", help="Lifetime, e.g. 30m, 12h"
        ),
    ) -> None:
        """Print a bearer token naming this person with these roles (and nothing else, for `$(...)`)."""
        settings = get_settings()
        if settings.oidc_issuer:
            typer.echo(
                f"staff add: people sign in at {settings.oidc_issuer} (SAGSFLOW_OIDC_ISSUER is set);"
                " the local issuer is only for the embedded default",
                err=True,
            )
            raise typer.Exit(2)
        unknown = [r for r in role if r not in ROLES]
        if unknown:
            typer.echo(f"--role: {', '.join(unknown)} is not a role; roles are {', '.join(ROLES)}", err=True)
            raise typer.Exit(2)
        try:
            lifetime = parse_duration(ttl)
        except ValueError as exc:
            typer.echo(f"--ttl: {exc}", err=True)
            raise typer.Exit(2) from None
        if not name.strip():
            typer.echo("NAME: must not be empty", err=True)
            raise typer.Exit(2)
        roles: list[Role] = [r for r in ROLES if r in role]
        issuer = LocalIssuer(settings.data_dir / LOCAL_KEY_FILE)
        typer.echo(issuer.mint(name.strip(), roles, subject=subject, ttl=lifetime))

    app.add_typer(staff, name="staff")
