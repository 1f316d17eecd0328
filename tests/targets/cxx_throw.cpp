// cxx_throw: a C++ exception thrown in thrower() propagates through
// middle() to main, which catches it.
//
// main makes 4 rounds, round r calling middle(r, throw) with throw = r odd:
// rounds 1 and 3 throw (middle and thrower are left by the exception),
// rounds 0 and 2 return normally. Prints one line per round and "done".
// The functions are extern "C" so that their symbols are plain names.
#include <cstdio>
#include <stdexcept>
#include <string>

extern "C" __attribute__((noipa)) int thrower(int round, int do_throw)
{
    if (do_throw)
        throw std::runtime_error("thrown in round " + std::to_string(round));
    return round * 10;
}

extern "C" __attribute__((noipa)) int middle(int round, int do_throw)
{
    // A local with a destructor: the unwinder runs a cleanup here.
    std::string keep("middle");
    return thrower(round, do_throw) + static_cast<int>(keep.size());
}

int main()
{
    for (int round = 0; round < 4; round++) {
        try {
            int value = middle(round, round % 2);
            std::printf("round %d: returned %d\n", round, value);
        } catch (const std::runtime_error &e) {
            std::printf("round %d: caught %s\n", round, e.what());
        }
    }
    std::puts("done");
    return 0;
}
