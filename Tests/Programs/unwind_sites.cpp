// Test program for the fast unwinder (Tests/ShimTests/UnwindTests.swift):
// allocations on ordinary paths, while an exception is thrown (the exception
// object, the message string), in destructors that run during unwinding, and
// in catch blocks; optionally from two threads at once, and from a signal
// handler (the kernel's signal frame, glibc's __restore_rt with a CIE
// marked 'S', is beyond the fast walk: those stacks come from libunwind).
//
// Usage: unwind_sites MODE [ROUNDS], MODE = exceptions | threads | signal.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

static std::vector<std::string> journal;            // per round; cleared
static thread_local std::vector<std::string> tl_journal;

// A local whose destructor allocates: runs in a landing pad while an
// exception propagates through the frame.
struct Noted {
    int depth;
    ~Noted() { tl_journal.push_back("left level " + std::to_string(depth)); }
};

__attribute__((noinline)) static void level3(int i)
{
    std::vector<int> scratch(64 + i % 32, i);
    if (i % 3 == 0)
        throw std::runtime_error("round " + std::to_string(i) + " failed at level 3 with a message long enough to allocate");
    tl_journal.push_back(std::string(40 + i % 20, 'x'));
}

__attribute__((noinline)) static void level2(int i)
{
    Noted n{2};
    std::map<int, std::string> m;
    for (int k = 0; k < 4; k++)
        m[k] = std::string(32 + k, 'm');
    level3(i);
}

__attribute__((noinline)) static void level1(int i)
{
    Noted n{1};
    try {
        level2(i);
    } catch (const std::logic_error &) {
        std::abort();                   // never thrown
    }
}

__attribute__((noinline)) static void rounds(int n)
{
    long caught = 0;
    for (int i = 0; i < n; i++) {
        try {
            level1(i);
        } catch (const std::runtime_error &e) {
            tl_journal.push_back(std::string("caught: ") + e.what());   // allocates in the handler
            caught++;
        }
        if (tl_journal.size() > 256)
            tl_journal.clear();
    }
    std::printf("caught %ld of %d\n", caught, n);
}

// Raised synchronously by raise() from main, never inside malloc: the
// allocation is safe here.
static void on_usr1(int)
{
    void *volatile p = std::malloc(200);
    std::free(p);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "exceptions";
    int n = argc > 2 ? std::atoi(argv[2]) : 2000;
    if (std::strcmp(mode, "exceptions") == 0) {
        rounds(n);
    } else if (std::strcmp(mode, "threads") == 0) {
        std::thread a(rounds, n), b(rounds, n);
        a.join();
        b.join();
    } else if (std::strcmp(mode, "signal") == 0) {
        std::signal(SIGUSR1, on_usr1);
        rounds(n);
        for (int i = 0; i < n / 50; i++)
            std::raise(SIGUSR1);
    } else {
        std::fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    journal.clear();
    return 0;
}
