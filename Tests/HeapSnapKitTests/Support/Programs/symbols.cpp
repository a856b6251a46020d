// Symbolizer test program (C++): an allocation inside a template, inlined twice.
#include <cstddef>
template <class T> struct Pool {
    __attribute__((always_inline)) inline T *make(std::size_t n) {
        return new T[n]; // CXX_NEW
    }
};
__attribute__((always_inline)) inline int *helper(std::size_t n) {
    Pool<int> pool;
    return pool.make(n); // CXX_HELPER
}
namespace app {
__attribute__((noinline)) int *outer(std::size_t n) {
    return helper(n); // CXX_OUTER
}
}
int main(int argc, char **) { return app::outer(static_cast<std::size_t>(argc) * 4) == nullptr; }
