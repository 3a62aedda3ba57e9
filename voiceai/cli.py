"""`voiceai serve | call | eval | migrate | secretary | kb | doctor`: one command for the admin and the newcomer."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from secretary.observability import configure_logging
from secretary.settings import Settings


def _settings() -> Settings:
    return Settings()


def cmd_serve(args: argparse.Namespace) -> int:
    from voiceai.serve import serve

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings, ivr=not args.bridge_only, bridge=not args.ivr_only))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from secretary.db.database import Database
    from secretary.db.migrations import MigrationError, current_version, migrate
    from secretary.errors import DependencyUnavailable

    settings = _settings()
    if not settings.database_url:
        print("voiceai migrate: set DATABASE_URL to the FusionPBX database first", file=sys.stderr)
        return 2

    async def run() -> int:
        database = Database(settings.database_url or "", timeout_s=30)
        try:
            applied = await migrate(database)
            version = await current_version(database)
        except (MigrationError, DependencyUnavailable) as exc:
            print(f"voiceai migrate: {exc}", file=sys.stderr)
            return 1
        finally:
            await database.close()
        for migration in applied:
            print(f"applied {migration.version:04d} {migration.name}")
        print(f"schema is at version {version}" + ("" if applied else " (nothing to do)"))
        return 0

    return int(asyncio.run(run()))


def cmd_secretary(args: argparse.Namespace) -> int:
    from secretary.db.database import Database
    from secretary.errors import SecretaryError
    from secretary.tenants.pg_store import PostgresSecretaryStore
    from secretary.tenants.yaml_store import SecretaryFileError, YamlSecretaryStore, parse_secretaries

    settings = _settings()

    import_text = Path(args.file).read_text(encoding="utf-8") if args.action == "import" else ""

    async def run() -> int:
        if args.action == "check":
            path = Path(args.file or settings.secretaries_file)
            try:
                configs = YamlSecretaryStore(path).load()
            except (SecretaryFileError, OSError, yaml.YAMLError) as exc:
                print(f"invalid: {exc}", file=sys.stderr)
                return 1
            for config in configs:
                print(f"ok  {config.domain_name}  {config.domain_uuid}  {len(config.directory)} directory entries")
            return 0
        if not settings.database_url:
            print("voiceai secretary: set DATABASE_URL (the FusionPBX database) first", file=sys.stderr)
            return 2
        store = PostgresSecretaryStore(Database(settings.database_url))
        try:
            if args.action == "import":
                configs = parse_secretaries(yaml.safe_load(import_text), args.file)
                for config in configs:
                    await store.save(config)
                    print(f"saved {config.domain_name}")
            else:
                config = await store.by_name(args.domain)
                print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        except (SecretaryError, SecretaryFileError, OSError) as exc:
            print(f"voiceai secretary: {exc}", file=sys.stderr)
            return 1
        finally:
            await store.close()
        return 0

    return int(asyncio.run(run()))


def cmd_call(args: argparse.Namespace) -> int:
    if args.realtime:
        from voiceai.call_realtime import run_realtime_call

        configure_logging("WARNING", "console")
        return asyncio.run(run_realtime_call(_settings(), args))
    from voiceai.call import run_call

    return int(asyncio.run(run_call(_settings(), args)))


def cmd_kb(args: argparse.Namespace) -> int:
    from voiceai.kb import run_kb

    settings = _settings()
    configure_logging("WARNING", "console")  # the command's own output is the report
    return int(asyncio.run(run_kb(settings, args)))


def cmd_eval(args: argparse.Namespace) -> int:
    from voiceai.evaluation import main_sync

    configure_logging("WARNING", "console")  # the table is the output
    return main_sync(_settings(), args)


def cmd_doctor(args: argparse.Namespace) -> int:
    from voiceai.doctor import run_doctor

    return asyncio.run(run_doctor(_settings()))


class _Utterance(argparse.Action):
    """`--say` and `--wav` append to their own lists and to `utterances`, which keeps their order."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, [*getattr(namespace, self.dest, []), values])
        namespace.utterances = [*getattr(namespace, "utterances", []), (self.dest, values)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voiceai", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the turn-based service, the admin API and the realtime bridge")
    only = serve.add_mutually_exclusive_group()
    only.add_argument("--ivr-only", action="store_true", help="only the HTTP listeners: v1 and the admin API")
    only.add_argument("--bridge-only", action="store_true", help="only the realtime WebSocket bridge (v2)")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="create or upgrade our tables in the FusionPBX database")
    migrate.set_defaults(func=cmd_migrate)

    secretary = sub.add_parser("secretary", help="check, import or show secretaries")
    sec_sub = secretary.add_subparsers(dest="action", required=True)
    check = sec_sub.add_parser("check", help="validate a secretaries YAML file")
    check.add_argument("file", nargs="?")
    imp = sec_sub.add_parser("import", help="save the secretaries of a YAML file into PostgreSQL")
    imp.add_argument("file")
    show = sec_sub.add_parser("show", help="print a domain's secretary from PostgreSQL")
    show.add_argument("domain", help="domain name")
    secretary.set_defaults(func=cmd_secretary)

    call = sub.add_parser("call", help="talk to a secretary through the v1 API, as FreeSWITCH's Lua script would")
    call.add_argument(
        "--url",
        default=None,
        help="ivr_service base URL, or with --realtime the bridge's ws:// URL (default: settings)",
    )
    call.add_argument("--domain", default="acme.example.com", help="domain name to call")
    call.add_argument("--say", action=_Utterance, default=[], help="a sentence to speak (repeatable)")
    call.add_argument("--wav", action=_Utterance, default=[], type=Path, help="a WAV to play as a turn (repeatable)")
    call.add_argument("--out", type=Path, default=Path("var/calls"), help="where the replies are saved as WAV")
    call.add_argument("--caller", default="1000", help="caller id number")
    call.add_argument(
        "--realtime", action="store_true", help="call the realtime bridge through the mod_audio_stream simulator"
    )
    call.add_argument("--domain-uuid", default=None, help="realtime: the domain's uuid (default: looked up by name)")
    call.add_argument("--rate", type=int, choices=(8000, 16000), default=8000, help="realtime: the call's audio rate")
    call.add_argument("--in-process", action="store_true", help="realtime: start a bridge here even if one listens")
    call.set_defaults(func=cmd_call, utterances=[])

    from voiceai.evaluation import add_parser as add_eval_parser

    add_eval_parser(sub).set_defaults(func=cmd_eval)

    from voiceai.kb import add_parser as add_kb_parser

    add_kb_parser(sub).set_defaults(func=cmd_kb)

    doctor = sub.add_parser("doctor", help="check settings, engines, database, Redis and the spool")
    doctor.set_defaults(func=cmd_doctor)

    from voiceai.admin_commands import add_parsers as add_admin_parsers

    add_admin_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.func.__module__ == "voiceai.admin_commands":
        return int(args.func(args, _settings()))
    return int(args.func(args))
