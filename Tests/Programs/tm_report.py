"""What tracemalloc holds, per line of one program file, for the free-list
tests: `report(__file__)` prints "TM line bytes blocks" for each line of that
file, each block at its innermost frame in the file (as heapsnap's rows name
the first frame of the program's own code). Run the program with
`python3 -X tracemalloc=8` so that tracing starts with the interpreter."""
import tracemalloc


def report(path):
    lines = {}
    for st in tracemalloc.take_snapshot().statistics("traceback"):
        own = [f for f in st.traceback if f.filename == path]
        if own:
            size, count = lines.get(own[-1].lineno, (0, 0))
            lines[own[-1].lineno] = (size + st.size, count + st.count)
    for line, (size, count) in sorted(lines.items()):
        print("TM %d %d %d" % (line, size, count))
