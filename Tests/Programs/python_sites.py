"""Known Python allocation sites for the shim's Python tests.

Each site allocates a few MiB that stay alive until the program ends, on a
line marked `# site: NAME`; the tests find the lines from those markers. The
sites cover the ways Python code runs: plain functions a few calls deep, a
method, a generator, a lambda called from a C builtin (map), an asyncio
coroutine, a key function called back by sorted(), and a second thread.

Modes:
  python3 python_sites.py                 build everything and exit (the shim's at-exit snapshot)
  python3 python_sites.py tracemalloc     the same, then print tracemalloc's per-line sizes as
                                          "line LINENO BYTES" for this file
  python3 python_sites.py serve           print "ready", then grow the leak every 5 ms until stdin closes
"""
import asyncio
import sys
import threading

kept = []


def plain_leaf(n):
    return [bytearray(2048) for _ in range(n)]  # site: plain


def plain_middle(n):
    return plain_leaf(n)


def plain_top(n):
    kept.append(plain_middle(n))


class Store:
    def __init__(self):
        self.items = []

    def put(self, i):
        self.items.append(("item-%06d-" % i) * 20)  # site: method


def numbers(n):
    for i in range(n):
        yield [i] * 60  # site: generator


def with_lambda(n):
    return list(map(lambda i: {"key": i, "value": i * 2, "more": None, "extra": 1, "a": 1, "b": 2}, range(n)))  # site: lambda


async def fetch(i):
    await asyncio.sleep(0)
    return bytes(1500) + b"%d" % i  # site: coroutine


async def fetch_all(n):
    return await asyncio.gather(*(fetch(i) for i in range(n)))


def sort_key(x):
    kept.append(bytes(700))  # site: sortkey
    return -x


def worker(out, n):
    out.extend(bytes(3000) for _ in range(n))  # site: thread


def build():
    plain_top(3000)
    store = Store()
    for i in range(4800):
        store.put(i)
    kept.append(store)
    kept.append(list(numbers(9000)))
    kept.append(with_lambda(5300))
    kept.append(asyncio.run(fetch_all(1500)))
    kept.append(sorted(range(5000), key=sort_key))
    out = []
    t = threading.Thread(target=worker, args=(out, 950))
    t.start()
    t.join()
    kept.append(out)


def serve():
    import select
    leak = []
    print("ready", flush=True)
    while True:
        for _ in range(20):
            leak.append(bytearray(1024))  # site: serve
        readable, _, _ = select.select([sys.stdin], [], [], 0.005)
        if readable and not sys.stdin.buffer.read1(1):
            break


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "serve":
        serve()
    elif mode == "tracemalloc":
        import tracemalloc
        tracemalloc.start()
        build()
        snapshot = tracemalloc.take_snapshot()
        for stat in snapshot.statistics("lineno"):
            frame = stat.traceback[0]
            if frame.filename == __file__:
                print("line", frame.lineno, stat.size)
    else:
        build()
    print("done", len(kept))
