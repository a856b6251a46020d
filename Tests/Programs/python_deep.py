"""Deallocation that recurses: lists, dicts, their subclasses and tuples
nested DEPTH deep are dropped while heapsnap keeps the free lists empty
(CPython's trashcan must still bound the C stack), with three threads
building and dropping lists, dicts, tuples and floats, while the program
starts and stops sampling itself ROUNDS times with heapsnap's signals, and
empties gc.callbacks once in between.

python3 python_deep.py [ROUNDS] [DEPTH]; prints "done" at the end.
"""
import gc
import os
import signal
import sys
import threading
import time

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
DEPTH = int(sys.argv[2]) if len(sys.argv) > 2 else 300000
BASE = int(os.environ.get("HEAPSNAP_SIGNAL_BASE", "1"))


class L(list):
    pass


class D(dict):
    pass


def nest(kind, depth):
    x = kind()
    for _ in range(depth):
        x = kind([x]) if issubclass(kind, list) else kind(a=x)
    return x


def work(stop):
    while not stop.is_set():
        a = [[i, (i, float(i))] for i in range(100)]
        b = {i: {"x": [i, i * 0.5]} for i in range(50)}
        del a, b


def main():
    for r in range(ROUNDS):
        os.kill(os.getpid(), signal.SIGRTMIN + BASE)          # start
        time.sleep(0.05)
        stop = threading.Event()
        threads = [threading.Thread(target=work, args=(stop,)) for _ in range(3)]
        for t in threads:
            t.start()
        for kind in (list, L, dict, D):
            x = nest(kind, DEPTH)
            del x
        t = ()
        for i in range(DEPTH):
            t = (t, i, float(i))
        del t
        gc.collect()
        if r == 1:
            gc.callbacks.clear()                            # a program may do this
            gc.collect()
        stop.set()
        for t in threads:
            t.join()
        os.kill(os.getpid(), signal.SIGRTMIN + BASE + 1)      # stop: final snapshot
        time.sleep(0.05)
    print("done")


main()
