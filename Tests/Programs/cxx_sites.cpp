// cxx_sites.cpp - C++ allocations (new/delete, containers) for ShimTests.
// Run with HEAPSNAP_RATE=1 HEAPSNAP_START=1 HEAPSNAP_AT_EXIT=1: operator new
// reaches the shim through libstdc++'s malloc, so exact counts are known.
#include <cstdio>
#include <string>
#include <vector>

#define SITE __attribute__((noinline, used, section("hs_sites"), aligned(4096)))

struct Node {
    char payload[40];
    Node *next;
};

static Node *volatile keep[1000];
static std::vector<int> *volatile vec;

SITE void site_new(int i) { keep[i] = new Node(); }
SITE void site_delete(int i) { delete keep[i]; keep[i] = nullptr; }
SITE void site_array(int i) { keep[i] = reinterpret_cast<Node *>(new char[333]); }
SITE void site_vector() { vec = new std::vector<int>(1000, 7); }

int main()
{
    std::printf("site new %p\nsite delete %p\nsite array %p\nsite vector %p\n", (void *)site_new,
                (void *)site_delete, (void *)site_array, (void *)site_vector);
    std::fflush(stdout);
    for (int i = 0; i < 300; i++)
        site_new(i);            // 300 x 48 B
    for (int i = 0; i < 100; i++)
        site_delete(i);         // 100 of them deleted
    for (int i = 500; i < 520; i++)
        site_array(i);          // 20 x 333 B, kept
    site_vector();              // one 4000-byte buffer (plus the vector object)
    return 0;
}
