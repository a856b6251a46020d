"""Free lists: `churn` builds and drops a list each call, `rec` keeps one.
CPython reuses churn's dead list for rec's new one without calling the
allocator; tracemalloc charges the list to rec, and so must heapsnap.

python3 [-X tracemalloc=8] python_reuse.py [--tm] [--n N]: with --tm, prints
what tracemalloc holds at the end per line of this file ("TM line bytes
blocks", tm_report.py), each block at its innermost frame in this file (as heapsnap names
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
def main():
    n = int(sys.argv[sys.argv.index("--n") + 1]) if "--n" in sys.argv else 20000
    for i in range(n):                                      # site: loop
        churn(i)
        CACHE[i] = rec(i)                                   # site: cache
    if "--tm" in sys.argv:
        from tm_report import report                        # tm
        report(__file__)                                    # tm
    print("done")
main()
