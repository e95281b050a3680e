#!/usr/bin/env python3
"""Writes Tests/Fixtures/hostile/: one small archive per kind of broken or hostile input
(issue 5). Deterministic; run from the repository root. The fuzz harness uses them as seeds.
Each file holds a valid message first where it can, so that a test sees what still loads.
The gzip bomb is not here: the test builds it (it inflates to gigabytes).
"""
import gzip, io, json, os, zlib

OUT = "Tests/Fixtures/hostile"
os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    os.remove(os.path.join(OUT, f))

def msg(mid, **kw):
    m = {"type": "track", "messageId": mid, "userId": "u1", "event": "Ok",
         "receivedAt": "2024-03-01T10:00:00.000Z", "timestamp": "2024-03-01T10:00:00.000Z",
         "properties": {"n": 1}}
    m.update(kw)
    return m

def line(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

def gz(data, mtime=0):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=mtime) as g:
        g.write(data)
    return buf.getvalue()

def put(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)

def ndjson(*lines):
    return b"".join(l + b"\n" for l in lines)

OK = line(msg("ok-1"))
many = ndjson(*[line(msg(f"m{i}", properties={"i": i, "pad": "x" * (i % 50)})) for i in range(400)])

# --- compression
whole = gz(many)
put("gz-truncated-mid-member.ndjson.gz", whole[: len(whole) // 2])
corrupt = bytearray(whole)
for i in range(len(corrupt) // 2, len(corrupt) // 2 + 16):
    corrupt[i] ^= 0x5A
put("gz-corrupt-middle.ndjson.gz", bytes(corrupt))
second = bytearray(gz(ndjson(line(msg("second-1")), line(msg("second-2")))))
second[12] ^= 0xFF; second[20] ^= 0xFF
put("gz-second-member-corrupt.ndjson.gz", gz(ndjson(OK)) + bytes(second))
put("empty.ndjson.gz", b"")
put("gz-zero-length-member.ndjson.gz", gz(b"") + gz(ndjson(OK)) + gz(b""))
put("plain-text-named.ndjson.gz", ndjson(OK))
put("binary-neither.gz", bytes([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) + bytes(range(256)) * 4)

# --- lines
put("line-invalid-json.ndjson", ndjson(OK, b'{"type":"track","messageId":"x",', b'{"a":1}}'))
put("line-not-an-object.ndjson", ndjson(OK, b'[1,2,3]', b'"just a string"', b'42', b'null', b'true'))
put("line-invalid-utf8.ndjson", ndjson(OK, b'{"type":"track","messageId":"bad-utf8","userId":"u1","event":"Caf\xc3\x28"}'))
put("line-nul-byte.ndjson", ndjson(OK, b'{"type":"track","messageId":"nul",\x00"userId":"u1","event":"E"}'))
put("line-too-long.ndjson.gz", gz(ndjson(OK, line(msg("long", properties={"blob": "y" * (2 << 20)})), line(msg("after-long")))))
put("line-10mb-string.ndjson.gz", gz(ndjson(OK, line(msg("big-string", properties={"text": "z" * (10 << 20)})))))
put("line-nested-10000.ndjson", ndjson(OK, b'{"type":"track","messageId":"deep","userId":"u1","event":"Deep","properties":{"p":' + b'[' * 10000 + b']' * 10000 + b'}}'))
put("line-5000-keys.ndjson.gz", gz(ndjson(OK, line(msg("wide", event="Wide", properties={f"key_{i}": i for i in range(5000)})))))
put("line-duplicate-key.ndjson", ndjson(OK, b'{"type":"track","messageId":"dupkey","userId":"u1","event":"Dup","properties":{"plan":"free","plan":"pro"},"userId":"u2"}'))
put("line-nan-infinity.ndjson", ndjson(OK, b'{"type":"track","messageId":"nan","userId":"u1","event":"N","properties":{"x":NaN}}',
                                     b'{"type":"track","messageId":"inf","userId":"u1","event":"N","properties":{"x":Infinity}}',
                                     b'{"type":"track","messageId":"ninf","userId":"u1","event":"N","properties":{"x":-Infinity}}'))
put("line-huge-numbers.ndjson", ndjson(OK, b'{"type":"track","messageId":"huge","userId":"u1","event":"Huge","properties":{"big_int":123456789012345678901234567890,"beyond_double":1e400,"tiny":1e-400,"neg_big":-99999999999999999999,"exact":9007199254740993}}'))
put("line-escapes-nul-surrogates.ndjson", ndjson(OK, b'{"type":"track","messageId":"esc","userId":"u1","event":"Esc","properties":{"nul":"a\\u0000b","lone_high":"x\\ud800y","lone_low":"\\udc00","pair":"\\ud83d\\ude00"}}'))

# --- messages
put("msg-missing-type.ndjson", ndjson(OK, b'{"messageId":"notype","userId":"u1","event":"E"}'))
put("msg-unknown-type.ndjson", ndjson(OK, line(msg("del", type="delete")), line(msg("weird", type="Purchase"))))
put("msg-no-ids.ndjson", ndjson(OK, line({"type": "track", "messageId": "noids", "event": "E", "userId": None}), line({"type": "identify", "messageId": "noids2", "anonymousId": ""})))
put("msg-track-without-event.ndjson", ndjson(OK, line({"type": "track", "messageId": "noevent", "userId": "u1"}), line(msg("emptyevent", event=""))))
put("msg-ids-wrong-type.ndjson", ndjson(OK, line(msg("objid", userId={"id": 1})), line(msg("arrid", userId=[1, 2])), line(msg("boolid", userId=True)),
                                       line(msg("numid", userId=12345)), line(msg(987654, event="Numeric Message Id")), line(msg("floatid", anonymousId=1.5, userId=None))))
stamps = ["2024-03-01T10:00:00", "2024-03-01T15:30:00+0530", "2024-03-01T10:00:00.123456789Z", "2015-2-02T00:30:08.276Z",
          "2020-05-09 23:54:49.209808489 +0000 UTC", 1709287200, 1709287200123, "", "0000-01-01T00:00:00Z", "10000-01-01T00:00:00Z",
          "not a time", None]
put("msg-odd-timestamps.ndjson", ndjson(OK, *[line(msg(f"ts{i}", event="Stamped", timestamp=s, originalTimestamp=s, properties={"form": json.dumps(s)})) for i, s in enumerate(stamps)]))

# --- names
put("names-sql-injection.ndjson", ndjson(OK,
    line(msg("sql1", event='"); DROP TABLE tracks; --', properties={'"); DROP TABLE tracks; --': 1, "a`b": 2, "[c]": 3, "d'e": 4, 'f"g': 5})),
    line(msg("sql2", event="sqlite_master", properties={"sqlite_master": 1, "rowid": 2, "oid": 3})),
    line(msg("sql3", event="_loads", properties={"_loads": 1, "_extra": 2, "id": "prop-id"}))))
put("names-empty-after-normalization.ndjson", ndjson(OK, line(msg("empty1", event="ключ", properties={"ключ": 1, "名前": "x", "$$$": 2, "": 3, " ": 4})), line(msg("empty2", event="!!!"))))
put("names-10000-chars.ndjson", ndjson(OK, line(msg("long1", event="E" * 10000, properties={"k" * 10000: 1, ("k" * 9999) + "2": 2}))))
put("names-case-punct-collisions.ndjson", ndjson(OK, line(msg("case1", event="Order Completed", properties={"orderId": 1, "OrderID": 2, "order_id": 3, "order-id": 4, "Order Id": 5})),
                                              line(msg("case2", event="order_completed", properties={"ORDERID": 6})), line(msg("case3", event="ORDER COMPLETED"))))
put("names-contract-tables.ndjson", ndjson(OK, *[line(msg(f"t{i}", event=e)) for i, e in enumerate(["tracks", "users", "Identifies", "_files", "_schema_columns", "sqlite_sequence", "_event_1234abcd", "_idx_tracks_user_id"])]))
print("wrote", len(os.listdir(OUT)), "fixtures to", OUT)
