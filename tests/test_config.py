"""Config: TOML + ZG_ALIGNMENT_NODE_* overrides, and errors that name exactly what is wrong."""

import pytest

from alignment_node.config import ConfigError, load_config

GOOD = """
data_dir = "node-data"
log_level = "debug"
[chain]
rpc_urls = ["http://127.0.0.1:8545", "http://127.0.0.1:8546"]
manifest = "deployment.json"
[operator]
keystore = "keys"
password_env = "NODE_PASSWORD"
[service]
port = 9200
"""


def write(tmp_path, text):
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_file_values_and_env_overrides(tmp_path):
    cfg = load_config(
        write(tmp_path, GOOD),
        env={"ZG_ALIGNMENT_NODE_SERVICE_PORT": "9300", "ZG_ALIGNMENT_NODE_LOG_LEVEL": "WARNING",
             "ZG_ALIGNMENT_NODE_CHAIN_RPC_URLS": "http://a:1, http://b:2", "OTHER": "x"},
    )
    assert cfg.service.port == 9300
    assert cfg.log_level == "warning"
    assert cfg.chain.rpc_urls == ["http://a:1", "http://b:2"]
    assert cfg.data_dir == "node-data"
    assert cfg.resolve(cfg.operator.keystore) == tmp_path / "keys"


def test_every_problem_is_named(tmp_path):
    bad = GOOD.replace('port = 9200', 'port = 70000\nbogus = 1').replace('log_level = "debug"', 'log_level = "loud"')
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, bad), env={"ZG_ALIGNMENT_NODE_GAS_MAX_FEE_GWEI": "lots",
                                               "ZG_ALIGNMENT_NODE_NOPE": "1"})
    text = str(err.value)
    for needle in ("service.port", "service.bogus: unknown key", "log_level", "ZG_ALIGNMENT_NODE_GAS_MAX_FEE_GWEI",
                   "ZG_ALIGNMENT_NODE_NOPE"):
        assert needle in text, needle


def test_password_source_must_be_exactly_one(tmp_path):
    with pytest.raises(ConfigError, match="exactly one of password_file or password_env"):
        load_config(write(tmp_path, GOOD.replace('password_env = "NODE_PASSWORD"', "")), env={})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml", env={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[chain\nx="), env={})
    with pytest.raises(ConfigError, match="not an http"):
        load_config(write(tmp_path, GOOD.replace("http://127.0.0.1:8546", "ftp://x")), env={})


@pytest.mark.parametrize("value", ["9101", "0.0.0.0", "0.0.0.0:port", ":9101", "host:70000"])
def test_public_evidence_must_be_host_and_port(tmp_path, value):
    with pytest.raises(ConfigError, match="service.public_evidence: .* is not host:port"):
        load_config(write(tmp_path, GOOD.replace("port = 9200", f'port = 9200\npublic_evidence = "{value}"')), env={})
    for good in ("0.0.0.0:9101", "[::]:9101", "127.0.0.1:0"):
        cfg = load_config(write(tmp_path, GOOD.replace("port = 9200", f'port = 9200\npublic_evidence = "{good}"')),
                          env={})
        assert cfg.service.public_evidence == good
