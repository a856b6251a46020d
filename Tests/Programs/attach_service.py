# attach_service.py - a Python service loop started without heapsnap, for
# AttachTests: `heapsnap attach` loads the shim while it serves. The main
# thread serves requests without pause (each builds a record whose string is
# big enough for malloc, so the process reaches a safe point at once); a
# reader thread takes commands from stdin:
#   grow N   keeps N records built by grow() -> "grown"
#   quit     -> "bye N", exit 0
import sys
import threading
import time

held = []
commands = []


def reader():
    for line in sys.stdin:
        commands.append(line.strip())
    commands.append("quit")


def handle(i):
    return {"id": i, "payload": "x" * (2000 + i % 7), "items": list(range(20))}


def grow(n):
    for i in range(n):
        held.append(handle(i))


threading.Thread(target=reader, daemon=True).start()
print("ready", flush=True)
served = 0
while True:
    handle(served)
    served += 1
    if served % 100 == 0:
        time.sleep(0.001)
    if commands:
        command = commands.pop(0)
        if command.startswith("grow"):
            grow(int(command.split()[1]))
            print("grown", flush=True)
        elif command == "quit":
            break
print("bye", len(held))
