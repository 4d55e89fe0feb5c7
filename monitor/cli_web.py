"""The console's commands: ``monitor users add|list|remove`` and ``monitor web``."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime

from .cli_output import iso, print_table
from .config import Config
from .errors import StoreError
from .store import Accounts, Store, create, migrate
from .web.passwords import MIN_LENGTH, hash_password

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = sub.add_parser("users", help="the web console's accounts",
                           description="Local accounts of the web console: admins read "
                           "and edit, analysts read.")
    users_sub = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    ua = users_sub.add_parser("add", help="create an account",
                              description="Create a console account. The password is asked "
                              "twice on the terminal, or read from the first line of "
                              f"standard input with --password-stdin (at least {MIN_LENGTH} "
                              "characters); only its Argon2id hash is stored.")
    ua.add_argument("name", help="the sign-in name")
    ua.add_argument("--role", choices=("admin", "analyst"), required=True,
                    help="admin: reads and edits; analyst: reads")
    ua.add_argument("--password-stdin", action="store_true",
                    help="read the password from standard input (for scripts)")
    ua.set_defaults(func=_cmd_users_add)
    ul = users_sub.add_parser("list", help="the accounts and their roles",
                              description="List the console accounts with their roles.")
    ul.add_argument("--json", action="store_true", help="print JSON for scripts")
    ul.set_defaults(func=_cmd_users_list)
    ur = users_sub.add_parser("remove", help="delete an account and end its sessions",
                              description="Delete a console account; its sessions end at "
                              "once.")
    ur.add_argument("name", help="the sign-in name")
    ur.set_defaults(func=_cmd_users_remove)

    web = sub.add_parser("web", help="serve the web console (without polling)",
                         description="Serve the web console and its JSON API in the "
                         "foreground, without polling feeds or sending alerts (the daemon "
                         "serves it too when [web] console is set). Migrates the database "
                         "first. Stops on SIGINT or SIGTERM.")
    web.add_argument("--listen", metavar="HOST:PORT",
                     help="address to serve on (default: [web] console, else "
                     "127.0.0.1:8080)")
    web.set_defaults(func=_cmd_web)


def _open(config: Config) -> tuple[Accounts, Store]:
    engine = create(config.settings.database.url.get_secret_value())
    migrate(engine)
    return Accounts(engine), Store(engine)


def _actor() -> str:
    """Who edits from the command line, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (containers)
        return "cli"


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        print("error: no terminal to ask the password on; pipe it with --password-stdin",
              file=sys.stderr)
        return None
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        print("error: the two passwords differ", file=sys.stderr)
        return None
    return first


def _cmd_users_add(config: Config, args: argparse.Namespace) -> int:
    password = _read_password(args.password_stdin)
    if password is None:
        return 1
    if len(password) < MIN_LENGTH:
        print(f"error: the password must have at least {MIN_LENGTH} characters",
              file=sys.stderr)
        return 1
    accounts, store = _open(config)
    now = datetime.now(UTC)
    try:
        user = accounts.add_user(args.name, hash_password(password), args.role, now)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    store.record_audit("create", "user", user.name, _actor(), now,
                       after={"name": user.name, "role": user.role})
    print(f"added {user.name} ({user.role})")
    return 0


def _cmd_users_list(config: Config, args: argparse.Namespace) -> int:
    rows = _open(config)[0].users()
    if args.json:
        print(json.dumps([{"name": u.name, "role": u.role, "created_at": iso(u.created_at)}
                          for u in rows], indent=2))
        return 0
    if not rows:
        print("no users: add one with `monitor users add NAME --role admin`")
        return 0
    table: list[tuple[str, ...]] = [("NAME", "ROLE", "CREATED")]
    table += [(u.name, u.role, f"{u.created_at:%Y-%m-%d %H:%M}") for u in rows]
    print_table(table)
    return 0


def _cmd_users_remove(config: Config, args: argparse.Namespace) -> int:
    accounts, store = _open(config)
    user = accounts.user(args.name)
    if user is None or not accounts.remove_user(args.name):
        print(f"error: no user named {args.name!r}", file=sys.stderr)
        return 1
    store.record_audit("delete", "user", user.name, _actor(), datetime.now(UTC),
                       before={"name": user.name, "role": user.role})
    print(f"removed {args.name}")
    return 0


def _cmd_web(config: Config, args: argparse.Namespace) -> int:
    from .daemon import build
    from .web.serve import serve
    from .web.wiring import console_for

    listen = args.listen or config.settings.web.console or "127.0.0.1:8080"
    host, _, port = listen.rpartition(":")
    app = build(config)
    serve(host.strip("[]"), int(port), console_for(lambda: app))
    return 0
