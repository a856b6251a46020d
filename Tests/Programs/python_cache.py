"""The shim's block cache (CShim/python/pyalloc.c): blocks of 17..24 bytes
(floats) that the wrappers keep for the next request instead of giving them
back to pymalloc, tagged in the 8 bytes past the request with their address
XOR a key drawn at each activation.

python3 python_cache.py CYCLES [N]: starts sampling with the start signal
and stops it with the stop signal, CYCLES times. In each session it makes
2 x N floats (N = 200,000 unless given), keeping one in seven and checking
every kept value; mixes the allocator's domains through ctypes
(PyObject_Malloc freed by PyMem_Free and back, PyObject_Realloc across
sizes); grows small lists and bytearrays; and reads the tag past each kept
float: prints "key K" per session, K the value most of them agree on
("none" when fewer than 90% do), and a checksum of everything computed,
which a run without the shim must print too. On 3.12 and later it then
makes a subinterpreter, after which the cache must stay unused: prints
"after subinterpreter K" for floats made then.
"""
import ctypes, gc, os, signal, sys, time
from collections import Counter

api = ctypes.pythonapi
for name, res, args in [("PyObject_Malloc", ctypes.c_void_p, [ctypes.c_size_t]),
                        ("PyMem_Malloc", ctypes.c_void_p, [ctypes.c_size_t]),
                        ("PyObject_Realloc", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_size_t]),
                        ("PyObject_Free", None, [ctypes.c_void_p]),
                        ("PyMem_Free", None, [ctypes.c_void_p])]:
    fn = getattr(api, name)
    fn.restype, fn.argtypes = res, args

PRELOADED = "heapsnap" in os.environ.get("LD_PRELOAD", "")


def sampling_set_up():
    """heapsnap's gc callback is in place once the free lists are off, after the wrappers."""
    return any(getattr(c, "__name__", "") == "heapsnap_free_lists" for c in gc.callbacks)


def key_of(floats):
    """The XOR of each float's address and the word past its 24 bytes, most of them agree on."""
    words = Counter(int.from_bytes(ctypes.string_at(id(f) + 24, 8), "little") ^ id(f) for f in floats)
    value, count = words.most_common(1)[0]
    return "%x" % value if count >= 0.9 * len(floats) and value else "none"


def churn(seed, n):
    kept, total = [], 0.0
    for i in range(n):
        x = (i + seed) * 0.5 + 1.25
        y = x * x - 3.0
        if i % 7 == 0:
            kept.append(y)
        total += y / 1000.0
    for j, y in enumerate(kept):
        x = (7 * j + seed) * 0.5 + 1.25
        if y != x * x - 3.0:
            raise SystemExit("float %d corrupted: %r" % (j, y))
    return kept, total


def mix(seed):
    """Blocks of 17..24 bytes across the domains and realloc; each checked by its contents."""
    total = 0
    for i in range(3000):
        a = api.PyObject_Malloc(24)
        ctypes.memset(a, (i + seed) & 0xFF, 24)
        b = api.PyMem_Malloc(20)
        ctypes.memset(b, (i * 3) & 0xFF, 20)
        c = api.PyObject_Malloc(24)
        ctypes.memset(c, 0x5A, 24)
        c = api.PyObject_Realloc(c, 200)
        ctypes.memset(c + 24, 0x33, 176)
        c = api.PyObject_Realloc(c, 18)
        total += sum(ctypes.string_at(a, 24)) + sum(ctypes.string_at(b, 20)) + sum(ctypes.string_at(c, 18))
        api.PyMem_Free(a)                       # a PyObject_Malloc block through the MEM domain
        api.PyObject_Free(b)                    # and the other way round
        api.PyObject_Free(c)
    rows = []
    for i in range(3000):
        row = []
        for k in range(3):                      # item arrays of 8, 16 and 24 bytes, reallocated
            row.append(i + k)
        buf = bytearray()
        for k in range(20):
            buf.append((i + k) & 0xFF)
        rows.append((row, bytes(buf)))
        total += sum(row) + sum(buf)
    return total


def wait_until(condition, what):
    for _ in range(1000):
        if condition():
            return
        time.sleep(0.01)
    raise SystemExit("never " + what)


def main():
    cycles = int(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
    checksum = 0.0
    for cycle in range(cycles):
        if PRELOADED:
            os.kill(os.getpid(), signal.SIGRTMIN + 1)
            wait_until(sampling_set_up, "set up")
        kept, total = churn(cycle, n)
        checksum += total + mix(cycle)
        print("key", key_of(kept[-2000:]))
        del kept
        if PRELOADED:
            os.kill(os.getpid(), signal.SIGRTMIN + 2)
            gc.callbacks[:] = [c for c in gc.callbacks if getattr(c, "__name__", "") != "heapsnap_free_lists"]
            for _ in range(50):                 # the main thread runs the pending calls of stop
                time.sleep(0.01)
    if sys.version_info >= (3, 12):
        if PRELOADED:
            os.kill(os.getpid(), signal.SIGRTMIN + 1)
            wait_until(sampling_set_up, "set up")
        try:
            import _interpreters as interpreters
        except ImportError:
            import _xxsubinterpreters as interpreters
        sub = interpreters.create()
        kept, total = churn(cycles, n)
        checksum += total
        print("after subinterpreter", key_of(kept[-2000:]))
        interpreters.destroy(sub)
        if PRELOADED:
            os.kill(os.getpid(), signal.SIGRTMIN + 2)
    print("checksum %.6f" % checksum)
    print("done")


main()
