"""``alignment-node init``: a node directory for a network, from nothing; and ``alignment-node networks``.

    alignment-node init [--network NAME] [--manifest FILE] [--rpc URL ...] --dir DIR
                        [--keystore new | import | existing PATH] [--key-file FILE]
                        [--password-file FILE | --password-env VAR] [--remote-signer URL --address ADDR]
                        [--port PORT] [--networks FILE] [--force] [--json]
    alignment-node networks list [--networks FILE] [--json]
    alignment-node networks add NAME --manifest FILE [--rpc URL ...] --networks FILE

init checks everything before it writes anything: the preset (alignment_node/networks.toml, or ``--networks``),
the manifest (its chain id against the preset's), every RPC endpoint (its ``eth_chainId`` against the manifest's,
code at every contract address, the deploy block not beyond the head), the password and key. Then it writes
``DIR/config.toml`` (mode 0600; every key of the config with its one-line explanation, taken from
alignment_node/config.py's docstring), ``DIR/deployment.json``, ``DIR/data`` (0700) and the keystore
``DIR/keystore`` (0700; a new key, or one imported from a file or standard input, never from an argument), runs
the checks of ``validate-config`` on the result and prints the next steps. The password never goes into the
config: only the path of its file or the name of its environment variable; without either, a random password is
written to ``DIR/password`` (0600). An existing config is kept unless ``--force`` (then it is renamed to
``config.toml.bak``, ``config.toml.bak1``, ...).

Wiring in alignment_node/cli.py: ``add_init_args(sub)`` registers ``init`` and ``networks``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

from .errors import CliError
from .logs import redact_url

DEFAULT_PUBLIC_EVIDENCE = "0.0.0.0:9101"  # what init writes: evidence served to anyone (security review M6)

CONFIG_NAME = "config.toml"
MANIFEST_NAME = "deployment.json"
PASSWORD_NAME = "password"
KEYSTORE_NAME = "keystore"
DATA_NAME = "data"
RPC_CHECK_TIMEOUT_S = 5.0
KEYSTORE_MODES = ("new", "import", "existing")


def add_init_args(sub: argparse._SubParsersAction) -> None:
    """Register ``init`` and ``networks`` on ``sub`` (the top-level subparsers)."""
    p = sub.add_parser("init", help="set up a node directory for a network: config, manifest, keystore, data")
    p.add_argument("--network", help="a preset of alignment_node/networks.toml (or of --networks FILE): its chain "
                                     "id, RPC endpoints and, when filled in, its contracts")
    p.add_argument("--manifest", help="the deployment manifest JSON (needed when the preset's addresses are left "
                                      "to the deployer); checked against --network's chain id")
    p.add_argument("--rpc", action="append", default=[], metavar="URL",
                   help="JSON-RPC endpoint (repeatable, tried in order); default: the preset's")
    p.add_argument("--dir", required=True, help="the node directory to create (config.toml, data/, keystore/)")
    p.add_argument("--keystore", nargs="+", metavar="MODE", default=["new"],
                   help="new (default): a fresh key in DIR/keystore; import: the hex private key read from "
                        "--key-file or standard input; existing PATH: a keystore directory you already have")
    p.add_argument("--key-file", help="with --keystore import: file holding the hex private key (default: stdin)")
    pw = p.add_mutually_exclusive_group()
    pw.add_argument("--password-file", help="file whose first line is the keystore password (default: a random "
                                            "password written to DIR/password)")
    pw.add_argument("--password-env", help="environment variable holding the keystore password")
    p.add_argument("--remote-signer", metavar="URL", help="sign with a remote signer instead of a keystore")
    p.add_argument("--address", help="the operator address (with --remote-signer; or which key of an existing "
                                     "keystore)")
    p.add_argument("--port", type=int, default=None, help="the node's HTTP API port (service.port)")
    p.add_argument("--public-evidence", default=DEFAULT_PUBLIC_EVIDENCE, metavar="HOST:PORT",
                   help="the public, read-only evidence listener (service.public_evidence; default "
                        f"{DEFAULT_PUBLIC_EVIDENCE}; 'off' for none): other nodes check the roots you reveal there")
    p.add_argument("--networks", metavar="FILE", help="a networks file with more presets")
    p.add_argument("--force", action="store_true", help="replace an existing DIR/config.toml (kept as .bak)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_init)

    n = sub.add_parser("networks", help="network presets: list them, add one from a deployment manifest")
    ns = n.add_subparsers(dest="networks_cmd", required=True)
    ls = ns.add_parser("list", help="the presets init knows")
    ls.add_argument("--networks", metavar="FILE", help="a networks file with more presets")
    ls.add_argument("--json", action="store_true", help="print JSON")
    add = ns.add_parser("add", help="append a preset made from a deployment manifest to a networks file")
    add.add_argument("name", help="the preset's name (lowercase letters, digits, '-')")
    add.add_argument("--manifest", required=True, help="the deployment manifest JSON")
    add.add_argument("--rpc", action="append", default=[], metavar="URL", help="JSON-RPC endpoint (repeatable)")
    add.add_argument("--description", default="", help="one line saying what the network is")
    add.add_argument("--networks", metavar="FILE", required=True, help="the networks file to append to")
    add.add_argument("--json", action="store_true", help="print JSON")
    n.set_defaults(func=cmd_networks)


# ------------------------------------------------------------------------- the config's documentation


def config_key_docs() -> dict[str, str]:
    """One line per config key ("section.key", "data_dir", "[section]"), from alignment_node/config.py's
    docstring: the first sentence of its bullet, without the environment name."""
    from . import config

    bullets: list[str] = []
    for line in (config.__doc__ or "").splitlines():
        if line.startswith("- ``"):
            bullets.append(line[2:])
        elif line.startswith("  ") and bullets:
            bullets[-1] += " " + line.strip()
    docs = {}
    for bullet in bullets:
        m = re.match(r"((?:``[^`]+``(?: / )?)+)(?: \([^)]*\))?: (.*)", bullet)
        if not m:
            continue
        sentence = re.split(r"(?<=\.)\s+(?=[A-Z`])", m.group(2).strip(), maxsplit=1)[0]
        for key in re.findall(r"``([^`]+)``", m.group(1)):
            docs[key] = sentence
    return docs


def _operator_fields() -> set[str]:
    from .config import OperatorConfig

    return {f.name for f in dataclasses.fields(OperatorConfig)}


def render_config(values: dict[str, object], header: list[str], commented: dict[str, object] | None = None) -> str:
    """The config file: every key of config.py's sections, each after its one-line explanation; the keys of
    ``values`` ("section.key" or a top-level name) set, the others commented out at their default (or at the
    value in ``commented``)."""
    from . import config
    from .networks import toml_value

    docs = config_key_docs()
    commented = commented or {}
    defaults = config.Config()
    lines = [f"# {h}" if h else "#" for h in header] + [""]

    def entry(key: str, name: str, default: object) -> None:
        lines.append(f"# {docs.get(key, 'see alignment_node/config.py')}")
        if key in values:
            lines.append(f"{name} = {toml_value(values[key])}")
        else:
            lines.append(f"# {name} = {toml_value(commented.get(key, default))}")

    for name in config._TOP:
        entry(name, name, getattr(defaults, name))
    for section, cls in config._SECTIONS.items():
        lines += ["", f"[{section}]"]
        if f"[{section}]" in docs:
            lines.append(f"# {docs[f'[{section}]']}")
        tables = []
        for f in dataclasses.fields(cls):
            default = getattr(getattr(defaults, section), f.name)
            if isinstance(default, list) and f.type == "list[WebhookConfig]":
                tables.append(f"{section}.{f.name}")
                continue
            entry(f"{section}.{f.name}", f.name, default)
        for key in tables:  # arrays of tables come after the section's plain keys
            lines += [f"# {docs.get(f'[[{key}]]', docs.get(key, 'see alignment_node/config.py'))}",
                      f"# [[{key}]]", '# kind = "discord"', '# url_env = "ALERT_WEBHOOK_URL"']
    for key, value in commented.items():  # keys this version of config.py does not read yet
        section, _, name = key.partition(".")
        if section == "operator" and name not in _operator_fields():
            lines.insert(lines.index("[operator]") + 1,
                         f"# {name} = {toml_value(value)}  (not read by this version of the node)")
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------------- checks


def _source(args: argparse.Namespace) -> tuple[dict, list[str], str | None]:
    """(manifest, rpc urls, network name) from --network / --manifest / --rpc, the manifest checked against the
    preset (its chain id, and its addresses when the preset names them)."""
    from .chain.manifest import load_manifest
    from .networks import NetworkError, get_network

    if not args.network and not args.manifest:
        raise CliError("give --network NAME (`alignment-node networks list`) or --manifest FILE, or both")
    urls = [u.strip() for arg in args.rpc for u in arg.split(",") if u.strip()]
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise CliError(f"--rpc {redact_url(url)!r} is not an http(s) URL")
    net = None
    if args.network:
        try:
            net = get_network(args.network, args.networks)
        except NetworkError as exc:
            raise CliError(str(exc)) from None
        urls = urls or net.rpc_urls
    if args.manifest:
        try:
            manifest = load_manifest(Path(args.manifest))
        except ValueError as exc:
            raise CliError(str(exc)) from None
    elif net.complete:
        manifest = net.manifest()
    else:
        hint = f" ({net.manifest_hint})" if net.manifest_hint else ""
        raise CliError(f"network {net.name}: its contract addresses are left to the deployer; give the "
                       f"deployment's manifest with --manifest FILE{hint}")
    if not urls:
        raise CliError("no RPC endpoint: give --rpc URL" + (f" (network {net.name} leaves them to the deployer)"
                                                            if net else ""))
    if net is not None:
        if int(manifest["chainId"]) != net.chain_id:
            raise CliError(f"chain id mismatch: the manifest is of chain {manifest['chainId']}, network "
                           f"{net.name} is chain {net.chain_id}")
        named = {k: v for k, v in net.contracts.items() if v}
        differ = [k for k, v in named.items() if str(manifest["contracts"].get(k, "")).lower() != v.lower()]
        if differ:
            raise CliError(f"the manifest's {', '.join(differ)} differ from network {net.name}'s preset")
    return manifest, urls, net.name if net else None


async def _check_chain(urls: list[str], manifest: dict) -> None:
    """Every endpoint answers with the manifest's chain id, and the manifest's contracts are on that chain."""
    from .chain.rpc import RpcClient, RpcException

    want = int(manifest["chainId"])
    for url in urls:
        try:
            async with RpcClient([url], timeout=RPC_CHECK_TIMEOUT_S) as rpc:
                chain_id = await rpc.chain_id()
                head = await rpc.block_number()
                missing = [name for name, address in sorted(manifest["contracts"].items())
                           if not await rpc.get_code(address)]
        except (RpcException, ValueError) as exc:
            raise CliError(f"RPC {redact_url(url)} does not answer: {str(exc)[:300]}") from None
        if chain_id != want:
            raise CliError(f"RPC {redact_url(url)} serves chain {chain_id}, the manifest is of chain {want}: "
                           "wrong endpoint or wrong manifest")
        if int(manifest["deployBlock"]) > head:
            raise CliError(f"RPC {redact_url(url)} is at block {head}, before the deployment "
                           f"(block {manifest['deployBlock']}): not synced, or another chain with the same id")
        if missing:
            raise CliError(f"RPC {redact_url(url)}: no contract at the manifest's address of {', '.join(missing)}: "
                           "this manifest is of another deployment (or the chain was reset)")


def _keystore_mode(args: argparse.Namespace) -> tuple[str, Path | None]:
    mode, *rest = args.keystore
    # Never echo the arguments here: a private key pasted by mistake must not reach a terminal log.
    if mode not in KEYSTORE_MODES or (mode == "existing") != bool(rest) or len(rest) > 1:
        raise CliError("--keystore takes new, import, or existing PATH (import reads the key from --key-file "
                       "or standard input, never from the command line)")
    if args.key_file and mode != "import":
        raise CliError("--key-file goes with --keystore import")
    return mode, Path(rest[0]) if rest else None


def _read_private_key(key_file: str | None) -> bytes:
    from .keys import KeystoreError, parse_private_key

    if key_file and re.fullmatch(r"(0[xX])?[0-9a-fA-F]{64}", key_file.strip()):
        raise CliError("--key-file takes the path of a file holding the key, never the key itself")
    try:
        if key_file and key_file != "-":
            text = Path(key_file).read_text(encoding="utf-8")
        elif sys.stdin is None or sys.stdin.isatty():
            raise CliError("--keystore import: pipe the hex private key on standard input or give --key-file "
                           "FILE; it is never taken as an argument")
        else:
            text = sys.stdin.read()
        return parse_private_key(text)
    except OSError as exc:
        raise CliError(f"--key-file {key_file}: {exc.strerror or exc}") from None
    except KeystoreError as exc:
        raise CliError(f"--keystore import: {exc}") from None


def _config_path_of(path: Path, directory: Path) -> str:
    """How the config names a file: relative to its directory when inside it, else absolute."""
    path = path.resolve()
    try:
        return str(path.relative_to(directory.resolve()))
    except ValueError:
        return str(path)


def _backup(path: Path) -> Path:
    for i in range(1000):
        candidate = path.with_name(path.name + (".bak" if i == 0 else f".bak{i}"))
        if not candidate.exists():
            path.rename(candidate)
            return candidate
    raise CliError(f"{path}: too many backups beside it; move some away")


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` atomically to a file created with ``mode``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    tmp.replace(path)


def _validate(config_path: Path) -> list[str]:
    """The problems `alignment-node validate-config` finds in the written config: that very command, run as
    the operator would run it (its own process, this environment)."""
    out = subprocess.run([sys.executable, "-m", "alignment_node.cli", "validate-config", "--config",
                          str(config_path), "--json"], capture_output=True, text=True, timeout=120)
    try:
        return json.loads(out.stdout)["problems"]
    except (ValueError, KeyError, TypeError):
        raise CliError(f"validate-config failed to run (exit {out.returncode}): "
                       f"{(out.stderr.strip().splitlines() or ['no output'])[-1]}") from None


# ---------------------------------------------------------------------------------------------- init


def cmd_init(args: argparse.Namespace) -> int:
    from .keys import KeystoreError, list_addresses, load_signer, new_key, read_password, save_key, Signer, to_checksum

    directory = Path(args.dir)
    config_path = directory / CONFIG_NAME
    if config_path.exists() and not args.force:
        raise CliError(f"{config_path} exists: init keeps it (use --force to replace it; it is kept as .bak)")
    if directory.exists() and not directory.is_dir():
        raise CliError(f"--dir {directory} is not a directory")
    if args.port is not None and not 0 <= args.port <= 65535:
        raise CliError(f"--port {args.port} is not a TCP port (0-65535)")
    remote = args.remote_signer
    if remote:
        if not remote.startswith(("http://", "https://")):
            raise CliError("--remote-signer is not an http(s) URL")
        if not args.address:
            raise CliError("--remote-signer needs --address ADDR (the address the signer signs for)")
        if args.keystore != ["new"] or args.key_file or args.password_file or args.password_env:
            raise CliError("--remote-signer replaces the keystore: drop --keystore, --key-file and --password-*")
    address = None
    if args.address:
        try:
            address = to_checksum(args.address)
        except ValueError:
            raise CliError("--address is not a 0x-prefixed 20-byte hex address") from None
    mode, existing = (None, None) if remote else _keystore_mode(args)
    if address and mode in ("new", "import"):
        raise CliError(f"--address goes with --keystore existing or --remote-signer (--keystore {mode} makes the "
                       "address from the key)")
    manifest, urls, network = _source(args)

    # Secrets: read and checked before anything is written.
    password = private_key = None
    try:
        if args.password_file or args.password_env:
            password = read_password(args.password_file, args.password_env)
        if mode == "import":
            private_key = _read_private_key(args.key_file)
            address = Signer(private_key).address
        elif mode == "existing":
            if password is None:
                raise CliError("--keystore existing PATH needs --password-file FILE or --password-env VAR")
            address = load_signer(existing, password, address).address  # proves the password opens it
    except KeystoreError as exc:
        raise CliError(str(exc)) from None

    try:
        asyncio.run(_check_chain(urls, manifest))
    except KeyboardInterrupt:
        raise CliError("interrupted: nothing was written") from None

    # Writing: the directory, data, manifest, password, keystore, then the config last.
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    data_dir = directory / DATA_NAME
    data_dir.mkdir(exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    manifest_path = directory / MANIFEST_NAME
    if args.manifest and manifest_path.resolve() == Path(args.manifest).resolve():
        pass  # the manifest already lives in DIR
    else:
        if manifest_path.exists():
            _backup(manifest_path)
        _write_private(manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n", 0o644)
    values: dict[str, object] = {"data_dir": DATA_NAME, "chain.rpc_urls": urls, "chain.manifest": MANIFEST_NAME}
    commented: dict[str, object] = {}
    password_written = None
    if remote:
        fields = _operator_fields()
        remote_keys = {"operator.signer": "remote", "operator.remote_signer_url": remote}
        (values if {"signer", "remote_signer_url"} <= fields else commented).update(remote_keys)
    else:
        keystore = existing if mode == "existing" else directory / KEYSTORE_NAME
        if password is None:
            password_written = directory / PASSWORD_NAME
            if password_written.exists():
                password = read_password(str(password_written))  # a re-run (--force) keeps the password it made
            else:
                password = secrets.token_urlsafe(24)
                _write_private(password_written, password + "\n")
        try:
            if mode == "new":
                address = new_key(keystore, password)
            elif mode == "import" and address not in (list_addresses(keystore) if keystore.is_dir() else []):
                save_key(keystore, private_key, password)
            if mode != "existing":
                os.chmod(keystore, 0o700)
            load_signer(keystore, password, address)  # the key opens with the password the config names
        except KeystoreError as exc:
            raise CliError(f"keystore {keystore}: {exc}") from None
        values["operator.keystore"] = _config_path_of(keystore, directory)
        if args.password_env:
            values["operator.password_env"] = args.password_env
        else:
            values["operator.password_file"] = _config_path_of(
                Path(args.password_file) if args.password_file else password_written, directory)
    values["operator.address"] = address
    if args.port is not None:
        values["service.port"] = args.port
    if args.public_evidence.lower() not in ("", "off"):
        from .config import parse_listen

        if parse_listen(args.public_evidence) is None:
            raise CliError(f"--public-evidence {args.public_evidence!r} is not host:port (or 'off')")
        values["service.public_evidence"] = args.public_evidence

    from . import __version__

    header = [f"alignment-node {__version__} config, written by `alignment-node init` on "
              f"{time.strftime('%Y-%m-%d', time.gmtime())} for "
              f"{f'network {network}' if network else 'a deployment manifest'} (chain {manifest['chainId']}).",
              "Each key follows its one-line explanation (alignment_node/config.py has the full text); a commented",
              "key is at its default. ZG_ALIGNMENT_NODE_<SECTION>_<KEY> environment variables override any key.",
              "No secret lives here: the keystore password comes from operator.password_file or password_env."]
    backup = _backup(config_path) if config_path.exists() else None
    _write_private(config_path, render_config(values, header, commented))

    problems = _validate(config_path)
    balance = asyncio.run(_balance(urls, address))
    shown = str(config_path)
    port = args.port if args.port is not None else 9100
    steps = [
        f"fund {address} with the gas coin of chain {manifest['chainId']} (now {balance} wei; the node alerts "
        f"below gas.min_balance_wei)",
        f"register as an operator (commission in basis points, fixed forever): "
        f"alignment-node register-operator 500 --config {shown}",
        f"approve the licenses owners delegate to you: alignment-node approve IDS --config {shown}",
        f"start the node: alignment-node start --config {shown}  (then http://127.0.0.1:{port}/health)",
    ]
    data = {"ok": not problems, "config": shown, "dir": str(directory), "address": address,
            "chain_id": int(manifest["chainId"]), "network": network, "rpc_urls": [redact_url(u) for u in urls],
            "balance_wei": str(balance), "keystore": None if remote else mode,
            "password_file_written": str(password_written) if password_written else None,
            "backup": str(backup) if backup else None, "problems": problems, "next_steps": steps}
    if args.json:
        print(json.dumps(data, sort_keys=True))
    else:
        lines = [f"wrote {shown} for {address} on chain {manifest['chainId']}"
                 + (f" (previous config kept as {backup})" if backup else "")]
        if password_written:
            lines.append(f"keystore password: {password_written} (mode 0600; back it up with the keystore)")
        lines += [f"problem: {p}" for p in problems] or ["validate-config: config OK"]
        lines += ["next steps:"] + [f"  {i}. {s}" for i, s in enumerate(steps, 1)]
        print("\n".join(lines))
    return 0 if not problems else 1


async def _balance(urls: list[str], address: str) -> int:
    from .chain.rpc import RpcClient

    async with RpcClient(urls, timeout=RPC_CHECK_TIMEOUT_S) as rpc:
        return await rpc.get_balance(address)


# ------------------------------------------------------------------------------------------ networks


def cmd_networks(args: argparse.Namespace) -> int:
    from .chain.manifest import load_manifest
    from .networks import NetworkError, append_preset, load_networks

    try:
        if args.networks_cmd == "list":
            nets = load_networks(args.networks)
            data = {name: {"chain_id": n.chain_id, "description": n.description, "rpc_urls": n.rpc_urls,
                           "complete": n.complete, "source": n.source} for name, n in nets.items()}
            text = "\n".join(f"{name}: chain {n.chain_id}, {n.description}"
                             f"{'' if n.complete else ' (addresses left to the deployer: init needs --manifest)'}"
                             for name, n in nets.items())
        else:
            try:
                manifest = load_manifest(Path(args.manifest))
            except ValueError as exc:
                raise CliError(str(exc)) from None
            table = append_preset(args.networks, args.name, manifest, args.rpc, args.description)
            data = {"name": args.name, "networks": args.networks, "table": table}
            text = f"added network {args.name} (chain {manifest['chainId']}) to {args.networks}"
    except NetworkError as exc:
        raise CliError(str(exc)) from None
    print(json.dumps(data, sort_keys=True) if args.json else text)
    return 0
