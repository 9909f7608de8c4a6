// An output folder that stops being writable after the first epoch (a full disk, a revoked
// permission, an unmounted volume) stops training with the path named; the checkpoint written
// before stays loadable. Root ignores permission bits, so as root the folder is replaced by a
// plain file instead of being chmod-ed (every write under it then fails with ENOTDIR).
#include <convnextv2/train/trainer.hpp>
#include <support/fixtures.hpp>
#include <support/train_fixtures.hpp>

#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace convnextv2;
namespace fs = std::filesystem;

namespace {

// synthetic_set that runs `hook` once, on the first training sample of epoch `epoch`.
class hooked_set : public test::synthetic_set {
public:
    hooked_set(index_t n, std::uint64_t seed, std::int64_t epoch, std::function<void()> hook)
        : synthetic_set(n), es_(epoch_seed(seed, epoch)), hook_(std::move(hook)) {}
    void get(index_t i, std::uint64_t es, bool train, float* out, int* label) const override
    {
        if (train && es == es_) std::call_once(once_, hook_);
        synthetic_set::get(i, es, train, out, label);
    }

private:
    std::uint64_t es_;
    std::function<void()> hook_;
    mutable std::once_flag once_;
};

} // namespace

TEST_CASE("an output folder that becomes unwritable mid-run stops training with the path named", "[train][robustness]")
{
    test::temp_dir tmp("convnextv2_outdir");
    const std::string out = tmp / "run", moved = tmp / "run.moved";
    recipe r = test::tiny_recipe(out);
    const bool root = ::geteuid() == 0;
    auto ds = std::make_shared<hooked_set>(16, static_cast<std::uint64_t>(r.seed), /*epoch=*/1, [&] {
        if (root) {  // permissions do not stop root: take the folder away and put a file in its place
            fs::rename(out, moved);
            std::ofstream(out) << "not a directory";
        } else {
            ::chmod(out.c_str(), 0555);
        }
    });
    train::train_options o;
    o.r = r;
    o.verbose = false;
    o.train_set = ds;
    o.val_set = ds;
    train::trainer t(o);
    INFO((root ? "running as root: output folder replaced by a file" : "output folder made read-only with chmod 0555"));
    REQUIRE_THROWS_WITH(t.run(), Catch::Contains(train::checkpoint_path(out, r.model, 2)) && Catch::Contains("cannot write"));
    const std::string dir = root ? moved : out;
    if (!root) ::chmod(out.c_str(), 0755);
    // Epoch 1's checkpoint and metrics are intact; nothing claims epoch 2 was saved.
    auto all = train::list_checkpoints(dir, r.model);
    REQUIRE(all.size() == 1);
    CHECK(all[0].first == 1);
    convnextv2_model<float> m(train::model_config_of(r));
    REQUIRE_NOTHROW(io::load_weights(m.params(), all[0].second));
    std::ifstream metrics(fs::path(dir) / "metrics.jsonl");
    int lines = 0;
    for (std::string l; std::getline(metrics, l);) ++lines;
    CHECK(lines == 1);
}
