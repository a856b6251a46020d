// Test program for runtime-frame attribution (Tests/ShimTests/AttributionTests.swift):
// std::string and std::map growth in two functions of the program.
#include <map>
#include <string>
#include <vector>
#include <cstdio>
std::vector<std::string> kept;
std::map<int, std::vector<int>> table;
__attribute__((noinline)) void fill(int n) {
    for (int i = 0; i < n; i++) kept.push_back(std::string(100, 'a' + i % 26));
}
__attribute__((noinline)) void index_rows(int n) {
    for (int i = 0; i < n; i++) table[i].assign(50, i);
}
int main() { fill(20000); index_rows(10000); std::printf("%zu %zu\n", kept.size(), table.size()); }
