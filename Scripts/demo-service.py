"""A small Python request loop for Scripts/demo, profiled while it runs.

Each request renders a body, remembers it in a cache that is never pruned
(the leak), keeps a few 64 KiB buffers in a bounded pool (noise that comes
and goes), and counts words with collections.Counter (the standard library
allocates on the program's behalf). It runs until it is killed.
"""
import collections
import time


class ResponseCache:
    def __init__(self):
        self.entries = {}

    def store(self, key, body):
        self.entries[key] = {"key": key, "body": body, "hits": 0}


buffers = []
words = collections.Counter()


def render(i):
    return "response-%08d " % i * 4


def handle(i, cache):
    body = render(i)
    cache.store(i, body)
    if i % 50 == 0:
        buffers.append(bytearray(65536))
        if len(buffers) > 40:
            del buffers[:20]
    words.update(body.split()[:1])


def main():
    cache = ResponseCache()
    i = 0
    while True:
        for _ in range(200):
            handle(i, cache)
            i += 1
        time.sleep(0.01)


if __name__ == "__main__":
    main()
