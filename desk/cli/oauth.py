"""`desk init-oauth google`: the installed-app consent that gives desk a refresh token.

The browser comes back to a loopback address of this process (RFC 8252, PKCE S256); the
refresh token goes into ``[oauth2] refresh_token_file`` (0600), never onto the screen."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import click

from desk.cli.common import Ctx, fail, pass_ctx
from desk.config.oauth2 import DEFAULT_SCOPES
from desk.credentials import (
    Consent,
    TokenError,
    read_client_secrets,
    store_refresh_token,
)


@click.command("init-oauth", short_help="Get a mailbox's consent and store its refresh token.")
@click.argument("provider", type=click.Choice(["google"]))
@click.option("--client-secrets", "secrets_file", required=True, metavar="FILE",
              type=click.Path(path_type=Path, dir_okay=False),
              help="The OAuth client (type Desktop app) JSON from the Google Cloud console.")
@click.option("--no-browser", is_flag=True,
              help="Only print the consent URL; open it yourself on this machine.")
@click.option("--timeout", "timeout", type=float, default=300.0, show_default=True,
              help="Seconds to wait for the consent screen's answer.")
@pass_ctx
def init_oauth(c: Ctx, provider: str, secrets_file: Path, no_browser: bool,
               timeout: float) -> None:
    """Ask for the mailbox's consent and store the refresh token desk logs in with."""
    try:
        client = read_client_secrets(secrets_file)
    except ValueError as exc:
        fail(str(exc))
    s = c.settings.oauth2
    if s is None or s.provider != provider:
        fail(f"the configuration has no [oauth2] section with provider = {provider!r}")
    if s.service_account_file:
        fail("[oauth2] uses service_account_file: a service account needs no consent")
    if not s.refresh_token_file:
        fail("set [oauth2] refresh_token_file (where desk keeps the refresh token); "
             "desk will not print the token for refresh_token_env")
    if s.client_id != client.client_id:
        fail(f"[oauth2] client_id ({s.client_id}) is not the client in {secrets_file} "
             f"({client.client_id}): a refresh token works only with its own client")
    consent = Consent(client, s.effective_scope or DEFAULT_SCOPES[provider])
    click.echo("Open this URL in a browser on this machine and allow access for the "
               "support mailbox:")
    click.echo(consent.url)
    click.echo(f"(waiting up to {timeout:.0f} s for the answer on {consent.redirect_uri})")
    if not no_browser:
        webbrowser.open(consent.url)
    try:
        token = consent.exchange(s, consent.wait(timeout))
    except TokenError as exc:
        fail(str(exc))
    path = Path(s.refresh_token_file)
    store_refresh_token(path, token)
    click.echo(f"refresh token stored in {path} (mode 0600); run desk check-mail to try it")


COMMANDS = [init_oauth]
