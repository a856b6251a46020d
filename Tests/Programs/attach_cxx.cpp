// attach_cxx.cpp - a C++ program started without heapsnap, for AttachTests.
// Worker threads build and drop std::string and std::vector values (new and
// delete through libstdc++) without pause; commands on stdin, one a line:
//   leak N   keeps N arrays of 1000 bytes made with new[] at site_new -> "leaked"
//   quit     -> "checksum C", exit 5
// site_new sits in its own 4 KiB-aligned slot ("site new ADDRESS" first).
#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

static std::atomic<bool> stopping{false};
static char *volatile kept[100000];

extern "C" __attribute__((noinline, used, section("hs_sites"), aligned(4096))) void site_new(int i)
{
    kept[i] = new char[1000];
}

static unsigned long work(int me)
{
    unsigned long sum = 0;
    for (unsigned long i = 0; !stopping.load(std::memory_order_relaxed); i++) {
        std::vector<std::string> v;
        for (int k = 0; k < 8; k++)
            v.push_back(std::string(20 + (i + k) % 300, char('a' + (me + k) % 26)));
        for (auto &s : v)
            sum += s.size() + (unsigned char)s[s.size() / 2];
    }
    return sum != 0;
}

int main()
{
    std::printf("site new %p\nready\n", (void *)site_new);
    std::fflush(stdout);
    std::vector<std::thread> threads;
    std::vector<unsigned long> results(3);
    for (int t = 0; t < 3; t++)
        threads.emplace_back([t, &results] { results[t] = work(t); });
    std::string line;
    while (std::getline(std::cin, line)) {
        int n = 0;
        if (std::sscanf(line.c_str(), "leak %d", &n) == 1) {
            for (int i = 0; i < n && i < 100000; i++)
                site_new(i);
            std::printf("leaked\n");
        } else if (line == "quit") {
            break;
        }
        std::fflush(stdout);
    }
    stopping = true;
    for (auto &t : threads)
        t.join();
    std::printf("checksum %lu\n", results[0] + results[1] + results[2]);
    return 5;
}
