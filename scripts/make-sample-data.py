#!/usr/bin/env python3
"""Writes sample-data/: small, deterministic archives that look like real Segment traffic.

Run from the repository root: python3 scripts/make-sample-data.py
See sample-data/README.md for what each file holds.
"""
import gzip, io, json, os, random, shutil, uuid
from datetime import datetime, timedelta, timezone

rng = random.Random(20231120)
ROOT = "sample-data"
WEB = "segment-logs/wk_2Hq7web"
SERVER = "segment-logs/wk_9Lm4srv"
DAY1 = datetime(2023, 11, 20, tzinfo=timezone.utc)
DAY2 = DAY1 + timedelta(days=1)

def ms(day):
    return str(int(day.timestamp() * 1000))

def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"

def mid():
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))

def gz_members(path, member_lines):
    """gzip with one member per list of lines (several members, as `cat a.gz b.gz` makes)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        for lines in member_lines:
            buf = io.BytesIO()
            with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as g:
                g.write("".join(l + "\n" for l in lines).encode())
            out.write(buf.getvalue())

USERS = [("u_1001", "ada@example.com", "Ada Lovelace", "team"), ("u_1002", "grace@example.com", "Grace Hopper", "free"),
         ("u_1003", "alan@example.com", "Alan Turing", "enterprise"), ("u_1004", "edsger@example.com", "Edsger Dijkstra", "free")]
UAS = ["Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
       "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0"]

def browser(kind, user, t, **extra):
    anon = "anon-" + user[0][2:]
    sent = t + timedelta(milliseconds=rng.randint(20, 400))
    received = sent + timedelta(milliseconds=rng.randint(30, 900)) + timedelta(seconds=2)  # client clock 2 s slow
    path = rng.choice(["/", "/pricing", "/docs/install", "/dashboard"])
    msg = {
        "anonymousId": anon, "channel": "client", "messageId": "ajs-next-" + mid().replace("-", ""),
        "context": {"ip": f"203.0.113.{rng.randint(2, 250)}", "library": {"name": "analytics.js", "version": "next-1.55.0"},
                    "locale": rng.choice(["en-US", "en-GB", "de-DE"]),
                    "page": {"path": path, "referrer": "https://www.google.com/", "search": "", "title": "Acme Cloud",
                             "url": "https://app.acme.example" + path},
                    "userAgent": rng.choice(UAS)},
        "integrations": {}, "originalTimestamp": iso(t), "projectId": "2Hq7web", "receivedAt": iso(received),
        "sentAt": iso(sent), "type": kind, "userId": user[0], "version": 2, "writeKey": "REDACTED",
        "_metadata": {"bundled": ["Segment.io"], "unbundled": []},
    }
    msg["timestamp"] = iso(received - (sent - t))
    msg.update(extra)
    return msg

def web_day(day, count, late_keys):
    out = []
    t = day + timedelta(hours=8)
    for i in range(count):
        r = i % 6
        user = USERS[(i // 6) % len(USERS) if r == 0 else i % len(USERS)]
        t += timedelta(minutes=rng.randint(1, 40), milliseconds=rng.randint(0, 999))
        if r == 0:
            traits = {"email": user[1], "name": user[2], "plan": user[3], "createdAt": "2023-01-%02dT10:00:00Z" % (i % 28 + 1)}
            if late_keys:
                traits["company"] = {"name": "Acme", "employee_count": 40 + i}
            out.append(browser("identify", user, t, traits=traits))
        elif r in (1, 2):
            props = {"path": "/dashboard", "referrer": "", "title": "Dashboard", "url": "https://app.acme.example/dashboard"}
            out.append(browser("page", user, t, name="Dashboard", category="App", properties=props))
        else:
            props = {"app_id": "app_%d" % (i % 5), "plan": user[3], "seats": 3 + i % 4}
            if late_keys:
                props["trial_days"] = 14  # a property that appears only later
                if i % 4 == 1:
                    props["seats"] = "unlimited"  # type conflict: seats widens to TEXT
            out.append(browser("track", user, t, event="Application Enabled", properties=props))
    return out

def server_tracks(day, count):
    out = []
    t = day + timedelta(hours=1)
    for i in range(count):
        user = USERS[i % len(USERS)]
        t += timedelta(minutes=rng.randint(5, 90))
        received = t + timedelta(milliseconds=rng.randint(50, 300))
        props = {"projectId": "prj_%03d" % (i % 7), "clusterId": "cl_%04x" % rng.getrandbits(16),
                 "region": rng.choice(["us-east-1", "eu-west-1"]), "durationMs": rng.randint(30000, 240000),
                 "nodeCount": rng.choice([1, 3, 5]), "ha": i % 2 == 0}
        event = "Cluster Provisioning Success" if i % 5 else "Cluster Provisioning Failed"
        if i % 5 == 0:
            props["error"] = {"code": "QuotaExceeded", "retryable": False}
        if i == 3:
            props["order_id"] = "ord_77"; props["orderId"] = "ord_78"  # two keys, one column, one message
        out.append({"type": "track", "event": event, "userId": user[0], "properties": props,
                    "context": {"library": {"name": "analytics-go", "version": "3.3.0"}},
                    "messageId": mid(), "timestamp": iso(t), "sentAt": iso(t), "receivedAt": iso(received),
                    "originalTimestamp": iso(t), "integrations": {}, "channel": "server", "version": 2,
                    "projectId": "9Lm4srv", "writeKey": "REDACTED"})
    return out

def telemetry(day, count):
    out = []
    t = day + timedelta(hours=3)
    for i in range(count):
        t += timedelta(minutes=rng.randint(1, 120))
        received = t + timedelta(seconds=1)
        event = rng.choice(["project:created", "project:deployed", "cli:login"])
        props = {"project_hash": "%012x" % rng.getrandbits(48), "template": rng.choice(["nextjs", "rails", "go"]),
                 "cli_version": "1.%d.0" % (i % 3), "os": rng.choice(["linux", "darwin"])}
        out.append({"type": "track", "event": event, "anonymousId": "tel-%08x" % rng.getrandbits(32),
                    "properties": props, "context": {"library": {"name": "analytics-node", "version": "1.1.0"}},
                    "messageId": mid(), "originalTimestamp": iso(t), "sentAt": iso(t), "receivedAt": iso(received),
                    "timestamp": iso(t), "channel": "server", "version": 2})
    return out

def mobile(day, count):
    out = []
    t = day + timedelta(hours=12)
    for i in range(count):
        user = USERS[i % len(USERS)]
        t += timedelta(minutes=rng.randint(1, 30))
        sent = t + timedelta(seconds=30)  # batched on the device
        received = sent + timedelta(milliseconds=400) - timedelta(seconds=5)  # device clock 5 s fast
        ctx = {"app": {"build": "412", "name": "Acme", "namespace": "com.acme.app", "version": "4.2.0"},
               "device": {"manufacturer": "Apple", "model": "iPhone14,2", "type": "ios", "id": "dev-%04d" % (i % 3)},
               "os": {"name": "iOS", "version": "17.1"}, "screen": {"height": 844, "width": 390, "density": 3},
               "network": {"wifi": i % 2 == 0, "carrier": "T-Mobile"}, "locale": "en-US", "timezone": "America/New_York",
               "library": {"name": "analytics-ios", "version": "4.1.8"}}
        name = rng.choice(["Dashboard", "Settings", "Cluster Detail"])
        out.append({"type": "screen", "name": name, "userId": user[0], "anonymousId": "ios-%d" % (i % 3),
                    "properties": {"from_push": i % 3 == 0}, "context": ctx, "messageId": mid(),
                    "timestamp": iso(t), "sentAt": iso(sent), "receivedAt": iso(received)})
    return out

def groups_and_aliases(day):
    t = day + timedelta(hours=15)
    out = []
    for i, (gid, name, plan, n) in enumerate([(987, "Acme Corp", "enterprise", 120), ("g_55", "Initech", "team", 12)]):
        out.append({"type": "group", "groupId": gid, "userId": USERS[i][0], "messageId": mid(),
                    "traits": {"name": name, "plan": plan, "employees": n, "industry": "Software"},
                    "timestamp": iso(t), "originalTimestamp": iso(t), "sentAt": iso(t), "receivedAt": iso(t + timedelta(seconds=1)),
                    "context": {"library": {"name": "analytics.js", "version": "next-1.55.0"}}})
    out.append({"type": "alias", "previousId": "anon-1004", "userId": "u_1004", "messageId": mid(),
                "originalTimestamp": iso(t), "sentAt": iso(t), "receivedAt": iso(t + timedelta(seconds=1)), "timestamp": iso(t)})
    return out

def main():
    if os.path.isdir(ROOT):
        for entry in os.listdir(ROOT):
            if entry != "README.md":
                p = os.path.join(ROOT, entry)
                shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    day1_web = web_day(DAY1, 30, late_keys=False)
    day2_web = web_day(DAY2, 30, late_keys=True)
    # Segment retries: two messages of day 1 arrive again in day 2's first file.
    day2_web.insert(3, day1_web[4]); day2_web.insert(10, day1_web[7])
    lines1 = [json.dumps(m, separators=(",", ":")) for m in day1_web + mobile(DAY1, 8) + groups_and_aliases(DAY1)]
    gz_members(f"{ROOT}/{WEB}/{ms(DAY1)}/1700438400000.a1b2c3.gz", [lines1[:20], lines1[20:]])
    lines2 = [json.dumps(m, separators=(",", ":")) for m in day2_web + mobile(DAY2, 6)]
    lines2.insert(17, lines2[16][: len(lines2[16]) // 2])  # one malformed line: cut in half
    gz_members(f"{ROOT}/{WEB}/{ms(DAY2)}/1700524800000.d4e5f6.gz", [lines2])
    srv = [json.dumps(m, separators=(",", ":")) for m in server_tracks(DAY1, 12) + telemetry(DAY1, 10)]
    gz_members(f"{ROOT}/{SERVER}/{ms(DAY1)}/1700438400000.0f1e2d.gz", [srv])
    with open(f"{ROOT}/segment-logs/dummy-object.txt", "w") as f:
        f.write("Segment S3 test upload\n")
    # A raw analytics-go batch, plain NDJSON, as a self-hosted collector might export it.
    items = []
    t = DAY2 + timedelta(hours=4)
    for i in range(5):
        t += timedelta(minutes=3)
        items.append({"type": "track", "event": "Cluster Provisioning Success", "userId": USERS[i % 4][0],
                      "messageId": mid(), "timestamp": iso(t),
                      "properties": {"projectId": "prj_%03d" % i, "clusterId": "cl_b%03d" % i, "region": "eu-west-1",
                                     "durationMs": 61000 + i, "nodeCount": 3, "ha": True, "k8sVersion": "1.28"}})
    envelope = {"batch": items, "context": {"library": {"name": "analytics-go", "version": "3.3.0"}},
                "sentAt": iso(t + timedelta(seconds=2)), "writeKey": "REDACTED", "integrations": {}}
    os.makedirs(f"{ROOT}/exports", exist_ok=True)
    with open(f"{ROOT}/exports/collector-batch-2023-11-21.ndjson", "w") as f:
        f.write(json.dumps(envelope, separators=(",", ":")) + "\n")

main()
