"""The wheel: built from a copy of the package, installed into a fresh venv away from the repository (without the
``models`` extra), it runs ``alignment-node --version`` and ``validate-config``, and every data file the node reads
at run time (contract artifacts, the portal, the deployer's defaults) comes from the installed package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "alignment_node"
# Files a package may hold that nothing reads at run time (type stubs, the gRPC source the stubs come from).
NOT_RUNTIME = {".pyc", ".pyi", ".proto"}
# Dependency wheels packaging/build-image.sh keeps; pip's index (and its cache) are used for anything else.
WHEEL_CACHE = REPO / ".cache" / "container" / "wheels"


def run(cmd: list, cwd: Path, timeout: float = 300, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run ``cmd`` outside the repository with no PYTHONPATH, so only what is installed can be imported."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                         **kw)
    if check and out.returncode != 0:
        raise AssertionError(f"{cmd} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


def runtime_data_files() -> set[str]:
    """Every non-Python file of the package in this tree (the bundled portal.js too, when it is built)."""
    return {p.relative_to(REPO).as_posix() for p in PACKAGE.rglob("*")
            if p.is_file() and p.suffix not in NOT_RUNTIME and p.suffix != ".py" and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """The wheel built from a copy of the sources, and a fresh venv with it installed (core dependencies only)."""
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(PACKAGE, src / "alignment_node", ignore=shutil.ignore_patterns("__pycache__"))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir",
         tmp / "dist", src], cwd=tmp)
    (wheel,) = (tmp / "dist").glob("alignment_node-*.whl")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if not WHEEL_CACHE.is_dir() or run([*pip, "--no-index", "--find-links", WHEEL_CACHE, wheel], cwd=tmp,
                                       check=False).returncode != 0:
        run([*pip, wheel], cwd=tmp, timeout=600)
    return {"tmp": tmp, "wheel": wheel, "venv": venv, "cli": venv / "bin" / "alignment-node",
            "python": venv / "bin" / "python"}


def test_wheel_holds_every_runtime_data_file_of_the_package(built):
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    expected = runtime_data_files()
    assert {f"alignment_node/chain/artifacts/{p.name}" for p in (PACKAGE / "chain" / "artifacts").glob("*.json")}
    assert "alignment_node/api/portal/index.html" in expected
    assert not expected - names, f"left out of the wheel (pyproject.toml package-data): {sorted(expected - names)}"


def test_installed_cli_reports_the_project_version(built):
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    out = run([built["cli"], "--version"], cwd=built["tmp"])
    assert out.stdout.strip() == f"alignment-node {version}"


def test_installed_package_is_the_one_imported_and_has_no_models_extra(built):
    probe = ("import importlib.util, json, alignment_node\n"
             "print(json.dumps({'file': alignment_node.__file__,\n"
             "                  'torch': importlib.util.find_spec('torch') is not None}))")
    seen = json.loads(run([built["python"], "-c", probe], cwd=built["tmp"]).stdout)
    assert Path(seen["file"]).is_relative_to(built["venv"]), seen["file"]
    assert not seen["torch"], "torch (the models extra) is in the fresh venv"


def test_installed_package_loads_its_artifacts_portal_and_deploy_defaults(built):
    probe = (
        "import json\n"
        "from alignment_node.chain.artifacts import ARTIFACTS_DIR, artifact_names, load_artifact\n"
        "from alignment_node.api.portal import PORTAL_DIR, portal_config, ABI_CONTRACTS\n"
        "from alignment_node.devnet.params import default_params\n"
        "manifest = {'chainId': 1, 'deployBlock': 0, 'contracts': {n: '0x' + '11' * 20 for n in ABI_CONTRACTS}}\n"
        "cfg = portal_config(manifest, ['http://127.0.0.1:8545'], '0x' + '22' * 20)\n"
        "print(json.dumps({'dir': str(ARTIFACTS_DIR), 'portal': str(PORTAL_DIR),\n"
        "    'artifacts': {n: len(load_artifact(n).abi) for n in artifact_names()},\n"
        "    'portal_abis': sorted(cfg['abis']), 'epoch_length': default_params()['protocol']['epochLength']}))\n"
    )
    seen = json.loads(run([built["python"], "-c", probe], cwd=built["tmp"]).stdout)
    assert Path(seen["dir"]).is_relative_to(built["venv"]) and Path(seen["portal"]).is_relative_to(built["venv"])
    repo_artifacts = sorted(p.stem for p in (PACKAGE / "chain" / "artifacts").glob("*.json"))
    assert sorted(seen["artifacts"]) == repo_artifacts
    assert all(n > 0 for n in seen["artifacts"].values()), seen["artifacts"]
    assert len(seen["portal_abis"]) >= 5
    assert seen["epoch_length"] >= 1


def sample_node(directory: Path, cli: Path, contracts: list[str]) -> Path:
    """A node directory as an operator sets it up: a fresh key in a keystore, its password file, a deployment
    manifest naming ``contracts`` and the config; returns the config's path."""
    directory.mkdir()
    password = directory / "password"
    password.write_text(os.urandom(16).hex() + "\n")
    password.chmod(0o600)
    run([cli, "keys", "new", "--keystore", directory / "keystore", "--password-file", password], cwd=directory)
    manifest = {"chainId": 31337, "deployBlock": 1,
                "contracts": {name: "0x" + f"{i + 1:040x}" for i, name in enumerate(contracts)}}
    (directory / "deployment.json").write_text(json.dumps(manifest))
    config = directory / "config.toml"
    config.write_text('data_dir = "data"\n[chain]\nrpc_urls = ["http://127.0.0.1:8545"]\nmanifest = "deployment.json"\n'
                      '[operator]\nkeystore = "keystore"\npassword_file = "password"\n')
    return config


def test_installed_validate_config_accepts_a_sample_node_and_loads_every_artifact(built):
    names = sorted(p.stem for p in (PACKAGE / "chain" / "artifacts").glob("*.json"))
    config = sample_node(built["tmp"] / "node-ok", built["cli"], names)
    out = run([built["cli"], "validate-config", "--config", config, "--json"], cwd=built["tmp"], check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout) == {"ok": True, "problems": []}


def test_installed_validate_config_names_a_contract_without_artifact_and_where_it_looked(built):
    config = sample_node(built["tmp"] / "node-bad", built["cli"], ["AuditProtocol", "NoSuchContract"])
    out = run([built["cli"], "validate-config", "--config", config, "--json"], cwd=built["tmp"], check=False)
    assert out.returncode == 1
    (problem,) = json.loads(out.stdout)["problems"]
    assert "NoSuchContract" in problem and "AuditProtocol" not in problem
    # The artifacts it looked in are the installed package's, not the repository's.
    assert str(built["venv"]) in problem and str(REPO / "alignment_node") not in problem


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_verifies_clean_with_the_installed_command(built, tmp_path):
    """`systemd-analyze verify` on packaging/alignment-node.service, its ExecStart pointed at the wheel's command
    (verify checks the command exists): no unknown keys, no bad values, nothing on stderr."""
    unit = (REPO / "packaging" / "alignment-node.service").read_text()
    assert "ExecStart=/opt/alignment-node/bin/alignment-node start --config /etc/alignment-node/config.toml" in unit
    (tmp_path / "alignment-node.service").write_text(unit.replace("/opt/alignment-node/bin/alignment-node",
                                                                  str(built["cli"])))
    out = run(["systemd-analyze", "verify", tmp_path / "alignment-node.service"], cwd=tmp_path, check=False)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
