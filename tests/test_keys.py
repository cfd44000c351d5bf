"""Keystore v3: create, import, unlock without a prompt, and never a private key in clear on disk."""

import json

import coincurve
import pytest

from alignment_node import keys

# anvil's first well-known development key (public knowledge; never a real key)
DEV_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_checksum_matches_eip55_known_address():
    assert keys.to_checksum(DEV_ADDRESS.lower()) == DEV_ADDRESS


def test_import_then_unlock_gives_the_same_address_and_no_clear_key_on_disk(tmp_path):
    address = keys.save_key(tmp_path, bytes.fromhex(DEV_KEY), "correct horse")
    assert address == DEV_ADDRESS
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        assert DEV_KEY.encode() not in data.lower()
        assert bytes.fromhex(DEV_KEY) not in data
        assert json.loads(data)["crypto"]["kdf"] == "scrypt"
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    signer = keys.load_signer(tmp_path, "correct horse")
    assert signer.address == DEV_ADDRESS
    assert DEV_KEY not in repr(signer) and DEV_KEY not in str(signer)


def test_signer_signs_digests_that_recover_to_its_address(tmp_path):
    signer = keys.Signer(bytes.fromhex(DEV_KEY))
    digest = bytes(range(32))
    v, r, s = signer.sign_digest(digest)
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])
    public = coincurve.PublicKey.from_signature_and_message(sig, digest, hasher=None)
    assert keys.address_of_public_key(public) == DEV_ADDRESS


def test_wrong_password_is_one_clear_error(tmp_path):
    keys.save_key(tmp_path, bytes.fromhex(DEV_KEY), "right")
    with pytest.raises(keys.KeystoreError, match="wrong password"):
        keys.load_signer(tmp_path, "wrong")


def test_corrupt_keystore_is_one_clear_error(tmp_path):
    keys.save_key(tmp_path, bytes.fromhex(DEV_KEY), "pw")
    path = next(tmp_path.iterdir())
    doc = json.loads(path.read_text())
    doc["crypto"]["ciphertext"] = "zz" + doc["crypto"]["ciphertext"][2:]
    path.write_text(json.dumps(doc))
    with pytest.raises(keys.KeystoreError, match="corrupt"):
        keys.load_signer(tmp_path, "pw")
    path.write_text("not json at all")
    with pytest.raises(keys.KeystoreError, match="not an Ethereum keystore"):
        keys.load_signer(tmp_path, "pw")


def test_new_key_and_several_keys_need_an_address(tmp_path):
    a = keys.new_key(tmp_path, "pw")
    b = keys.save_key(tmp_path, bytes.fromhex(DEV_KEY), "pw")
    with pytest.raises(keys.KeystoreError, match="say which address"):
        keys.load_signer(tmp_path, "pw")
    assert keys.load_signer(tmp_path, "pw", address=a).address == a
    assert keys.load_signer(tmp_path, "pw", address=b.lower()).address == b
    with pytest.raises(keys.KeystoreError, match="already in keystore"):
        keys.save_key(tmp_path, bytes.fromhex(DEV_KEY), "pw")


def test_password_sources(tmp_path, monkeypatch):
    pw = tmp_path / "pw.txt"
    pw.write_text("secret\n")
    assert keys.read_password(password_file=str(pw)) == "secret"
    monkeypatch.setenv("NODE_PW", "from-env")
    assert keys.read_password(password_env="NODE_PW") == "from-env"
    with pytest.raises(keys.KeystoreError, match="exactly one"):
        keys.read_password(password_file=str(pw), password_env="NODE_PW")
    with pytest.raises(keys.KeystoreError, match="is not set"):
        keys.read_password(password_env="NO_SUCH_VARIABLE_XYZ")
    with pytest.raises(keys.KeystoreError, match="does not exist"):
        keys.read_password(password_file=str(tmp_path / "missing"))


@pytest.mark.parametrize("text", ["", "0x12", "zz" * 32, "00" * 31])
def test_bad_private_key_text_is_rejected(text):
    with pytest.raises(keys.KeystoreError):
        keys.parse_private_key(text)


def test_zero_key_is_rejected():
    with pytest.raises(keys.KeystoreError, match="range"):
        keys.Signer(bytes(32))


def _costly_keystore(directory, password: str, n: int = 1 << 16):
    """A keystore written as geth-like tools do, with a scrypt cost above the node's unlock limit."""
    from eth_keyfile import create_keyfile_json

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "UTC--costly"
    path.write_text(json.dumps(create_keyfile_json(bytes.fromhex(DEV_KEY), password.encode(), kdf="scrypt",
                                                   iterations=n)))
    return path


def test_a_keystore_too_costly_to_unlock_within_the_node_budget_is_refused_before_any_work(tmp_path):
    path = _costly_keystore(tmp_path / "ks", "pw")
    assert keys.unlock_memory(json.loads(path.read_text()))[0] == 128 * 8 * (1 << 16)  # 64 MB
    with pytest.raises(keys.KeystoreError, match=r"needs 64 MB to unlock \(scrypt n=65536, r=8\).*keys reencrypt"):
        keys.load_signer(tmp_path / "ks", "pw", memory_limit=keys.UNLOCK_MEMORY_LIMIT)
    # refused on its parameters, not after scrypt: a wrong password gets the same refusal
    with pytest.raises(keys.KeystoreError, match="needs 64 MB"):
        keys.load_signer(tmp_path / "ks", "wrong", memory_limit=keys.UNLOCK_MEMORY_LIMIT)
    # without a limit (one-off commands) it opens
    assert keys.load_signer(tmp_path / "ks", "pw").address == DEV_ADDRESS
    # the node's own keystores fit: 16 MB
    keys.save_key(tmp_path / "own", bytes.fromhex(DEV_KEY), "pw")
    assert keys.load_signer(tmp_path / "own", "pw", memory_limit=keys.UNLOCK_MEMORY_LIMIT).address == DEV_ADDRESS


def test_reencrypt_rewrites_the_same_key_in_place_with_the_node_cost(tmp_path, capsys):
    from alignment_node import cli

    ks = tmp_path / "ks"
    path = _costly_keystore(ks, "pw")
    pw = tmp_path / "pw.txt"
    pw.write_text("wrong\n")
    before = path.read_bytes()
    assert cli.main(["keys", "reencrypt", "--keystore", str(ks), "--password-file", str(pw)]) == 1
    assert "wrong password" in capsys.readouterr().err
    assert path.read_bytes() == before and sorted(p.name for p in ks.iterdir()) == ["UTC--costly"]
    pw.write_text("pw\n")
    assert cli.main(["keys", "reencrypt", "--keystore", str(ks), "--password-file", str(pw), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["address"] == DEV_ADDRESS
    assert (out["old"], out["new"]) == ("scrypt n=65536, r=8", f"scrypt n={keys.SCRYPT_N}, r=8")
    assert sorted(p.name for p in ks.iterdir()) == ["UTC--costly"]  # same file name, no temporary left
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert DEV_KEY.encode() not in path.read_bytes().lower()
    signer = keys.load_signer(ks, "pw", memory_limit=keys.UNLOCK_MEMORY_LIMIT)
    assert signer.address == DEV_ADDRESS


def test_the_node_start_refuses_a_costly_keystore_with_one_clear_line(tmp_path, capsys):
    from alignment_node import cli

    _costly_keystore(tmp_path / "ks", "pw")
    pw = tmp_path / "pw.txt"
    pw.write_text("pw\n")
    cfg = tmp_path / "node.toml"
    cfg.write_text('[chain]\nrpc_urls = ["http://127.0.0.1:1"]\nmanifest = "m.json"\n'
                   f'[operator]\nkeystore = "{tmp_path / "ks"}"\npassword_file = "{pw}"\n')
    assert cli.main(["start", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "needs 64 MB to unlock" in err and "keys reencrypt" in err, err


def test_reencrypt_of_a_corrupt_file_is_one_clear_error_and_changes_nothing(tmp_path):
    path = _costly_keystore(tmp_path / "ks", "pw")
    doc = json.loads(path.read_text())
    doc["crypto"]["kdfparams"]["n"] = "many"  # still names its address, so the keystore lists it
    path.write_text(json.dumps(doc))
    before = path.read_bytes()
    with pytest.raises(keys.KeystoreError, match="corrupt or not keystore v3"):
        keys.reencrypt_key(tmp_path / "ks", "pw")
    assert path.read_bytes() == before


def test_start_parses_without_the_other_commands_modules(tmp_path):
    """The node unlocks its key before its large imports (the memory peak, bench/README.md): `start` must not load
    the devnet's or the models' command modules just to parse its arguments."""
    import subprocess
    import sys

    code = ("import sys; from alignment_node import cli; "
            f"rc = cli.main(['start', '--config', {str(tmp_path / 'missing.toml')!r}]); "
            "heavy = [m for m in ('alignment_node.devnet.scenarios', 'alignment_node.node.node', 'eth_abi') "
            "if m in sys.modules]; print(rc, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "1 []", out.stdout + out.stderr
