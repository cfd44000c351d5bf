"""The TEE layer of MODEL audits: response signatures and attestation reports (docs/spec/TEE.md).

A provider that claims a TEE (0G Compute's ``verifiability = "TeeML"``) signs every completion with a key held in
the TEE: the signed text is ``sha256(request body):sha256(response body)`` (lower-case hex of the exact bytes
on the wire, joined by a colon), signed with EIP-191 ``personal_sign`` (secp256k1, 65 bytes r || s || v, v 27 or
28). The provider serves that signature as JSON at ``/v1/proxy/signature/{chatID}`` (chatID = the response's
``id``) and an attestation report whose TDX report data binds the signer's address.

Here:

- ``response_text``, ``personal_digest``, ``sign_text``, ``sign_response``, ``recover_signer``: the signature;
- ``signature_record``: the JSON the provider serves; ``check_exchange``: the auditor's check of one exchange
  (the bytes it sent and received against the served signature and the registered signer);
- ``make_devnet_report`` / ``verify_report``: the devnet's attestation report, with the binding of a TDX quote
  (report data = signer address || nonce, plus an image measurement) signed by a devnet "attestation root"
  key that stands in for Intel's certificate chain;
- ``verify_dcap_quote`` / ``dcap_quote_fields``: a real Intel TDX or SGX quote checked with PyPI ``dcap-qvl``
  (imported only when called) against collateral the caller supplies, and the same binding checks.

Every check returns ``None`` when it passes, else a one-line reason; none raises on bad input. Only the standard
library, coincurve and safe-pysha3 are imported (this runs inside the small MODEL audit worker).
"""

from __future__ import annotations

import hashlib
import json
import secrets

import coincurve

from .. import safejson
from ..chain.keccak import is_address, keccak256

__all__ = [
    "DEVNET_QUOTE_FORMAT", "MAX_BODY_BYTES", "MAX_REPORT_BYTES", "MAX_SIGNATURE_JSON_BYTES", "SIGNING_ALGO",
    "address_of", "check_exchange", "dcap_quote_fields", "make_devnet_report", "parse_signature_json",
    "personal_digest", "recover_signer", "report_data_binds", "report_data_for", "response_text", "sign_response",
    "sign_text", "signature_record", "verify_dcap_quote", "verify_report",
]

SIGNING_ALGO = "ecdsa"
MAX_SIGNATURE_JSON_BYTES = 64 * 1024
MAX_REPORT_BYTES = 1 << 20
MAX_BODY_BYTES = 64 << 20
DEVNET_QUOTE_FORMAT = "alignment-node/devnet-tdx/1"
# Domain separation of the devnet root's signature: never a valid EIP-191 message or transaction hash preimage.
_QUOTE_DOMAIN = b"alignment-node devnet TDX quote v1\x00"
_EIP191_PREFIX = b"\x19Ethereum Signed Message:\n"
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _N // 2
_HEX = frozenset("0123456789abcdefABCDEF")


# ------------------------------------------------------------------------------------------------- signatures

def response_text(request_body: bytes, response_body: bytes) -> str:
    """The text a TEE signs for one exchange: ``sha256(request):sha256(response)`` in lower-case hex."""
    return f"{hashlib.sha256(request_body).hexdigest()}:{hashlib.sha256(response_body).hexdigest()}"


def personal_digest(message: str | bytes) -> bytes:
    """EIP-191 (version 0x45, ``personal_sign``) digest: keccak256("\\x19Ethereum Signed Message:\\n" + the
    decimal byte length + the message). A str is taken as its UTF-8 bytes."""
    data = message.encode("utf-8") if isinstance(message, str) else bytes(message)
    return keccak256(_EIP191_PREFIX + str(len(data)).encode("ascii") + data)


def _private_key(private_key: bytes | str) -> coincurve.PrivateKey:
    if isinstance(private_key, str):
        text = private_key.strip()
        private_key = bytes.fromhex(text[2:] if text[:2] in ("0x", "0X") else text)
    if not isinstance(private_key, (bytes, bytearray)) or len(private_key) != 32 \
            or not 0 < int.from_bytes(private_key, "big") < _N:
        raise ValueError("a secp256k1 private key is 32 bytes in (0, n)")
    return coincurve.PrivateKey(bytes(private_key))


def _address(public_key: coincurve.PublicKey) -> str:
    return "0x" + keccak256(public_key.format(compressed=False)[1:])[-20:].hex()


def address_of(private_key: bytes | str) -> str:
    """The lower-case 0x address of a private key (32 bytes, or 64 hex digits)."""
    return _address(_private_key(private_key).public_key)


def _sign_digest(private_key: bytes | str, digest: bytes) -> bytes:
    sig = _private_key(private_key).sign_recoverable(digest, hasher=None)  # low-s, v in {0, 1}
    return sig[:64] + bytes([sig[64] + 27])


def sign_text(private_key: bytes | str, text: str | bytes) -> str:
    """EIP-191 signature of ``text``: 0x + 65 bytes (r || s || v, v = 27 or 28) in hex."""
    return "0x" + _sign_digest(private_key, personal_digest(text)).hex()


def sign_response(private_key: bytes, request_body: bytes, response_body: bytes) -> str:
    """The TEE's signature of one exchange (what the 0G broker stores for the response's chatID)."""
    return sign_text(private_key, response_text(request_body, response_body))


def _signature_bytes(signature) -> bytes | None:
    if isinstance(signature, (bytes, bytearray)):
        raw = bytes(signature)
    elif isinstance(signature, str):
        text = signature.strip()
        if text[:2] in ("0x", "0X"):
            text = text[2:]
        if len(text) != 130 or not all(c in _HEX for c in text):
            return None
        raw = bytes.fromhex(text)
    else:
        return None
    return raw if len(raw) == 65 else None


def _recover_digest(digest: bytes, signature) -> str | None:
    raw = _signature_bytes(signature)
    if raw is None:
        return None
    r, s, v = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]
    if v >= 27:
        v -= 27
    # low-s only (EIP-2; libsecp256k1 and go-ethereum always sign so): a high-s twin is refused, not recovered
    if v not in (0, 1) or not 0 < r < _N or not 0 < s <= _HALF_N:
        return None
    try:
        public = coincurve.PublicKey.from_signature_and_message(raw[:64] + bytes([v]), digest, hasher=None)
    except Exception:  # noqa: BLE001 (coincurve raises ValueError or its own errors on a point not on the curve)
        return None
    return _address(public)


def recover_signer(message: str | bytes, signature: str | bytes) -> str | None:
    """The lower-case address whose key made the EIP-191 ``signature`` (0x hex or 65 bytes) of ``message``; None
    for a malformed signature (wrong length, not hex, v not in {0, 1, 27, 28}, r or s out of range, high s).
    Never raises."""
    if not isinstance(message, (str, bytes, bytearray)):
        return None
    try:
        return _recover_digest(personal_digest(message), signature)
    except Exception:  # noqa: BLE001 (e.g. a str message with lone surrogates)
        return None


def signature_record(private_key: bytes, request_body: bytes, response_body: bytes) -> dict:
    """The JSON object a 0G provider broker serves at ``/v1/proxy/signature/{chatID}``."""
    text = response_text(request_body, response_body)
    return {"text": text, "signature": sign_text(private_key, text), "signing_address": address_of(private_key),
            "signing_algo": SIGNING_ALGO}


def _norm_address(value) -> str | None:
    return value.lower() if is_address(value) else None


def parse_signature_json(signature_json) -> tuple[dict | None, str | None]:
    """``(record, None)`` for a signature record (``text`` and ``signature`` strings, ``signing_algo`` absent or
    ``ecdsa``) given as bytes, str or dict; ``(None, reason)`` otherwise."""
    if signature_json is None:
        return None, "unsigned: the provider served no signature for the response"
    record = signature_json
    if isinstance(signature_json, (bytes, bytearray, str)):
        if len(signature_json) > MAX_SIGNATURE_JSON_BYTES:
            return None, f"the signature JSON is over {MAX_SIGNATURE_JSON_BYTES} bytes"
        if not signature_json.strip():
            return None, "unsigned: the signature answer is empty"
        try:
            record = safejson.loads(bytes(signature_json) if isinstance(signature_json, (bytes, bytearray)) else
                                    signature_json.encode())
        except (ValueError, RecursionError):
            return None, "the signature answer is not JSON"
    if not isinstance(record, dict):
        return None, "the signature answer is not a JSON object"
    text, sig = record.get("text"), record.get("signature")
    if not isinstance(text, str) or not isinstance(sig, str):
        return None, "the signature answer has no text and signature strings"
    algo = record.get("signing_algo", SIGNING_ALGO)
    if algo != SIGNING_ALGO:
        return None, f"unsupported signing_algo {str(algo)[:40]!r} (only {SIGNING_ALGO})"
    return record, None


def _body(value, name: str) -> tuple[bytes | None, str | None]:
    if value is None:
        return None, f"no {name} body recorded"
    if isinstance(value, str):
        value = value.encode("utf-8", errors="surrogatepass")
    if not isinstance(value, (bytes, bytearray, memoryview)):
        return None, f"the {name} body is not bytes"
    value = bytes(value)
    if len(value) > MAX_BODY_BYTES:
        return None, f"the {name} body is over {MAX_BODY_BYTES} bytes"
    return value, None


def check_exchange(request_body: bytes, response_body: bytes, signature_json, expected_signer: str) -> str | None:
    """The auditor's check of one exchange with a TEE provider: the served signature (``signature_json``: the
    answer of ``/v1/proxy/signature/{chatID}``, bytes, str, dict, or None when none was served) must be a valid
    EIP-191 signature by ``expected_signer`` (the registered TEE signer) of
    ``sha256(request_body):sha256(response_body)``, over the exact bytes the auditor sent and received. None if
    it is, else the reason (unsigned, malformed, signed by another key, or signed over other bytes)."""
    signer = _norm_address(expected_signer)
    if signer is None:
        return "the registered TEE signer is not an address"
    request, reason = _body(request_body, "request")
    if reason:
        return reason
    response, reason = _body(response_body, "response")
    if reason:
        return reason
    record, reason = parse_signature_json(signature_json)
    if reason:
        return reason
    text = record["text"]
    got = recover_signer(text, record["signature"])
    if got is None:
        return "malformed signature (not 65 bytes of hex with v 27/28 and a low s)"
    if got != signer:
        return f"the response is signed by {got}, not by the registered TEE signer {signer}"
    want = response_text(request, response)
    if text != want:
        parts = text.split(":")
        if len(parts) == 2 and parts[0] == want.split(":")[0]:
            return ("the signature covers other response bytes than those received "
                    f"(signed sha256 {parts[1][:64]!r}, received {want.split(':')[1]})")
        return f"the signature covers other bytes (signed text {text[:140]!r}, expected {want})"
    return None


# -------------------------------------------------------------------------------------- attestation binding

def _hex_bytes(value, name: str, *, size: int | None = None, most: int = 4096) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    elif isinstance(value, str):
        text = value[2:] if value[:2] in ("0x", "0X") else value
        if len(text) > 2 * most or len(text) % 2 or not all(c in _HEX for c in text):
            raise ValueError(f"{name} is not hex")
        raw = bytes.fromhex(text)
    else:
        raise ValueError(f"{name} is not hex")
    if size is not None and len(raw) != size:
        raise ValueError(f"{name} is {len(raw)} bytes, not {size}")
    if not raw or len(raw) > most:
        raise ValueError(f"{name} has {len(raw)} bytes")
    return raw


def report_data_for(signer: str, nonce: bytes) -> bytes:
    """The 64 bytes of TDX report data that bind a signer: its 20-byte address, zero-padded to 32 bytes, then
    the verifier's 32-byte nonce (the layout of the TEE inference proxies, docs/spec/TEE.md)."""
    if not is_address(signer):
        raise ValueError("not an address")
    if len(nonce) != 32:
        raise ValueError("the nonce is 32 bytes")
    return bytes.fromhex(signer[2:]).ljust(32, b"\0") + bytes(nonce)


def report_data_binds(report_data: bytes, expected_signer: str, nonce: bytes | None = None) -> str | None:
    """None if the 64 bytes of report data bind ``expected_signer`` (and ``nonce`` when given), in either layout
    of docs/spec/TEE.md: address (20 bytes) || 12 zero bytes || nonce (32), or the address as ASCII text
    ("0x" + 40 hex digits, any case) padded with zero bytes (the 0G broker's own quote; it carries no nonce)."""
    signer = _norm_address(expected_signer)
    if signer is None:
        return "the expected signer is not an address"
    if len(report_data) != 64:
        return f"the report data is {len(report_data)} bytes, not 64"
    want = bytes.fromhex(signer[2:])
    if report_data[:20] == want and report_data[20:32] == bytes(12):
        if nonce is not None and report_data[32:] != bytes(nonce):
            return "the report data binds another nonce (a replayed report)"
        return None
    ascii_part = report_data.rstrip(b"\0")
    if ascii_part.lower() == signer.encode("ascii"):
        if nonce is not None:
            return "the report data binds the signer but no nonce (a fresh report was asked for)"
        return None
    if len(ascii_part) == 42 and ascii_part[:2] == b"0x":
        return f"the report data binds another signer {ascii_part.decode('ascii', 'replace').lower()}"
    if report_data[20:32] == bytes(12):
        return f"the report data binds another signer 0x{report_data[:20].hex()}"
    return "the report data does not bind the signer address"


def _quote_digest(report_data: bytes, measurement: bytes) -> bytes:
    return keccak256(_QUOTE_DOMAIN + report_data + measurement)


def make_devnet_report(tee_key: bytes, measurement, root_key: bytes, nonce: bytes | str | None = None) -> dict:
    """A devnet attestation report: the shape of a TEE inference proxy's ``/attestation/report`` answer, with
    ``devnet_quote`` (report data = signer address || nonce, the image ``measurement``, signed by the devnet
    attestation root ``root_key``) in place of the Intel quote and no GPU evidence. ``nonce``: 32 bytes or 64
    hex digits (random when None)."""
    nonce_bytes = secrets.token_bytes(32) if nonce is None else _hex_bytes(nonce, "nonce", size=32)
    m = _hex_bytes(measurement, "measurement", most=64)
    signer = address_of(tee_key)
    report_data = report_data_for(signer, nonce_bytes)
    quote = {"format": DEVNET_QUOTE_FORMAT, "report_data": report_data.hex(), "measurement": m.hex(),
             "signature": "0x" + _sign_digest(root_key, _quote_digest(report_data, m)).hex()}
    return {"signing_address": signer, "signing_algo": SIGNING_ALGO, "request_nonce": nonce_bytes.hex(),
            "devnet_quote": quote, "nvidia_payload": None}


def _load_report(report) -> tuple[dict | None, str | None]:
    if isinstance(report, (bytes, bytearray, str)):
        if len(report) > MAX_REPORT_BYTES:
            return None, f"the attestation report is over {MAX_REPORT_BYTES} bytes"
        try:
            report = safejson.loads(bytes(report) if isinstance(report, (bytes, bytearray)) else report.encode())
        except (ValueError, RecursionError):
            return None, "the attestation report is not JSON"
    if not isinstance(report, dict):
        return None, "the attestation report is not a JSON object"
    return report, None


def verify_report(report, expected_signer: str, expected_measurement, trusted_roots, nonce=None) -> str | None:
    """None if the devnet attestation ``report`` (dict, or its JSON) is signed by one of ``trusted_roots``
    (addresses), binds ``expected_signer`` (and ``nonce``, 32 bytes or hex, when given) in its report data, and
    carries ``expected_measurement`` (bytes or hex); else the reason. Never raises."""
    try:
        return _verify_report(report, expected_signer, expected_measurement, trusted_roots, nonce)
    except Exception as exc:  # noqa: BLE001 (a reason, never an exception, whatever the report holds)
        return f"the attestation report cannot be checked: {type(exc).__name__}: {str(exc)[:120]}"


def _verify_report(report, expected_signer, expected_measurement, trusted_roots, nonce) -> str | None:
    signer = _norm_address(expected_signer)
    if signer is None:
        return "the registered TEE signer is not an address"
    try:
        want_m = _hex_bytes(expected_measurement, "expected measurement", most=64)
        want_nonce = None if nonce is None else _hex_bytes(nonce, "nonce", size=32)
    except ValueError as exc:
        return str(exc)
    roots = {_norm_address(r) for r in (trusted_roots or ())} - {None}
    if not roots:
        return "no trusted attestation root is configured"
    report, reason = _load_report(report)
    if reason:
        return reason
    quote = report.get("devnet_quote")
    if not isinstance(quote, dict):
        if report.get("intel_quote") or report.get("quote"):
            return "the report holds an Intel quote, not a devnet quote (verify it with verify_dcap_quote)"
        return "the attestation report has no quote"
    if quote.get("format") != DEVNET_QUOTE_FORMAT:
        return f"unknown quote format {str(quote.get('format'))[:60]!r}"
    try:
        report_data = _hex_bytes(quote.get("report_data"), "report_data", size=64)
        measurement = _hex_bytes(quote.get("measurement"), "measurement", most=64)
    except ValueError as exc:
        return f"malformed quote: {exc}"
    root = _recover_digest(_quote_digest(report_data, measurement), quote.get("signature"))
    if root is None:
        return "the quote's signature is malformed"
    if root not in roots:
        return f"the quote is signed by {root}, not by a trusted attestation root"
    reason = report_data_binds(report_data, signer, want_nonce)
    if reason:
        return reason
    if measurement != want_m:
        return f"the quote measures image {measurement.hex()[:96]}, not the registered {want_m.hex()[:96]}"
    claimed = report.get("signing_address")
    if claimed is not None and _norm_address(claimed) != signer:
        return f"the report's signing_address {str(claimed)[:44]} is not the registered signer {signer}"
    return None


# --------------------------------------------------------------------------------------- real DCAP quotes

def _quote_raw(quote) -> bytes:
    if isinstance(quote, (bytes, bytearray)):
        return bytes(quote)
    if isinstance(quote, str):  # the proxies serve intel_quote as hex
        return _hex_bytes(quote.strip(), "quote", most=1 << 16)
    raise ValueError("the quote is neither bytes nor hex")


def _report_fields(report: dict) -> dict | None:
    """TEE kind, report data and measurement from a dcap-qvl report object (``{"TD10": {...}}``, ...)."""
    if not isinstance(report, dict) or len(report) != 1:
        return None
    (kind, body), = report.items()
    if not isinstance(body, dict) or "report_data" not in body:
        return None
    fields = {"kind": kind, "report_data": bytes.fromhex(body["report_data"])}
    if "mr_td" in body:
        fields["tee"] = "TDX"
        fields["measurement"] = bytes.fromhex(body["mr_td"])
        for k in ("rt_mr0", "rt_mr1", "rt_mr2", "rt_mr3", "mr_config_id"):
            if k in body:
                fields[k] = bytes.fromhex(body[k])
    else:
        fields["tee"] = "SGX"
        fields["measurement"] = bytes.fromhex(body.get("mr_enclave", ""))
    return fields


def dcap_quote_fields(quote) -> dict | None:
    """Parse (without verifying) a TDX or SGX quote (bytes or hex) with dcap-qvl: ``{"tee": "TDX"|"SGX",
    "report_data": 64 bytes, "measurement": MRTD or MRENCLAVE, ...}``, or None if it does not parse or dcap-qvl
    is missing."""
    try:
        import dcap_qvl

        parsed = dcap_qvl.parse_quote(_quote_raw(quote))
        rep = parsed.report
        out = {"tee": "TDX" if parsed.is_tdx() else "SGX", "report_data": bytes(rep.report_data)}
        out["measurement"] = bytes(rep.mr_td) if parsed.is_tdx() else bytes(rep.mr_enclave)
        return out
    except Exception:  # noqa: BLE001 (ImportError, ValueError from a bad quote)
        return None


def verify_dcap_quote(quote, collateral, expected_signer: str | None, expected_measurement=None, *, nonce=None,
                      now: int | None = None, accepted_statuses=("UpToDate",),
                      expected_report_data: bytes | str | None = None) -> str | None:
    """None if ``quote`` (raw bytes or hex, a TDX or SGX DCAP quote) verifies with dcap-qvl against
    ``collateral`` (the QE identity, TCB info, CRLs and their issuer chains: dcap-qvl's collateral JSON as str,
    bytes or dict, or its ``QuoteCollateralV3``) at unix time ``now`` (default: the clock), with a TCB status in
    ``accepted_statuses``, and the *verified* report data binds ``expected_signer`` (and ``nonce`` when given,
    see ``report_data_binds``), or equals ``expected_report_data`` exactly when that is given instead, and its
    MRTD (TDX) or MRENCLAVE (SGX) equals ``expected_measurement`` when given; else the reason. Never raises; no network access (fetching collateral from a PCCS is the caller's)."""
    try:
        return _verify_dcap_quote(quote, collateral, expected_signer, expected_measurement, nonce, now,
                                  tuple(accepted_statuses), expected_report_data)
    except Exception as exc:  # noqa: BLE001
        return f"the quote cannot be checked: {type(exc).__name__}: {str(exc)[:120]}"


def _verify_dcap_quote(quote, collateral, expected_signer, expected_measurement, nonce, now,
                       accepted_statuses, expected_report_data) -> str | None:
    if expected_signer is None and expected_report_data is None:
        return "neither an expected signer nor expected report data was given"
    try:
        import dcap_qvl
    except ImportError:
        return "dcap-qvl is not installed: the quote cannot be verified"
    try:
        import time

        raw = _quote_raw(quote)
        if isinstance(collateral, dcap_qvl.QuoteCollateralV3):
            col = collateral
        else:
            text = json.dumps(collateral) if isinstance(collateral, dict) else collateral
            if isinstance(text, (bytes, bytearray)):
                text = bytes(text).decode("utf-8")
            col = dcap_qvl.QuoteCollateralV3.from_json(text)
        want_m = None if expected_measurement is None else _hex_bytes(expected_measurement, "measurement", most=64)
        want_nonce = None if nonce is None else _hex_bytes(nonce, "nonce", size=32)
        want_rd = None if expected_report_data is None else _hex_bytes(expected_report_data, "report data", size=64)
    except Exception as exc:  # noqa: BLE001
        return f"malformed quote or collateral: {str(exc)[:160]}"
    try:
        verified = dcap_qvl.verify(raw, col, int(time.time()) if now is None else int(now))
    except Exception as exc:  # noqa: BLE001 (dcap-qvl raises ValueError with the cause)
        return "the quote does not verify: " + " ".join(str(exc).split())[:200]
    if verified.status not in accepted_statuses:
        advisories = ", ".join(verified.advisory_ids)
        return f"the platform's TCB status is {verified.status}" + (f" ({advisories})" if advisories else "")
    try:
        fields = _report_fields(json.loads(verified.to_json()).get("report"))
    except (ValueError, AttributeError):
        fields = None
    if fields is None:
        return "the verified quote has no report data"
    if want_rd is not None and fields["report_data"] != want_rd:
        return f"the quote's report data is {fields['report_data'].hex()}, not the expected {want_rd.hex()}"
    if expected_signer is not None:
        reason = report_data_binds(fields["report_data"], expected_signer, want_nonce)
        if reason:
            return reason
    if want_m is not None and fields["measurement"] != want_m:
        return f"the quote measures {fields['measurement'].hex()[:96]}, not the registered {want_m.hex()[:96]}"
    return None
