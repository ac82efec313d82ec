#!/usr/bin/env python3
"""
NAME
    verify_report.py - verify a Sluice report without any Sluice code

SYNOPSIS
    verify_report.py REPORT PUBKEY [FILE] [--report-only] [--skip-mldsa]
    verify_report.py --consistency PROOF PUBKEY OLDHEAD [--skip-mldsa]

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

    --consistency checks that a log only grew (docs/report-format.md section
    8.5): PROOF is the line `sluice log prove DIR --from M --to N` prints
    (from, to, fromRoot, toRoot, proof, head), OLDHEAD a tree head of size M
    the consumer kept (one line of the heads file). It checks the signatures
    of OLDHEAD and of PROOF's head (size N), that their roots are fromRoot
    and toRoot, and the RFC 9162 section 2.1.4.2 consistency proof between
    them. Exit 0 (10 with --skip-mldsa) when all hold, 3 when one fails, 6
    for a malformed PROOF or head, 7 for a head signed by another key.
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
    if not is_int(index) or not is_int(size) or not (0 <= index < size) or len(proof) > 64:
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


def verify_consistency(first, second, first_hash, second_hash, proof):
    """RFC 9162 section 2.1.4.2; for first = 0 or first = second the proof is empty."""
    if not is_int(first) or not is_int(second) or not (0 <= first <= second) or len(proof) > 64:
        return False
    if first == 0:
        return proof == [] and first_hash == sha256(b"")
    if first == second:
        return proof == [] and first_hash == second_hash
    if not proof:
        return False
    path = [first_hash] + proof if first & (first - 1) == 0 else list(proof)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = sha256(b"\x01" + c + fr)
            sr = sha256(b"\x01" + c + sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = sha256(b"\x01" + sr + c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_hash and sr == second_hash


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def hash_hex(v, what):
    """32 bytes from 64 lowercase hex digits, else exit 6."""
    if not isinstance(v, str) or len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
        fail(6, "malformed: %s must be 64 lowercase hex digits" % what)
    return bytes.fromhex(v)


TREE_HEAD_MEMBERS = {"format", "station", "key", "size", "root", "time", "signature"}


def tree_head_message(head, what):
    """The signed bytes of a tree head (section 8.2), after checking its members; else exit 6."""
    if not isinstance(head, dict) or set(head) != TREE_HEAD_MEMBERS or head["format"] != "sluice-treehead/1":
        fail(6, "malformed: %s is not a sluice-treehead/1 tree head" % what)
    if not is_int(head["size"]) or head["size"] < 0:
        fail(6, "malformed: %s size" % what)
    hash_hex(head["root"], "%s root" % what)
    if not isinstance(head["signature"], dict) or set(head["signature"]) != {"ed25519", "mldsa65"}:
        fail(6, "malformed: %s signature" % what)
    return TREE_HEAD_LABEL + b"\x00" + jcs({k: v for k, v in head.items() if k != "signature"})


def check_signatures(message, sig, pub, skip_mldsa, what):
    """Ed25519 and (unless skip_mldsa) ML-DSA-65 over message; exit 3 naming the one that fails."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        ed_sig = base64.b64decode(sig["ed25519"], validate=True)
        ml_sig = base64.b64decode(sig["mldsa65"], validate=True)
    except (ValueError, TypeError) as e:
        fail(6, "malformed: %s signature: %s" % (what, e))
    try:
        Ed25519PublicKey.from_public_bytes(pub["ed25519"]).verify(ed_sig, message)
    except InvalidSignature:
        fail(3, "bad signature: %sEd25519" % what)
    if not skip_mldsa:
        try:
            import oqs  # liboqs-python: pure ML-DSA with the empty context
        except ImportError:
            fail(2, "liboqs-python (module oqs) is not installed: cannot verify ML-DSA-65")

        with oqs.Signature("ML-DSA-65") as verifier:
            if not verifier.verify(message, ml_sig, pub["mldsa65"]):
                fail(3, "bad signature: %sML-DSA-65" % what)


def load_public_key(path):
    """{key, ed25519, mldsa65} of a public key file (section 4); exit 2 when it is not one."""
    try:
        pub = json.loads(open(path, "rb").read().decode("utf-8"), object_pairs_hook=no_duplicates)
        ed_pub = base64.b64decode(pub["ed25519"], validate=True)
        ml_pub = base64.b64decode(pub["mldsa65"], validate=True)
    except (ValueError, KeyError, TypeError) as e:
        fail(2, "public key file: %s" % e)
    key_id = hashlib.sha256(ed_pub + ml_pub).digest()[:16].hex()
    if pub["key"] != key_id:
        fail(2, "public key file: key id does not match its keys")
    return {"key": key_id, "ed25519": ed_pub, "mldsa65": ml_pub}


def consistency_main(args, skip_mldsa):
    """--consistency PROOF PUBKEY OLDHEAD: see DESCRIPTION."""
    if len(args) != 3:
        fail(2, __doc__)
    pub = load_public_key(args[1])
    try:
        doc = json.loads(open(args[0], "rb").read().decode("ascii"), object_pairs_hook=no_duplicates)
        old = json.loads(open(args[2], "rb").read().decode("ascii"), object_pairs_hook=no_duplicates)
        if set(doc) != {"from", "to", "fromRoot", "toRoot", "proof", "head"}:
            fail(6, "malformed proof: members must be from, to, fromRoot, toRoot, proof, head (a signed head of size to)")
        first, second = doc["from"], doc["to"]
        if not is_int(first) or not is_int(second) or not 0 <= first <= second:
            fail(6, "malformed proof: from and to must be whole numbers, from <= to")
        if not isinstance(doc["proof"], list):
            fail(6, "malformed proof: proof must be an array")
        from_root = hash_hex(doc["fromRoot"], "fromRoot")
        to_root = hash_hex(doc["toRoot"], "toRoot")
        proof = [hash_hex(h, "proof[%d]" % i) for i, h in enumerate(doc["proof"])]
    except (ValueError, KeyError, TypeError) as e:
        fail(6, "malformed: %s" % e)
    new = doc["head"]
    heads = [(old, "old head ", first, from_root), (new, "new head ", second, to_root)]
    messages = [tree_head_message(h, what.strip()) for h, what, _, _ in heads]
    for (h, what, size, root), message in zip(heads, messages):
        if h["key"] != pub["key"]:
            fail(7, "unknown key: %ssigned by %s, public key %s" % (what, h["key"], pub["key"]))
        check_signatures(message, h["signature"], pub, skip_mldsa, what)
        if h["size"] != size or bytes.fromhex(h["root"]) != root:
            fail(3, "%sis not the tree of size %d and root %s the proof is about" % (what, size, root.hex()))
    if old["station"] != new["station"]:
        fail(3, "the two heads name different stations")
    if not verify_consistency(first, second, from_root, to_root, proof):
        fail(3, "inconsistent: the proof does not show the tree of size %d as a prefix of the tree of size %d" % (first, second))
    if skip_mldsa:
        fail(10, "consistent, Ed25519 ok; ML-DSA-65 NOT checked (--skip-mldsa)")
    print("ok: the log of size %d is a prefix of the log of size %d, both heads signed" % (first, second))
    return 0


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
    if "--consistency" in flags:
        if flags - {"--consistency", "--skip-mldsa"}:
            fail(2, __doc__)
        return consistency_main(args, "--skip-mldsa" in flags)
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
            if not isinstance(log["proof"], list):
                fail(6, "malformed report: log.proof must be an array")
            proof = [hash_hex(h, "log.proof[%d]" % i) for i, h in enumerate(log["proof"])]
            head_message = tree_head_message(head, "log.head")
            head_root = bytes.fromhex(head["root"])
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
        if not verify_inclusion(leaf_hash, log["index"], head["size"], proof, head_root):
            fail(3, "bad signature: the inclusion proof does not lead to log.head.root")
        message = head_message

    check_signatures(message, sig, {"ed25519": ed_pub, "mldsa65": ml_pub}, skip_mldsa, "")

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
