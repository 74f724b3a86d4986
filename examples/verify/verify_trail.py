#!/usr/bin/env python3
"""Verifies an audit trail written as JSON lines, with the Python standard library only.

An independent check of the algorithm the README documents: it shares no code with the Rust
verifier. For every stream in the files it checks each event's SHA-256 hash, the prevHash
links, that every missing seq is named by a system.audit.dropped report, and (with --keys)
the Ed25519 signatures of the system.audit.checkpoint events.

    python3 verify_trail.py [--keys KEYRING.json] [--json] FILE...

Exit status: 0 every event verified and every stream closed by its final checkpoint, 1 a
problem was found, 2 no problem but not everything is proven (events after the last
checkpoint, a stream without its final checkpoint, or no --keys), 3 the files or keys could
not be read.
"""

import hashlib
import json
import sys

GENESIS = "0" * 64
SUFFIX_LEN = len(',"hash":"') + 64 + len('"}}')

# --- Ed25519 signature verification (RFC 8032, section 5.1.7) -------------------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s, point):
    acc = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            acc = _add(acc, point)
        point = _add(point, point)
        s >>= 1
    return acc


def _equal(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def _recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def _decompress(b):
    if len(b) != 32:
        return None
    y = int.from_bytes(b, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


_GY = 4 * pow(5, P - 2, P) % P
G = (_recover_x(_GY, 0), _GY, 1, _recover_x(_GY, 0) * _GY % P)


def ed25519_verify(public, message, signature):
    if len(public) != 32 or len(signature) != 64:
        return False
    a = _decompress(public)
    r = _decompress(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    return _equal(_mul(s, G), _add(r, _mul(h, a)))


# --- The trail ------------------------------------------------------------------------------


def line_hash(line):
    """The hash the line's bytes really have, and the hash it claims (None if not chained)."""
    if len(line) < SUFFIX_LEN:
        return None, None
    tail = line[-SUFFIX_LEN:]
    if not (tail.startswith(',"hash":"') and tail.endswith('"}}')):
        return None, None
    claimed = tail[len(',"hash":"'):-3]
    covered = line[:-SUFFIX_LEN] + "}}"
    return hashlib.sha256(covered.encode("utf-8")).hexdigest(), claimed


class Stream:
    def __init__(self, name, first):
        self.name = name
        self.first = first
        self.last = None  # (seq, hash)
        self.events = 0
        self.recent = []  # [seq, hash, counted]
        self.drops = []
        self.missing = []  # [first, last, position]
        self.seen = {}
        self.verified_through = None
        self.closed = False


class Trail:
    def __init__(self, keys):
        self.keys = keys
        self.position = 0
        self.streams = {}
        self.problems = []
        self.events = self.verified = self.dropped = self.duplicates = 0

    def problem(self, kind, stream=None, seq=None, detail="", position=None, last_seq=None):
        self.problems.append({"kind": kind, "position": position or self.position,
                              "stream": stream, "seq": seq, "lastSeq": last_seq,
                              "detail": detail})

    def push(self, line):
        self.position += 1
        self.events += 1
        try:
            event = json.loads(line)
            integrity = event["integrity"]
            stream, seq = integrity["stream"], integrity["seq"]
            event["id"], event["eventType"]
        except (ValueError, KeyError, TypeError):
            self.problem("malformed", detail="not an audit event")
            return
        prev, claimed = integrity.get("prevHash"), integrity.get("hash")
        if prev is None or claimed is None:
            self.problem("unchained", stream, seq, "no hash chain")
            return
        actual, in_line = line_hash(line)
        if actual != claimed or in_line != claimed:
            self.problem("modified", stream, seq, "bytes do not match the hash")
        st = self.streams.setdefault(stream, Stream(stream, seq))
        st.events += 1
        if st.last is not None and seq <= st.last[0]:
            seen = st.seen.get(seq)
            self._take_missing(st, seq)
            if seen == claimed:
                self.duplicates += 1
                st.events -= 1
            elif seen is not None:
                self.problem("inserted", stream, seq, "a second event with this seq")
            else:
                self.problem("reordered", stream, seq, "comes after seq %d" % st.last[0])
            return
        st.seen[seq] = claimed
        start, cursor = (st.last[0] + 1, st.last[1]) if st.last else (1, GENESIS)
        if start < seq:
            st.missing.append([start, seq - 1, self.position])
            cursor = None
        if cursor is not None and cursor != prev:
            self.problem("brokenLink", stream, seq, "prevHash is not the previous hash")
        st.last = (seq, claimed)
        st.recent.append([seq, claimed, False])
        kind = event["eventType"]
        details = event.get("details") or {}
        if kind == "system.audit.dropped":
            if isinstance(details.get("firstSeq"), int) and isinstance(details.get("lastSeq"), int):
                st.drops.append((details["firstSeq"], details["lastSeq"]))
        elif kind == "system.audit.checkpoint":
            self.checkpoint(st, seq, details)

    @staticmethod
    def _take_missing(st, seq):
        for i, (a, b, p) in enumerate(st.missing):
            if a <= seq <= b:
                del st.missing[i]
                if a < seq:
                    st.missing.append([a, seq - 1, p])
                if seq < b:
                    st.missing.append([seq + 1, b, p])
                return

    def checkpoint(self, st, seq, d):
        fields = [d.get(k) for k in ("stream", "seq", "head", "time", "keyId", "signatureHex")]
        if any(f is None for f in fields):
            self.problem("badCheckpoint", st.name, seq, "a field is missing")
            return
        cp_stream, cp_seq, head, time, key_id, sig = fields
        last = d.get("final") is True
        if cp_stream != st.name or cp_seq >= seq:
            self.problem("badCheckpoint", st.name, seq, "names another position")
            return
        found = [r for r in st.recent if r[0] == cp_seq]
        if not found:
            self.problem("badCheckpoint", st.name, seq, "covers a seq not in the input")
            return
        if found[0][1] != head:
            self.problem("badCheckpoint", st.name, seq, "chain head differs")
            return
        if self.keys is None:
            return
        if key_id not in self.keys:
            self.problem("unknownKey", st.name, seq, "key %s not in the keyring" % key_id)
            return
        message = "\n".join(["audit-checkpoint-v1", cp_stream, str(cp_seq), head, time,
                             key_id, "final" if last else "interval"]).encode("utf-8")
        try:
            signature = bytes.fromhex(sig)
        except ValueError:
            signature = b""
        if not ed25519_verify(self.keys[key_id], message, signature):
            self.problem("badCheckpoint", st.name, seq, "signature does not verify")
            return
        for r in st.recent:
            if (r[0] <= cp_seq or r[0] == seq) and not r[2]:
                r[2] = True
                self.verified += 1
        st.recent = [r for r in st.recent if r[0] >= cp_seq]
        st.verified_through = cp_seq
        st.closed = last

    def finish(self):
        unverifiable = 0
        streams = []
        for name in sorted(self.streams):
            st = self.streams[name]
            if st.closed and st.recent and not st.recent[-1][2]:
                st.closed = False
            drops = sorted(st.drops)
            for a, b, position in st.missing:
                nxt = a
                for x, y in drops:
                    if y < nxt or x > b:
                        continue
                    if x > nxt:
                        self.problem("deleted", name, nxt, "missing", position, x - 1)
                    end = min(y, b)
                    self.dropped += end - max(x, nxt) + 1
                    nxt = end + 1
                    if nxt > b:
                        break
                if nxt <= b:
                    self.problem("deleted", name, nxt, "missing", position, b)
            unverifiable += sum(1 for r in st.recent if not r[2])
            streams.append({"stream": name, "events": st.events,
                            "verifiedThrough": st.verified_through, "closed": st.closed})
        self.problems.sort(key=lambda p: p["position"])
        return {"events": self.events, "verified": self.verified,
                "unverifiable": unverifiable, "dropped": self.dropped,
                "duplicates": self.duplicates, "signaturesChecked": self.keys is not None,
                "streams": streams, "problems": self.problems}


def shown(value):
    """Text from the trail, safe for a terminal: control characters escaped, 200 at most."""
    text = "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode()
                   for c in str(value))
    return text if len(text) <= 200 else text[:200] + "…"


def load_keys(path):
    with open(path, encoding="utf-8") as f:
        ring = json.load(f)
    keys = {}
    for k in ring["keys"]:
        public = bytes.fromhex(k["publicKey"])
        if hashlib.sha256(public).hexdigest()[:16] != k["keyId"]:
            raise ValueError("key id %s does not match its key" % k["keyId"])
        keys[k["keyId"]] = public
    return keys


def main(argv):
    keys, as_json, files = None, False, []
    args = iter(argv)
    try:
        for a in args:
            if a == "--keys":
                keys = load_keys(next(args))
            elif a == "--json":
                as_json = True
            else:
                files.append(a)
        if not files:
            raise ValueError("no file given")
        trail = Trail(keys)
        for path in files:
            with open(path, encoding="utf-8", newline="") as f:
                for line in f:
                    line = line.rstrip("\r\n")
                    if line:
                        trail.push(line)
    except (OSError, ValueError, KeyError, StopIteration) as e:
        print("verify_trail: %s" % (e or "bad arguments"), file=sys.stderr)
        return 3
    report = trail.finish()
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        for p in report["problems"]:
            print(shown("PROBLEM %(kind)s at record %(position)d, stream %(stream)s, seq %(seq)s: "
                        "%(detail)s" % p))
        print("%d events, %d verified, %d not covered by a checkpoint"
              % (report["events"], report["verified"], report["unverifiable"]))
    if report["problems"]:
        return 1
    if report["unverifiable"] or keys is None or not all(s["closed"] for s in report["streams"]):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
