"""Code objects remade at one address under other names, for the shim's
Python frame memo: each round makes a function g_K from one template (the
same line table, file and first line; a new name string), calls it and
drops it, so CPython's allocator hands the next round's code object and
name back at the same addresses. g_K allocates a list of 1000 + 100*K
pointers that stays alive; a memo that trusted addresses alone would give
every round the first name.

usage: python3 python_remade.py   (prints "done ROUNDS")
"""
import types

ROUNDS = 300


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
