/* Placeholder; the shim lands with the capture issue. */
