// Placeholder; the CLI lands with the analysis issue.
print("heapsnap: not implemented yet")
