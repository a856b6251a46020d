// cxx_globals.cpp - a C++ program that keeps ~20 MiB in global containers
// until it exits; their static destructors free it all during exit(). The
// AT_EXIT snapshot must be taken before them (ShimTests, "Timeline").
// site strings: 16 strings of 1 MiB in a global vector; site map: 4,096
// entries of 1 KiB in a global map. With the argument "exit", main
// registers an atexit handler that empties the vector and calls exit(0):
// handlers registered during main run before one registered earlier, so
// only an exit() that writes first sees the strings.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#define SITE __attribute__((noinline, used, section("hs_sites"), aligned(4096)))

static std::vector<std::string> strings;
static std::map<int, std::vector<char>> table;

SITE void site_strings(int i) { strings.emplace_back(std::string(1 << 20, char('a' + i))); }
SITE void site_map(int i) { table.emplace(i, std::vector<char>(1024, char(i))); }

static void drop_strings()
{
    strings.clear();
    strings.shrink_to_fit();
}

int main(int argc, char **argv)
{
    std::printf("site strings %p\nsite map %p\n", (void *)site_strings, (void *)site_map);
    std::fflush(stdout);
    strings.reserve(16);
    for (int i = 0; i < 16; i++)
        site_strings(i);
    for (int i = 0; i < 4096; i++)
        site_map(i);
    if (argc > 1 && std::string(argv[1]) == "exit") {
        std::atexit(drop_strings);
        std::exit(0);
    }
    return 0;
}
