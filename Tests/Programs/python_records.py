"""Seven sites that keep what they build, among churn that keeps nothing:
dicts and lists through json, a class with __slots__, tuples, floats, strings,
bytes and lists. The interpreter reuses dead lists, dicts, tuples and floats
from its free lists; every kept object must be charged to the line that
created it (tracemalloc's answer), none to `churn` or to json's throwaways.

python3 [-X tracemalloc=8] python_records.py [--tm] [--n N]: with --tm,
prints what tracemalloc holds at the end per line of this file ("TM line bytes
blocks"), each block at its innermost frame in this file. Lines that hold
memory are marked `# site: NAME`; `# churn` lines keep nothing; `# tm` lines
run with --tm only; `# startup` lines run before heapsnap's wrappers may be
in place (the module's first imports).
"""
import json                                                 # startup
import sys

KEPT, POINTS, NAMES, BLOBS, ROWS = [], [], [], [], []


class Point:
    __slots__ = ("x", "y", "tag")

    def __init__(self, x, y, tag):
        self.x = x
        self.y = y
        self.tag = tag


def decode(i):
    text = json.dumps({"id": i, "name": "n%d" % i, "tags": ["a", "b", str(i)], "score": i / 7})   # churn
    doc = json.loads(text)                                  # site: decode (dict keys json made)
    return len(doc["tags"])


def keep(i):
    KEPT.append({"id": i, "pair": (i, i + 1), "ratio": i * 0.5})        # site: keep


def point(i):
    POINTS.append(Point(i * 1.5, -i * 0.25, (i % 3, i % 5)))            # site: point


def churn(i):
    t = tuple(range(i % 5 + 2))                             # churn
    f = [x * 1.25 for x in t]                               # churn
    d = {"k": f, "t": t}                                    # churn
    return sum(d["k"])


def main():
    n = int(sys.argv[sys.argv.index("--n") + 1]) if "--n" in sys.argv else 15000
    for i in range(n):                                      # site: loop
        decode(i)
        keep(i)
        churn(i)
        point(i)
        NAMES.append("user-%08d" % i)                       # site: name
        BLOBS.append(bytes(i % 64 + 150))                   # site: blob
        ROWS.append([i, -i, i * 2.0])                       # site: row
    if "--tm" in sys.argv:
        from tm_report import report                        # tm
        report(__file__)                                    # tm
    print("done")


main()
