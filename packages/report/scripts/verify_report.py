#!/usr/bin/env python3
"""
NAME
    verify_report.py - verify a Sluice report without any Sluice code

SYNOPSIS
    verify_report.py REPORT PUBKEY [FILE] [--report-only] [--skip-mldsa]

DESCRIPTION
    An independent implementation of docs/report-format.md, section
    "Verifying with an independent tool". Needs Python 3.8+, `cryptography`
    (Ed25519) and `liboqs-python` (module `oqs`, ML-DSA-65). --skip-mldsa checks
    only Ed25519 and exits 10 instead of 0 on success: it exists to test the
    canonical bytes where liboqs is not installed, and is NOT a verification.

    Exit codes are those of `sluice verify`: 0 ok, 3 bad signature, 4 size or
    digest mismatch, 5 verdict rejected, 6 malformed, 7 unknown key.

    Formats: sluice-report/3 (the log's inclusion proof and signed tree
    head, docs/report-format.md section 8), sluice-report/2, and
    sluice-report/1 as earlier versions issued
    it (its "signature" also holds "context", an unauthenticated copy of the
    label, which must equal it and is otherwise ignored). The label that
    starts the signed bytes is the report's "format".

    A report of an upload never copied (sha256 null; in sluice-report/1, the
    pickup-refusal check beside size 0 and the digest of empty input)
    vouches for no bytes: no FILE matches it (exit 4).

    Canonical JSON: for this schema (ASCII keys; strings, integers and null)
    json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) is
    RFC 8785 JCS: Python sorts keys by code point, which equals JCS's UTF-16
    order for ASCII keys, and escapes exactly what ECMAScript escapes.
    This script does not enforce every schema rule of the TypeScript verifier;
    it checks the signatures, the binding to FILE and the verdict.
"""
import base64
import hashlib
import json
import sys

SIGNATURE_MEMBERS = {
    "sluice-report/1": {"context", "ed25519", "mldsa65"},
    "sluice-report/2": {"ed25519", "mldsa65"},
    "sluice-report/3": {"ed25519", "mldsa65"},  # the signature of log.head (docs/report-format.md section 8)
}
LOGGED = "sluice-report/3"
TREE_HEAD_LABEL = b"sluice-treehead/1"


def sha256(b):
    return hashlib.sha256(b).digest()


def verify_inclusion(leaf_hash, index, size, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if not (0 <= index < size) or len(proof) > 64:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = sha256(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def fail(code, why):
    print(why)
    sys.exit(code)


def no_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            fail(6, "malformed report: duplicate key %r" % k)
        obj[k] = v
    return obj


def never_copied(report):
    if report["sha256"] is None:
        return True
    return (
        report["format"] == "sluice-report/1"
        and report["verdict"] == "rejected"
        and report["size"] == 0
        and report["sha256"] == EMPTY_SHA256
        and any(
            c["name"] == "ingress" and c["result"] == "fail" and c["reason"].startswith("refused at pickup: ")
            for c in report["checks"]
        )
    )


def jcs(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def main(argv):
    flags = {a for a in argv if a.startswith("--")}
    args = [a for a in argv if not a.startswith("--")]
    if len(args) not in (2, 3) or flags - {"--report-only", "--skip-mldsa"}:
        fail(2, __doc__)
    report_only = "--report-only" in flags
    skip_mldsa = "--skip-mldsa" in flags
    if not report_only and len(args) != 3:
        fail(2, "FILE required unless --report-only")

    text = open(args[0], "rb").read()
    try:
        report = json.loads(text.decode("ascii"), object_pairs_hook=no_duplicates)
        pub = json.loads(open(args[1], "rb").read().decode("utf-8"), object_pairs_hook=no_duplicates)
        logged = report.get("format") == LOGGED
        if logged:
            log = report["log"]
            head = log["head"]
            sig = head["signature"]
            body = {k: v for k, v in report.items() if k != "log"}
            if "signature" in report or head.get("format") != "sluice-treehead/1":
                fail(6, "malformed report: a sluice-report/3 report has log.head and no signature")
            if head["key"] != report["key"] or head["station"] != report["station"]:
                fail(6, "malformed report: log.head names another key or station")
            proof = [bytes.fromhex(h) for h in log["proof"]]
            if any(len(h) != 32 for h in proof):
                fail(6, "malformed report: log.proof")
        else:
            sig = report["signature"]
            body = {k: v for k, v in report.items() if k != "signature"}
        ed_sig = base64.b64decode(sig["ed25519"], validate=True)
        ml_sig = base64.b64decode(sig["mldsa65"], validate=True)
        ed_pub = base64.b64decode(pub["ed25519"], validate=True)
        ml_pub = base64.b64decode(pub["mldsa65"], validate=True)
        fmt = report["format"]
        if fmt not in SIGNATURE_MEMBERS or set(sig) != SIGNATURE_MEMBERS[fmt]:
            fail(6, "malformed report: unknown format, or signature members not those of its format")
        if "context" in sig and sig["context"] != fmt:
            fail(6, "malformed report: signature.context is not the label")
    except (ValueError, KeyError, TypeError) as e:
        fail(6, "malformed report: %s" % e)

    key_id = hashlib.sha256(ed_pub + ml_pub).digest()[:16].hex()
    if pub["key"] != key_id:
        fail(2, "public key file: key id does not match its keys")
    if report["key"] != key_id:
        fail(7, "unknown key: report key %s, public key %s" % (report["key"], key_id))

    message = fmt.encode("ascii") + b"\x00" + jcs(body)
    if logged:
        leaf_hash = sha256(b"\x00" + message)
        if not verify_inclusion(leaf_hash, log["index"], head["size"], proof, bytes.fromhex(head["root"])):
            fail(3, "bad signature: the inclusion proof does not lead to log.head.root")
        message = TREE_HEAD_LABEL + b"\x00" + jcs({k: v for k, v in head.items() if k != "signature"})

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(ed_pub).verify(ed_sig, message)
    except InvalidSignature:
        fail(3, "bad signature: Ed25519")
    if not skip_mldsa:
        try:
            import oqs  # liboqs-python: pure ML-DSA with the empty context
        except ImportError:
            fail(2, "liboqs-python (module oqs) is not installed: cannot verify ML-DSA-65")

        with oqs.Signature("ML-DSA-65") as verifier:
            if not verifier.verify(message, ml_sig, ml_pub):
                fail(3, "bad signature: ML-DSA-65")

    if not report_only:
        data = open(args[2], "rb").read()
        if never_copied(report):
            fail(4, "file does not match report: the upload was refused at pickup and never copied")
        if len(data) != report["size"] or hashlib.sha256(data).hexdigest() != report["sha256"]:
            fail(4, "file does not match report")
        if report["verdict"] != "accepted":
            fail(5, "verdict rejected: %s" % json.dumps(report["reason"]))
    if skip_mldsa:
        fail(10, "Ed25519 ok; ML-DSA-65 NOT checked (--skip-mldsa)")
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
