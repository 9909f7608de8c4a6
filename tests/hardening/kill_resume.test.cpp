// Crash safety of the `train` program: SIGKILL at random moments (3 times), `--resume auto`
// after each, then to the end. The final checkpoint's tensors (weights, EMA, AdamW moments) must
// equal an uninterrupted run's bit for bit (fixed seed and thread count), and every checkpoint
// file present after a kill must load. The kill delays are random; they are printed so that a
// failure can be reproduced with CONVNEXTV2_KILL_SEED.
#include <convnextv2/data/fashion_mnist.hpp>
#include <convnextv2/train/checkpoint.hpp>
#include <support/fixtures.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <random>
#include <signal.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace convnextv2;
namespace fs = std::filesystem;

namespace {

void write_idx(const std::string& path, std::vector<std::uint32_t> dims, const std::vector<std::uint8_t>& data)
{
    std::ofstream f(path, std::ios::binary);
    const std::uint8_t head[4] = {0, 0, 8, static_cast<std::uint8_t>(dims.size())};
    f.write(reinterpret_cast<const char*>(head), 4);
    for (std::uint32_t d : dims) {
        const std::uint8_t be[4] = {std::uint8_t(d >> 24), std::uint8_t(d >> 16), std::uint8_t(d >> 8), std::uint8_t(d)};
        f.write(reinterpret_cast<const char*>(be), 4);
    }
    f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    REQUIRE(f.good());
}

// A Fashion-MNIST-shaped folder: n training and n test images (class-dependent bright rows).
void write_dataset(const std::string& dir, std::uint32_t n)
{
    fs::create_directories(dir);
    counter_rng rng(7, 1);
    for (const char* split : {"train", "t10k"}) {
        std::vector<std::uint8_t> img(n * 28 * 28), lab(n);
        for (std::uint32_t i = 0; i < n; ++i) {
            lab[i] = static_cast<std::uint8_t>(i % 10);
            for (int p = 0; p < 28 * 28; ++p)
                img[i * 784 + p] = static_cast<std::uint8_t>(rng.below(128) + ((p / 28) % 10 == lab[i] ? 127 : 0));
        }
        write_idx(dir + "/" + split + "-images-idx3-ubyte", {n, 28, 28}, img);
        write_idx(dir + "/" + split + "-labels-idx1-ubyte", {n}, lab);
    }
}

pid_t start_train(const std::string& config, const std::string& data, const std::string& out, const std::string& log)
{
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) { ::dup2(fd, 1); ::dup2(fd, 2); }
        ::execl(CONVNEXTV2_TRAIN_PROGRAM, "train", "--config", config.c_str(), "--data_dir", data.c_str(), "--output_dir",
                out.c_str(), "--resume", "auto", "--num_threads", "2", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    return pid;
}

int wait_exit(pid_t pid)
{
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string read_text(const std::string& p)
{
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Every finished checkpoint in `dir` (temp files excluded) must parse as a training checkpoint.
int check_checkpoints_readable(const std::string& dir, const std::string& model)
{
    int n = 0;
    for (auto& [epoch, path] : train::list_checkpoints(dir, model)) {
        CAPTURE(path);
        io::st_file f;
        REQUIRE_NOTHROW(f = io::read_safetensors(path));
        REQUIRE(f.metadata.count("format"));
        CHECK(f.metadata.at("epochs_done") == std::to_string(epoch));
        ++n;
    }
    return n;
}

} // namespace

TEST_CASE("train survives SIGKILL at random moments: resume auto ends bit-identical to an uninterrupted run", "[train][robustness]")
{
    test::temp_dir tmp("convnextv2_kill");
    const std::string data = tmp / "data", config = tmp / "recipe.json";
    write_dataset(data, 256);
    std::ofstream(config) << R"({"model": "kill_test", "depths": [1, 1, 1, 1], "dims": [4, 8, 8, 8], "num_classes": 10,
        "in_chans": 1, "image_resize": 32, "stem_kernel": 4, "dataset": "fashion_mnist", "batch_size": 8,
        "epoch_size": 10, "lr": 0.005, "min_lr": 1e-5, "warmup_epochs": 1, "drop_path_rate": 0.1, "ema": true,
        "ema_decay": 0.9, "layer_decay": 0.9, "seed": 5, "log_interval": 0, "val_while_train": false,
        "keep_checkpoint_max": 3, "auto_augment": "", "re_prob": 0})";

    // The reference: one uninterrupted run.
    const std::string ref = tmp / "ref";
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(wait_exit(start_train(config, data, ref, tmp / "ref.log")) == 0);
    const double full_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO("uninterrupted run: " << full_s << " s; log:\n" << read_text(tmp / "ref.log"));
    const std::string ref_final = train::checkpoint_path(ref, "kill_test", 10);
    REQUIRE(fs::exists(ref_final));

    // Three kills at random moments, each followed by `--resume auto`.
    const char* seed_env = std::getenv("CONVNEXTV2_KILL_SEED");
    const unsigned seed = seed_env ? static_cast<unsigned>(std::strtoul(seed_env, nullptr, 10)) : std::random_device{}();
    std::mt19937 gen(seed);
    std::uniform_real_distribution<double> frac(0.3, 0.8);
    const std::string run = tmp / "run", log = tmp / "run.log";
    std::string kills;
    int interrupted = 0;
    for (int k = 0; k < 3; ++k) {
        // A random moment within what is left of the run (resumed runs are shorter).
        auto done = train::list_checkpoints(run, "kill_test");
        const double left = std::max(0.2, (10.0 - (done.empty() ? 0.0 : static_cast<double>(done.back().first))) / 10.0);
        const double delay = frac(gen) * full_s * left;
        const pid_t pid = start_train(config, data, run, log);
        std::this_thread::sleep_for(std::chrono::duration<double>(delay));
        ::kill(pid, SIGKILL);
        const int code = wait_exit(pid);
        interrupted += code == 128 + SIGKILL;
        kills += " " + std::to_string(delay) + "s" + (code == 128 + SIGKILL ? "" : "(finished first)");
        check_checkpoints_readable(run, "kill_test");
    }
    INFO("CONVNEXTV2_KILL_SEED=" << seed << ", kills after" << kills << "; log:\n" << read_text(log));
    CHECK(interrupted >= 1);
    // At least one kill came after a checkpoint, so a run really resumed (not only restarted).
    CHECK(read_text(log).find("resumed from") != std::string::npos);
    REQUIRE(wait_exit(start_train(config, data, run, log)) == 0);
    CHECK(check_checkpoints_readable(run, "kill_test") == 3);  // keep_checkpoint_max

    // Bit-identical final state: every tensor of the last checkpoint (metadata holds timings).
    io::st_file a = io::read_safetensors(ref_final), b = io::read_safetensors(train::checkpoint_path(run, "kill_test", 10));
    REQUIRE(a.tensors.size() == b.tensors.size());
    for (auto& [name, t] : a.tensors) {
        CAPTURE(name);
        REQUIRE(b.tensors.count(name));
        CHECK(t.bytes == b.tensors.at(name).bytes);
    }
    CHECK(a.metadata.at("global_step") == b.metadata.at("global_step"));
    CHECK(a.metadata.at("adamw_step") == b.metadata.at("adamw_step"));
}
