/*
 * session_gate.c - the session gate's two variables (session_gate.h).
 */
#include "base/session_gate.h"

uint32_t hs_gate;
__thread uint32_t hs_gate_entered __attribute__((tls_model("initial-exec")));
