// Symbolizer test program (C): one known allocation site.
#include <stdlib.h>
__attribute__((noinline)) void *c_site(size_t n) {
    return malloc(n); // C_SITE
}
int main(int argc, char **argv) { (void)argv; return c_site((size_t)argc * 16) == 0; }
