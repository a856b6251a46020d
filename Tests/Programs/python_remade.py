"""Code objects remade at one address under other names, for the shim's
Python frame memo: each round makes a function g_K from one template (the
same line table, file and first line; a new name string), calls it and
drops it, so CPython's allocator hands the next round's code object and
name back at the same addresses. g_K allocates a list of 1000 + 100*K
pointers that stays alive; a memo that trusted addresses alone would give
every round the first name.

First it waits, without ever releasing the GIL, until a callback is
registered with atexit (heapsnap's at-exit hook; at most 5 s), so that the
at-exit snapshot is written before finalization frees the kept lists: a
program that never releases the GIL is the case where CPython 3.11 and
3.12 run a pending call late or never.

usage: python3 python_remade.py   (prints "hook registered" or "no hook", then "done ROUNDS")
"""
import atexit
import time
import types

ROUNDS = 300

start = time.monotonic()
spins = 0
while atexit._ncallbacks() == 0 and time.monotonic() - start < 5:
    spins += 1
print("hook registered" if atexit._ncallbacks() else "no hook")


def template(n):
    return [0] * n


kept = []
for i in range(ROUNDS):
    k = i % 10
    name = "g_%d" % k
    f = types.FunctionType(template.__code__.replace(co_name=name, co_qualname=name), globals())
    kept.append(f(1000 + 100 * k))
    del f, name
print("done", len(kept))
