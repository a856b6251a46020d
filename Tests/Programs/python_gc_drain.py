"""A full collection puts CPython's float and tuple free lists back in use;
heapsnap's gc callback empties them again. Objects a callback of the
program's own, run before it, makes and drops go onto those lists, and are
freed when heapsnap empties them: they must leave the live table then.

python3 python_gc_drain.py: starts sampling with the start signal, waits
until heapsnap's callback is in gc.callbacks (the free lists are off), runs
a full collection, asks for a snapshot and waits for it (HEAPSNAP_DIR).
Prints "done", or why not.
"""
import gc, os, signal, sys, time

def dropped(phase, info):
    if phase == "stop":
        junk = [float(i) + 0.5 for i in range(200)]          # churn
        pairs = [(i, -i) for i in range(200)]                # churn
        del junk, pairs

gc.callbacks.append(dropped)
os.kill(os.getpid(), signal.SIGRTMIN + 1)
for _ in range(1000):
    if any(getattr(c, "__name__", "") == "heapsnap_free_lists" for c in gc.callbacks):
        break
    time.sleep(0.01)
else:
    print("heapsnap's gc callback never came")
    sys.exit(2)
gc.collect()
directory = os.environ["HEAPSNAP_DIR"]
os.kill(os.getpid(), signal.SIGRTMIN + 3)
for _ in range(1000):
    if any(name.endswith(".heapsnap") for name in os.listdir(directory)):
        break
    time.sleep(0.01)
print("done")
