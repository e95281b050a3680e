#!/usr/bin/env python3
"""What an analyst meets first, checked with the real tools (issue 9).

Loads the shipped sample data, and an archive whose messages carry no campaign, page or
user-agent context at all, with the built segment-loader; then:

- Python's sqlite3 with detect_types=PARSE_DECLTYPES reads every TIMESTAMP column of every
  table as datetime objects;
- pandas' read_sql with parse_dates reads the timestamps as datetime64;
- a page-view query of the kind dbt's Segment package runs (URL host, path, UTM fields from the
  campaign context or the URL, referrer host, device from the user agent) runs on both
  warehouses;
- Datasette 0.65, started on 127.0.0.1 with the metadata `segment-loader datasette` writes,
  serves the first page, the database page without bookkeeping tables, an event table titled
  with its raw name, a timestamp__gte filter with exactly the right rows, and the JSON API.

Usage: analyst_tools_check.py SEGMENT_LOADER_BINARY DATASETTE_BINARY
Prints one line per check and ends with "analyst-tools: N passed, N failed"; exits 1 on a failure.
"""

import datetime
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
passed, failed = 0, 0


def check(name, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
        print(f"ok    {name}")
    else:
        failed += 1
        print(f"FAIL  {name}: {detail}")


def run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)


# What a site sends when it has no campaign, no page context and no user agent: server-side
# calls only. The tables must still have every column the queries below name.
BARE = [
    {"type": "page", "messageId": "bp1", "anonymousId": "anon-b", "name": "Pricing",
     "properties": {"url": "https://shop.example/pricing?utm_source=news&utm_medium=email&gclid=abc", "path": "/pricing"},
     "receivedAt": "2024-03-05T12:00:00Z"},
    {"type": "page", "messageId": "bp2", "anonymousId": "anon-b", "name": "Home", "receivedAt": "2024-03-05T12:05:00Z"},
    {"type": "track", "messageId": "bt1", "userId": "u-b", "event": "Order Completed",
     "properties": {"total": 10}, "receivedAt": "2024-03-05T12:06:00Z"},
    {"type": "identify", "messageId": "bi1", "userId": "u-b", "anonymousId": "anon-b", "receivedAt": "2024-03-05T12:07:00Z"},
]

# The page-view query: what dbt-segment's segment_web_page_views model selects, in SQLite.
PAGE_VIEWS = """
WITH views AS (
  SELECT id, anonymous_id, user_id, timestamp,
         coalesce(url, context_page_url) AS page_url,
         coalesce(path, context_page_path) AS page_url_path,
         coalesce(title, context_page_title) AS page_title,
         coalesce(referrer, context_page_referrer) AS referrer,
         context_user_agent AS user_agent, context_ip AS ip,
         context_campaign_source, context_campaign_medium, context_campaign_name,
         context_campaign_term, context_campaign_content
  FROM pages
), parsed AS (
  SELECT *,
    CASE WHEN instr(page_url, '://') > 0 THEN
      substr(substr(page_url, instr(page_url, '://') + 3), 1,
             CASE WHEN instr(substr(page_url, instr(page_url, '://') + 3), '/') > 0
                  THEN instr(substr(page_url, instr(page_url, '://') + 3), '/') - 1
                  ELSE length(page_url) END) END AS page_url_host,
    CASE WHEN instr(page_url, '?') > 0 THEN '&' || substr(page_url, instr(page_url, '?') + 1) || '&' END AS query
  FROM views
)
SELECT id, page_url_host, page_url_path, page_title,
  coalesce(context_campaign_source,
           CASE WHEN instr(query, '&utm_source=') > 0 THEN substr(query, instr(query, '&utm_source=') + 12,
                instr(substr(query, instr(query, '&utm_source=') + 12), '&') - 1) END) AS utm_source,
  coalesce(context_campaign_medium,
           CASE WHEN instr(query, '&utm_medium=') > 0 THEN substr(query, instr(query, '&utm_medium=') + 12,
                instr(substr(query, instr(query, '&utm_medium=') + 12), '&') - 1) END) AS utm_medium,
  context_campaign_name AS utm_campaign, context_campaign_term AS utm_term, context_campaign_content AS utm_content,
  CASE WHEN instr(query, '&gclid=') > 0 THEN substr(query, instr(query, '&gclid=') + 7,
       instr(substr(query, instr(query, '&gclid=') + 7), '&') - 1) END AS gclid,
  CASE WHEN instr(referrer, '://') > 0 THEN substr(referrer, instr(referrer, '://') + 3) END AS referrer_host,
  CASE WHEN user_agent LIKE '%iPad%' THEN 'iPad' WHEN user_agent LIKE '%iPhone%' THEN 'iPhone'
       WHEN user_agent LIKE '%Android%' THEN 'Android' WHEN user_agent LIKE '%Windows%' THEN 'Windows'
       WHEN user_agent LIKE '%Mac%' THEN 'Mac' WHEN user_agent LIKE '%Linux%' THEN 'Linux' ELSE 'other' END AS device,
  timestamp
FROM parsed ORDER BY timestamp, id
"""


def load(binary, db, paths):
    result = run([binary, "load", "--db", db] + paths)
    check(f"segment-loader load into {os.path.basename(db)}", result.returncode in (0, 65), result.stdout + result.stderr)


def timestamp_columns(con):
    out = []
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        for _, name, decl, *_ in con.execute(f'PRAGMA table_info("{table}")'):
            if decl == "TIMESTAMP":
                out.append((table, name))
    return out


def python_sqlite3(db, label, min_columns):
    """Every TIMESTAMP column of every table, through the TIMESTAMP converter."""
    con = sqlite3.connect(db, detect_types=sqlite3.PARSE_DECLTYPES)
    columns = timestamp_columns(con)
    values, wrong = 0, []
    for table, column in columns:
        try:
            for (value,) in con.execute(f'SELECT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL'):
                values += 1
                if not isinstance(value, datetime.datetime):
                    wrong.append(f"{table}.{column}: {value!r}")
        except Exception as error:  # the converter raises on text it cannot read
            wrong.append(f"{table}.{column}: {error}")
    check(f"sqlite3 PARSE_DECLTYPES reads {values} values in {len(columns)} TIMESTAMP columns of {label} as datetime",
          values > 0 and not wrong and len(columns) >= min_columns, "; ".join(wrong[:5]))
    # Comparisons with SQLite's own functions.
    raw = sqlite3.connect(db)
    stored = raw.execute("SELECT count(*) FROM tracks WHERE timestamp >= datetime('2023-11-20 09:00:00')").fetchone()[0]
    computed = sum(1 for (t,) in raw.execute("SELECT timestamp FROM tracks")
                   if datetime.datetime.fromisoformat(t) >= datetime.datetime(2023, 11, 20, 9, 0, 0))
    check("timestamp >= datetime(...) counts the same rows as Python's comparison", stored == computed, f"{stored} != {computed}")


def pandas_read_sql(db):
    con = sqlite3.connect(db)
    frame = pd.read_sql("SELECT id, received_at, timestamp, original_timestamp FROM tracks", con,
                        parse_dates=["received_at", "timestamp", "original_timestamp"])
    kinds = {c: str(frame[c].dtype) for c in ["received_at", "timestamp", "original_timestamp"]}
    check("pandas read_sql parse_dates gives datetime64 columns",
          all(k.startswith("datetime64") for k in kinds.values()) and frame["timestamp"].notna().all(), kinds)
    daily = frame.set_index("timestamp").resample("D")["id"].count()
    check("pandas resamples tracks by day", int(daily.sum()) == len(frame) and len(daily) >= 1, daily)


def page_views(db, label, expect_rows):
    con = sqlite3.connect(db)
    try:
        rows = con.execute(PAGE_VIEWS).fetchall()
    except sqlite3.Error as error:
        check(f"page-view query on {label}", False, error)
        return []
    check(f"page-view query on {label} returns {len(rows)} rows", len(rows) == expect_rows, rows[:3])
    return rows


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(base, path):
    with urllib.request.urlopen(base + path, timeout=20) as response:
        return response.status, response.read().decode()


def datasette(binary, datasette_binary, db, workdir):
    meta = os.path.join(workdir, "datasette.yml")
    result = run([binary, "datasette", "--db", db, "-o", meta])
    check("segment-loader datasette writes metadata", result.returncode == 0 and os.path.exists(meta), result.stderr)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([datasette_binary, "serve", db, "-m", meta, "-h", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                fetch(base, "/-/versions.json")
                break
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.3)
        status, versions = fetch(base, "/-/versions.json")
        check("Datasette 0.65 is serving on 127.0.0.1", status == 200 and '"0.65.' in versions, versions[:200])

        status, page = fetch(base, "/")
        check("first page has the metadata's title", status == 200 and "Segment warehouse" in page, page[:300])
        status, page = fetch(base, "/warehouse")
        hidden = [t for t in ["_loads", "_files", "_rejects", "_discards", "_schema_tables", "_schema_columns", "_message_ids"]
                  if f'href="/warehouse/{t}"' in page]
        check("database page lists the event tables and hides the bookkeeping tables",
              status == 200 and 'href="/warehouse/application_enabled"' in page and not hidden, hidden)
        status, page = fetch(base, "/warehouse/application_enabled")
        check("event table page is titled with the raw event name", status == 200 and "Application Enabled" in page, page[:300])
        check("event table page shows column descriptions", "the event time corrected for the client" in page, "")

        status, body = fetch(base, "/warehouse/tracks.json?_shape=array&_size=max&_sort_desc=timestamp")
        rows = json.loads(body)
        newest_first = [r["timestamp"] for r in rows] == sorted((r["timestamp"] for r in rows), reverse=True)
        con = sqlite3.connect(db)
        total = con.execute("SELECT count(*) FROM tracks").fetchone()[0]
        check("JSON API returns every track, newest first", status == 200 and len(rows) == total and newest_first, len(rows))

        boundary = "2023-11-20 09:35:04"
        query = urllib.parse.urlencode({"timestamp__gte": boundary, "_shape": "array", "_size": "max"})
        status, body = fetch(base, f"/warehouse/tracks.json?{query}")
        got = sorted(r["id"] for r in json.loads(body))
        want = sorted(i for (i,) in con.execute("SELECT id FROM tracks WHERE timestamp >= ?", (boundary,)))
        python_side = sorted(i for (i, t) in con.execute("SELECT id, timestamp FROM tracks")
                             if datetime.datetime.fromisoformat(t) >= datetime.datetime.fromisoformat(boundary))
        check(f"timestamp__gte filter returns exactly the {len(want)} right rows",
              status == 200 and got == want == python_side and 0 < len(got) < total, (len(got), len(want), len(python_side)))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def main():
    binary, datasette_binary = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as workdir:
        sample = os.path.join(workdir, "warehouse.sqlite")
        load(binary, sample, [os.path.join(ROOT, "sample-data")])
        bare_archive = os.path.join(workdir, "bare.ndjson")
        with open(bare_archive, "w") as f:
            for message in BARE:
                f.write(json.dumps(message) + "\n")
        bare = os.path.join(workdir, "bare.sqlite")
        load(binary, bare, [bare_archive])

        python_sqlite3(sample, "the sample data", min_columns=60)
        python_sqlite3(bare, "the context-free data", min_columns=20)
        pandas_read_sql(sample)
        page_views(sample, "the sample data", expect_rows=20)
        rows = page_views(bare, "data with no campaign, page or user-agent context", expect_rows=2)
        if rows:
            first = rows[0]
            check("UTM fields and gclid come from the URL when there is no campaign context",
                  first[1] == "shop.example" and first[4] == "news" and first[5] == "email" and first[9] == "abc", first)
            check("device is 'other' without a user agent", rows[1][11] == "other", rows[1])
        datasette(binary, datasette_binary, sample, workdir)
    print(f"analyst-tools: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
