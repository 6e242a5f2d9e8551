// C++ symbols of several mangling shapes, for the demangler test: it
// compares our output with c++filt over this program's symbol table.
#include <map>
#include <string>
#include <vector>

namespace geo {
struct Shape {
    virtual ~Shape() {}
    virtual double area() const = 0;
};
struct Square : Shape {
    explicit Square(double s) : side(s) {}
    double area() const override { return side * side; }
    double side;
};
template <typename T> T twice(const T &v) { return v + v; }
}  // namespace geo

int count_words(const std::map<std::string, std::vector<int>> &m, int (*pick)(int))
{
    int n = 0;
    for (auto &kv : m)
        n += pick(static_cast<int>(kv.second.size()));
    return n;
}

static int ident(int x) { return x; }

int main()
{
    std::map<std::string, std::vector<int>> m{{"a", {1, 2}}};
    geo::Square sq(geo::twice(1.5));
    geo::Shape *s = &sq;
    return count_words(m, ident) + static_cast<int>(s->area()) + geo::twice(1) == 0;
}
