// cxx_threads.cpp - a multi-threaded C++ host for ShimTests' real-program
// matrix (RobustnessTests.swift): std::thread workers fill containers,
// throw exceptions from deep frames while allocating and catch them a few
// frames up. Each thread's result lands in its own slot and main prints
// them in order, so the output is deterministic.
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

struct Failure : std::runtime_error {
    explicit Failure(const std::string &what) : std::runtime_error(what) {}
};

__attribute__((noinline)) std::vector<std::string> leaf(uint64_t x, int n)
{
    std::vector<std::string> out;
    for (int i = 0; i < n; i++)
        out.push_back("leaf-" + std::to_string(x + i) + std::string(x % 40, 'x'));
    if (x % 7 == 0)
        throw Failure("seven divides " + std::to_string(x) + " (" + out.back() + ")");
    return out;
}

__attribute__((noinline)) size_t middle(uint64_t x)
{
    auto holder = std::make_unique<std::map<int, std::string>>();
    for (int i = 0; i < 8; i++)
        (*holder)[i] = std::to_string(x * i);
    auto v = leaf(x, 6);        // may throw: holder and v unwind
    return v.size() + holder->size();
}

__attribute__((noinline)) uint64_t work(int t)
{
    uint64_t sum = 0, caught = 0;
    std::unordered_map<std::string, std::shared_ptr<std::vector<int>>> table;
    for (uint64_t i = 0; i < 20000; i++) {
        uint64_t x = i * 31 + static_cast<uint64_t>(t);
        try {
            sum += middle(x);
        } catch (const Failure &e) {
            caught++;
            sum += std::string(e.what()).size();
        }
        auto &slot = table["k" + std::to_string(i % 997)];
        if (!slot)
            slot = std::make_shared<std::vector<int>>();
        slot->push_back(static_cast<int>(i));
        if (slot->size() > 16)
            slot->erase(slot->begin(), slot->begin() + 8);
    }
    for (auto &kv : table)
        sum += kv.first.size() + kv.second->size();
    return sum * 1000003 + caught;
}

} // namespace

int main()
{
    const int n = 4;
    std::vector<uint64_t> results(n);
    std::vector<std::thread> threads;
    for (int t = 0; t < n; t++)
        threads.emplace_back([t, &results] { results[t] = work(t); });
    for (auto &th : threads)
        th.join();
    for (int t = 0; t < n; t++)
        std::printf("thread %d result %llu\n", t, static_cast<unsigned long long>(results[t]));
    return 0;
}
