"""The daemon's commands: run, check-config, check, report, bootstrap, forget."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from daemon.errors import TicketdError
from daemon.logging import configure, get_logger

log = get_logger(__name__)


def add_commands(sub: Any) -> None:
    """Register the daemon's subcommands on the main parser."""
    p = sub.add_parser("run", help="run the daemon: poll, classify, write back, retrain")
    p.add_argument("--config", type=Path, help="config file (default: embedded defaults, a local demo Maildir)")
    p.add_argument("--dry-run", action="store_true", help="shadow mode for every connector: classify, never write")
    p.add_argument("--once", action="store_true", help="one poll and harvest per connector, then exit")
    p = sub.add_parser("serve", help="run only the REST API (classify, train, models, health, metrics)")
    p.add_argument("--config", type=Path, help="config file (default: embedded defaults)")
    p = sub.add_parser("check-config", help="validate a config file without contacting anything")
    p.add_argument("config", type=Path, help="the YAML config file")
    p.add_argument(
        "--no-secrets",
        action="store_true",
        help="check the structure where secrets are absent (CI); list the ${ENV} and *_file secrets not resolved",
    )
    p = sub.add_parser("check", help="validate config, reach every connector, match model labels to the helpdesk")
    p.add_argument("--config", type=Path, help="config file (default: embedded defaults)")
    p = sub.add_parser("report", help="shadow-mode report: model vs the agents' final queue and priority")
    p.add_argument("--config", type=Path, help="config file (default: embedded defaults)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p = sub.add_parser("bootstrap", help="harvest closed tickets from the helpdesks and train the first model")
    p.add_argument("--config", type=Path, help="config file (default: embedded defaults)")
    p = sub.add_parser(
        "forget", help="erase a ticket's or a person's text from the training store and the ledger, for good"
    )
    p.add_argument("--config", type=Path, help="config file (default: embedded defaults)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--ticket", help="the helpdesk's ticket id (the ledger's and training store's key)")
    what.add_argument("--email", help="an e-mail address: every stored ticket whose text holds it")
    p.add_argument("--connector", help="with --ticket: only this connector's ticket (default: every connector's)")


def _config(path: Path | None) -> Any:
    from daemon.runtime.daemon import load_or_default

    config = load_or_default(path)
    configure(config.log.level, json=config.log.json)
    return config


def cmd_run(args: argparse.Namespace) -> int:
    """Start the daemon in the foreground (systemd and Kubernetes run it like this)."""
    from daemon.runtime.daemon import Daemon
    from daemon.web.hosting import dashboard_url, start_api
    from daemon.web.server import settle_memory

    config = _config(args.config)
    demo_token = None
    if args.config is None:
        _seed_demo(config)
        if not config.api.tokens:  # the demo's dashboard needs someone who may log in: a token for this run only
            demo_token = secrets.token_urlsafe(24)
            config = config.model_copy(
                update={"api": config.api.model_copy(update={"tokens": [SecretStr(demo_token)]})}
            )
    daemon = Daemon(config, config_path=args.config, dry_run=args.dry_run)
    stopped: dict[str, tuple[str, str]] = {}

    async def main() -> None:
        await daemon.start()
        if not args.once:
            await start_api(daemon)
            settle_memory()
            url = dashboard_url(daemon)
            if url and demo_token:  # with a config, the log's `dashboard` event names the URL
                login = f"; log in with this run's admin token {demo_token}"
                print(f"ticketd dashboard: {url}{login}", file=sys.stderr, flush=True)
        if args.once:
            try:
                done = await daemon.run_once()
                stopped.update(daemon.stopped())
                log.info("one cycle done", tickets=done)
            finally:
                await daemon.shutdown()
        else:
            await daemon.serve()

    asyncio.run(main())
    for name, (reason, error) in stopped.items():
        print(f"ticketd run --once: connector {name!r} stopped: {reason}: {error}", file=sys.stderr)
    return 1 if stopped else 0


def _seed_demo(config: Any) -> None:
    """Embedded defaults run against a local demo Maildir: fill it with example mails once."""
    from daemon.demo import seed

    for entry in config.connectors:
        if entry.type == "maildir":
            path = Path(entry.connection.path)
            added = seed(path)
            log.info(
                "demo mode: no --config, routing example mails in a local Maildir",
                maildir=str(path),
                seeded=added,
                hint="see the folders under Queues/ fill; Ctrl-C stops; --config points ticketd at a real helpdesk",
            )


def cmd_serve(args: argparse.Namespace) -> int:
    """The API alone, without polling any helpdesk."""
    from daemon.web.server import serve

    return serve(_config(args.config))


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate only; exit 2 with the file, line and key of the first problem."""
    from daemon.config import load_config, load_structure

    unresolved: list[str] = []
    if args.no_secrets:
        config, unresolved = load_structure(args.config)
    else:
        config = load_config(args.config)
    names = ", ".join(c.name for c in config.connectors)
    what = "structure ok" if args.no_secrets else "ok"
    print(f"{args.config}: {what} ({len(config.connectors)} connector(s): {names})")
    for item in unresolved:
        print(f"  secret not resolved: {item}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Config, model and every connector: reachable, credentials accepted, every label has a live target."""
    config = _config(args.config)
    problems = asyncio.run(_check(config))
    for line in problems:
        print(line)
    if problems:
        print(f"ticketd check: {len(problems)} problem(s)")
        return 1
    print("ticketd check: ok")
    return 0


async def _check(config: Any) -> list[str]:
    import httpx

    from connectors.errors import ConnectorError
    from connectors.registry import connector_class
    from daemon.ml.serving import configured_store
    from daemon.pipeline.routing import label_rules
    from daemon.runtime.wiring import model_holder

    problems: list[str] = []
    holder = model_holder(config)
    labels: dict[str, list[str]] = {}
    try:
        with configured_store(config, who="ticketd check") as holder.store:  # the database's, on PostgreSQL
            holder.load()
        labels = holder.get().labels
        print(f"model: {holder.get().version} ({', '.join(f'{k}: {len(v)} labels' for k, v in labels.items())})")
    except TicketdError as exc:
        problems.append(f"model: {exc}")
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0)) as client:
        for index, entry in enumerate(config.connectors):
            kind = connector_class(entry.type)
            connector = kind.from_config(entry.connection, client)
            try:
                found = await connector.check()
                live = {
                    "queue": {q.name for q in await connector.list_queues()},
                    "priority": {p.name for p in await connector.list_priorities()},
                }
            except ConnectorError as exc:
                problems.append(f"{entry.name}: {type(exc).__name__}: {exc}{_endpoint(entry.connection)}")
                continue
            finally:
                await connector.aclose()
            print(f"{entry.name}: reachable ({len(live['queue'])} queues, {len(live['priority'])} priorities)")
            if found:
                print(f"{entry.name}: {found}")
            rules = label_rules(entry)
            for label, emitted in labels.items():
                if label not in live or label not in rules:
                    continue
                rule = rules[label]
                for name in emitted:
                    target = rule.target(name)
                    if target not in live[label]:
                        problems.append(
                            f"{entry.name}: model {label} label {name!r} maps to {target!r}, which the helpdesk "
                            f"does not have ({_fix_for(entry.name, kind.names_from_config, label, name, rule.map)})"
                        )
                if rule.fallback is not None and rule.fallback not in live[label]:
                    problems.append(f"{entry.name}: {label} fallback {rule.fallback!r} does not exist in the helpdesk")
                for where in _unknown_names(index, entry.routing, label, {*emitted, *live[label]}):
                    problems.append(f"{entry.name}: {where}: not a class of the model nor a {label} of the helpdesk")
    return problems


def _unknown_names(index: int, routing: Any, label: str, known: set[str]) -> list[str]:
    """Where never_route (queue), min_precision and always_route name neither a model label nor a helpdesk name.

    Those settings take either; a typo would otherwise match nothing and be silently without effect.
    """
    from daemon.config.yaml_lines import dotted

    at = ("connectors", index, "routing")
    named: list[tuple[str, str]] = []  # (key path, name): a list item's path ends in its index, so the name follows
    if label == "queue":
        named += [(f"{dotted((*at, 'never_route', i))} = {n!r}", n) for i, n in enumerate(routing.never_route)]
    rule = routing.labels.get(label)
    if rule is not None:
        named += [(dotted((*at, "labels", label, "min_precision", n)), n) for n in rule.min_precision]
        always = (*at, "labels", label, "always_route")
        named += [(f"{dotted((*always, i))} = {n!r}", n) for i, n in enumerate(rule.always_route)]
    return [where for where, name in named if name not in known]


def _fix_for(connector: str, from_config: dict[str, str], label: str, name: str, mapping: Any) -> str:
    """The key that actually needs changing: the connector's own name list, the map entry, or a new map entry."""
    key = f"routing.labels.{label}.map"
    if label in from_config:
        own = f"connectors[{connector}].{from_config[label]}"
        if name in mapping:
            return f"add it to {own} if the helpdesk has it, or change {name!r} in {key}"
        return f"add it to {own} if the helpdesk has it, or map {name!r} in {key}"
    if name in mapping:
        return f"change {name!r} in {key}, or create it in the helpdesk"
    return f"map {name!r} to a helpdesk name in {key}"


def _endpoint(connection: Any) -> str:
    """Where a connector points, without credentials, so `check` names the helpdesk it could not reach."""
    url = getattr(connection, "url", None)
    if isinstance(url, str):
        from connectors.secrets import redact_url

        return f" ({redact_url(url, user=False)})"
    host = getattr(connection, "host", None)
    if isinstance(host, str):
        port = getattr(connection, "port", None)
        return f" ({host}:{port})" if port else f" ({host})"
    return ""


def cmd_report(args: argparse.Namespace) -> int:
    """Agreement of recorded predictions with the final labels of tickets that have since closed."""
    from daemon.pipeline.report import build_report, format_missing, format_report, missing_targets
    from daemon.pipeline.routing import label_rules
    from daemon.state import State

    config = _config(args.config)
    state = State.open(config.state.url)
    try:
        rules = {entry.name: label_rules(entry) for entry in config.connectors}
        reports = build_report(state, rules)
        missing = missing_targets(state.ledger_with_missing())
        counts = state.ledger_counts()
    finally:
        state.close()
    if args.json:
        ledger = {f"{c}:{s}": n for (c, s), n in counts.items()}
        print(
            json.dumps(
                {"labels": [r.as_json() for r in reports], "ledger": ledger, "missing": [m.__dict__ for m in missing]}
            )
        )
        return 0
    print(format_report(reports))
    if missing:
        print(format_missing(missing))
    print("ledger: " + (", ".join(f"{c} {s}={n}" for (c, s), n in sorted(counts.items())) or "empty"))
    return 0


def cmd_bootstrap(args: argparse.Namespace) -> int:
    """Harvest every closed ticket the connectors can see, then train and promote the first model."""
    from daemon.runtime.daemon import Daemon

    config = _config(args.config)
    daemon = Daemon(config, config_path=args.config)

    async def main() -> Any:
        await daemon.start(load_model=False)
        try:
            for name, rows in (await daemon.harvest_all()).items():
                if rows is None:
                    print(f"{name}: harvested by the replica that owns it")
                else:
                    print(f"{name}: {rows} closed tickets harvested")
            return await daemon.retrain_now(force=True)  # TrainingBusy while another training runs
        finally:
            await daemon.shutdown()

    result = asyncio.run(main())
    print(f"bootstrap: {result.outcome} ({result.reason})")
    return 0 if result.outcome in ("promoted", "rejected") else 1


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase what the store holds of a ticket or a person, record that it did, and keep it out of later harvests."""
    from daemon.pipeline.privacy import digest
    from daemon.state import State

    if args.connector is not None and args.ticket is None:
        raise TicketdError("--connector goes with --ticket (an address is forgotten on every connector)")
    if args.email is not None and ("@" not in args.email or args.email.strip() != args.email or " " in args.email):
        raise TicketdError(f"--email {args.email!r} is not an e-mail address")
    config = _config(args.config)
    state = State.open(config.state.url)
    try:
        if args.ticket is not None:
            rows, entries = state.forget_ticket(args.ticket, args.connector)
            what = f"ticket {args.ticket}" + (f" of {args.connector}" if args.connector else "")
        else:
            email = str(args.email)
            rows, entries = state.forget_address(email, digest(email))
            what = "the address"  # not repeated: this line may end up in a shell history or a ticket
    finally:
        state.close()
    log.info("forgotten", kind="ticket" if args.ticket else "address", training_rows=rows, ledger_entries=entries)
    print(
        f"forgot {what}: {rows} training row(s) erased, {entries} ledger entr{'y' if entries == 1 else 'ies'} "
        "cleared; recorded, and later harvests will not store it again"
    )
    return 0


COMMANDS = {
    "run": cmd_run,
    "serve": cmd_serve,
    "check-config": cmd_check_config,
    "check": cmd_check,
    "report": cmd_report,
    "bootstrap": cmd_bootstrap,
    "forget": cmd_forget,
}
