"""`voiceai apikey | dialplan | secretkey`: what a FusionPBX admin runs once, from the shell, as root."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from uuid import UUID

from secretary.fusionpbx.dialplan import DialplanRequest, service_request
from secretary.settings import Settings


def _database_or_exit(settings: Settings, command: str) -> str | None:
    if not settings.database_url:
        print(f"voiceai {command}: set DATABASE_URL to the FusionPBX database first", file=sys.stderr)
        return None
    return settings.database_url


def _run(settings: Settings, command: str, body: Callable[..., Awaitable[int]]) -> int:
    from secretary.db.database import Database
    from secretary.errors import SecretaryError

    url = _database_or_exit(settings, command)
    if url is None:
        return 2

    async def run() -> int:
        database = Database(url, timeout_s=30)
        try:
            return await body(database)
        except SecretaryError as exc:
            print(f"voiceai {command}: {exc.message}", file=sys.stderr)
            return 1
        finally:
            await database.close()

    return asyncio.run(run())


def cmd_apikey(args: argparse.Namespace, settings: Settings) -> int:
    from secretary.access.api_keys import ApiKeyStore
    from secretary.db.database import Database
    from secretary.fusionpbx.domains import DomainDirectory

    async def body(database: Database) -> int:
        keys = ApiKeyStore(database)
        if args.action == "create":
            domain_uuid: UUID | None = None
            if not args.superadmin:
                domain_uuid = (await DomainDirectory(database).get(args.domain)).domain_uuid
            key, info = await keys.create("superadmin" if args.superadmin else "domain", domain_uuid, args.description)
            scope = "superadmin (all domains)" if args.superadmin else f"domain {args.domain}"
            print(f"API key for {scope} (shown once, keep it safe):\n{key}", flush=True)
            print(f"id {info.key_uuid}, prefix {info.prefix}", file=sys.stderr)
            return 0
        if args.action == "list":
            domain_filter = (await DomainDirectory(database).get(args.domain)).domain_uuid if args.domain else None
            for k in await keys.list_keys(domain_filter):
                state = "enabled" if k.enabled else "revoked"
                print(f"{k.key_uuid}  {k.prefix}…  {k.scope:10}  {k.domain_uuid or '-'}  {state}  {k.description}")
            return 0
        revoked = await keys.revoke(args.key)
        print(f"revoked {revoked} key(s)")
        return 0 if revoked else 1

    if args.action == "create" and not (args.superadmin or args.domain):
        print("voiceai apikey create: give --domain <name> or --superadmin", file=sys.stderr)
        return 2
    return _run(settings, "apikey", body)


def dialplan_request(
    args: argparse.Namespace,
    settings: Settings,
    domain_uuid: UUID,
    domain_name: str,
    fallback: str,
    playback_module: bool,
) -> DialplanRequest:
    """What `install` writes and `show` prints (the addresses given on the command line, if any)."""
    return service_request(
        settings,
        domain_uuid,
        domain_name,
        args.extension,
        args.mode,
        fallback,
        playback_module,
        ivr_url=args.ivr_url,
        bridge_url=args.bridge_url,
        sample_rate=args.rate,
        order=args.order,
    )


def cmd_dialplan_show(args: argparse.Namespace, settings: Settings) -> int:
    """Print the XML for plain FreeSWITCH (or to paste into FusionPBX's dialplan editor); no database needed."""
    from secretary.errors import SecretaryError
    from secretary.fusionpbx.dialplan import build_xml
    from secretary.runtime import Runtime
    from secretary.tenants.store import lookup

    async def run() -> int:
        runtime = Runtime.create(settings)
        try:
            is_uuid = len(args.domain) == 36 and args.domain.count("-") == 4
            config = await lookup(
                runtime.secretaries, args.domain if is_uuid else None, None if is_uuid else args.domain
            )
            request = dialplan_request(
                args,
                settings,
                config.domain_uuid,
                config.domain_name,
                args.fallback or config.fallback_destination,
                config.playback_mode == "module",
            )
            print(build_xml(request), end="")
            return 0
        except SecretaryError as exc:
            print(f"voiceai dialplan: {exc.message}", file=sys.stderr)
            return 1
        finally:
            await runtime.close()

    return asyncio.run(run())


def cmd_dialplan(args: argparse.Namespace, settings: Settings) -> int:
    from secretary.access.stream_tokens import token_for_dialplan
    from secretary.db.database import Database
    from secretary.errors import NoSecretary, SecretaryError
    from secretary.fusionpbx.dialplan import DialplanInstaller
    from secretary.fusionpbx.dialplan_cache import flush_dialplan_cache
    from secretary.fusionpbx.domains import DomainDirectory
    from secretary.tenants.pg_store import PostgresSecretaryStore

    async def flush(context: str) -> None:
        """As the admin API does; this process has no ESL connection (memcache: the commands are printed)."""
        flushed = await flush_dialplan_cache(settings.fusionpbx, context, None)
        print(f"FusionPBX cache: {flushed.detail}")
        if flushed.flush_instructions:
            print(flushed.flush_instructions)

    async def body(database: Database) -> int:
        domain = await DomainDirectory(database).get(args.domain)
        installer = DialplanInstaller(database)
        if args.action == "uninstall":
            removed = await installer.uninstall(domain.domain_uuid, args.extension)
            print(
                f"{'removed' if removed else 'nothing to remove for'} extension {args.extension} "
                f"in {domain.domain_name}"
            )
            await flush(domain.domain_name)
            return 0
        fallback = args.fallback
        playback_module = False
        try:
            config = await PostgresSecretaryStore(database).admin_get(domain.domain_uuid)
        except SecretaryError:
            config = None
        if config is None:
            print(
                f"warning: {domain.domain_name} has no AI secretary yet: calls will go to the fallback "
                "(create one with the admin API or `voiceai secretary import`)",
                file=sys.stderr,
            )
        else:
            fallback = fallback or config.fallback_destination
            playback_module = config.playback_mode == "module"
        if not fallback:
            raise NoSecretary("give --fallback <extension>: the domain has no secretary to take it from")
        if not domain.enabled:
            print(f"warning: domain {domain.domain_name} is disabled in FusionPBX", file=sys.stderr)
        for conflict in await installer.conflicts(domain.domain_uuid, args.extension):
            print(
                f"warning: {conflict} also answers {args.extension} in this domain (lower dialplan_order wins)",
                file=sys.stderr,
            )
        request = dialplan_request(args, settings, domain.domain_uuid, domain.domain_name, fallback, playback_module)
        if args.mode == "realtime":
            scope = token_for_dialplan(settings.bridge, domain.domain_uuid).scope
            if scope == "every domain":
                print(
                    "warning: writing the shared bridge.auth_token into this domain's dialplan: whoever reads it "
                    "(FusionPBX's dialplan editor, its cache files) can open streams for every domain; set "
                    "bridge.token_secret for a token per domain",
                    file=sys.stderr,
                )
            elif scope == "none":
                print("warning: no bridge token: the bridge serves any client that reaches it", file=sys.stderr)
        installed = await installer.install(request)
        print(
            f"{'installed' if installed.created else 'updated'} dialplan {installed.dialplan_uuid}: extension "
            f"{args.extension} in {domain.domain_name} -> AI secretary ({args.mode} mode)"
        )
        if installed.destination:
            group = "AI Secretary (the ai_secretary app's group)" if installed.by_app else "Dialplan"
            print(
                "FusionPBX offers it as a destination: Dialplan > Destinations (inbound routes), IVR menus and "
                f"time conditions list it under {group} as '{installed.label}'"
            )
        else:
            print(
                "warning: this FusionPBX's v_dialplans has no dialplan_destination column (4.4 or older): the "
                f"destination pickers won't list it; route a number to it with the action 'transfer "
                f"{args.extension} XML {domain.domain_name}'",
                file=sys.stderr,
            )
        await flush(domain.domain_name)
        return 0

    return _run(settings, "dialplan", body)


def cmd_secretkey(args: argparse.Namespace, settings: Settings) -> int:
    from secretary.credentials.secret_box import generate_secret_key

    print(generate_secret_key())
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    apikey = sub.add_parser("apikey", help="create, list or revoke admin API keys")
    key_sub = apikey.add_subparsers(dest="action", required=True)
    create = key_sub.add_parser("create", help="create a key and print it once")
    scope = create.add_mutually_exclusive_group()
    scope.add_argument("--domain", help="domain name (or uuid) the key is limited to")
    scope.add_argument("--superadmin", action="store_true", help="a key for every domain")
    create.add_argument("--description", default="", help="what the key is for")
    listing = key_sub.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--domain", help="only this domain's keys")
    revoke = key_sub.add_parser("revoke", help="disable a key by its id or prefix")
    revoke.add_argument("key", help="key id (uuid) or prefix (vai_xxxxxx)")
    apikey.set_defaults(func=cmd_apikey)

    dialplan = sub.add_parser("dialplan", help="route a FusionPBX extension to the secretary (v_dialplans)")
    dp_sub = dialplan.add_subparsers(dest="action", required=True)
    install = dp_sub.add_parser("install", help="create or update the dialplan entry")
    uninstall = dp_sub.add_parser("uninstall", help="remove the dialplan entry")
    show = dp_sub.add_parser("show", help="print the dialplan XML (plain FreeSWITCH, or to review it)")
    for parser in (install, uninstall, show):
        parser.add_argument("--domain", required=True, help="FusionPBX domain name (the dialplan context)")
        parser.add_argument("--extension", required=True, help="the number callers dial")
    for parser in (install, show):
        parser.add_argument("--mode", choices=("turn", "realtime"), default="turn")
        parser.add_argument("--fallback", help="extension for when the service fails (default: the secretary's)")
        parser.add_argument("--ivr-url", help="ivr_service URL as FreeSWITCH reaches it (turn mode)")
        parser.add_argument("--bridge-url", help="bridge ws://host:port as FreeSWITCH reaches it (realtime mode)")
        parser.add_argument("--rate", type=int, choices=(8000, 16000), default=16000, help="stream sample rate")
        parser.add_argument("--order", type=int, default=101, help="dialplan_order (lower runs first)")
    dialplan.set_defaults(func=cmd_dialplan)
    show.set_defaults(func=cmd_dialplan_show)

    secretkey = sub.add_parser("secretkey", help="print a new VOICEAI_SECRET_KEY (encrypts stored credentials)")
    secretkey.set_defaults(func=cmd_secretkey)
