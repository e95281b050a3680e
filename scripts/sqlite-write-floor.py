#!/usr/bin/env python3
"""How long SQLite alone takes to write a warehouse: the floor under any loader.

Copies every table of an existing warehouse (for example bench-data/bench-jobs2.sqlite after
`segment-loader bench`) into a fresh database with the sqlite3 shell, using the loader's own
pragmas and indexes, as INSERT ... SELECT with a WHERE clause so that SQLite decodes and
re-encodes every row (the bare form would take the raw-page "xfer" shortcut). The seen-id
table is inserted in random order, as message ids arrive. No JSON, no Swift, no binding: what
remains is SQLite's record building, B-tree inserts and I/O for exactly the rows a load writes.

usage: scripts/sqlite-write-floor.py WAREHOUSE [JOURNAL_MODE ...]   (default: WAL DELETE)
"""
import os, sqlite3, subprocess, sys, tempfile, time

source = os.path.abspath(sys.argv[1])
modes = sys.argv[2:] or ["WAL", "DELETE"]
con = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
tables = con.execute("SELECT name, sql FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'").fetchall()
indexes = [r[0] for r in con.execute("SELECT sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL")]
rows = sum(con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n, _ in tables)
con.close()

def script(mode):
    out = [f"PRAGMA journal_mode={mode}; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;",
           f"ATTACH '{source}' AS src;"]
    out += [s + ";" for _, s in tables] + [s + ";" for s in indexes] + ["BEGIN;"]
    for name, sql in tables:
        order = "WHERE 1 ORDER BY random()" if "WITHOUT ROWID" in sql.upper() else "WHERE rowid IS NOT NULL"
        out.append(f'INSERT INTO main."{name}" SELECT * FROM src."{name}" {order};')
    out.append("COMMIT;")
    return "\n".join(out)

print(f"{source}: {len(tables)} tables, {rows:,} rows")
for mode in modes:
    with tempfile.TemporaryDirectory(dir=os.path.dirname(source)) as tmp:
        target = os.path.join(tmp, "floor.sqlite")
        started = time.monotonic()
        before = os.times()
        subprocess.run(["sqlite3", target], input=script(mode), text=True, check=True, stdout=subprocess.DEVNULL)
        after = os.times()
        wall = time.monotonic() - started
        user = after.children_user - before.children_user
        system = after.children_system - before.children_system
        print(f"journal_mode={mode:<7} {wall:6.2f} s wall  {user:5.2f} s user  {system:5.2f} s sys")
