"""Free lists: `churn` builds and drops a list each call, `rec` keeps one.
CPython reuses churn's dead list for rec's new one without calling the
allocator; tracemalloc charges the list to rec, and so must heapsnap.

python3 [-X tracemalloc=32] python_reuse.py [--tm] [--n N]: with --tm, prints
what tracemalloc holds at the end per line of this file ("TM line bytes
blocks"), each block at its innermost frame in this file (as heapsnap names
the first frame of the program's own code). Lines that hold memory are marked
`# site: NAME`; `# churn` lines keep nothing; `# tm` lines run with --tm only.
"""
import sys
CACHE = {}
def churn(i):
    t = [str(j) for j in range(i % 7, i % 7 + 3)]           # churn
    return len(t)
def rec(i):
    return [str(i), str(i + 1)]                             # site: rec
def report():
    import tracemalloc                                      # tm
    lines = {}                                              # tm
    for st in tracemalloc.take_snapshot().statistics("traceback"):  # tm
        own = [f for f in st.traceback if f.filename == __file__]   # tm
        if own:                                             # tm
            size, count = lines.get(own[-1].lineno, (0, 0)) # tm
            lines[own[-1].lineno] = (size + st.size, count + st.count)  # tm
    for line, (size, count) in sorted(lines.items()):       # tm
        print("TM %d %d %d" % (line, size, count))         # tm
def main():
    n = int(sys.argv[sys.argv.index("--n") + 1]) if "--n" in sys.argv else 20000
    for i in range(n):                                      # site: loop
        churn(i)
        CACHE[i] = rec(i)                                   # site: cache
    if "--tm" in sys.argv:
        report()                                            # tm
    print("done")
main()
