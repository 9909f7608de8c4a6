// Data-parallel training on 2 MPI ranks (run under mpirun -np 2): bit-identical to one process
// with gradient accumulation, sharding, sharded validation, resume, and the config-mismatch check.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <convnextv2/core/parallel.hpp>
#include <convnextv2/train/mpi_communicator.hpp>
#include <convnextv2/train/pretrainer.hpp>
#include <convnextv2/train/trainer.hpp>
#include <support/train_fixtures.hpp>

#include <filesystem>
#include <mutex>
#include <unistd.h>

using namespace convnextv2;
namespace fs = std::filesystem;
using test::synthetic_set;
using test::tiny_recipe;

namespace {

std::shared_ptr<train::communicator> world_comm;

// The same directory name on every rank (rank 0's pid).
std::string shared_dir(const std::string& name)
{
    std::string p = (fs::temp_directory_path() / ("convnextv2_mpi_" + name + "_" + std::to_string(::getpid()))).string();
    world_comm->broadcast(p, 0);
    if (world_comm->rank() == 0) fs::remove_all(p);
    world_comm->barrier();
    return p;
}

train::train_options options(const recipe& r, std::shared_ptr<const dataset> ds, std::shared_ptr<train::communicator> comm)
{
    train::train_options o;
    o.r = r;
    o.verbose = false;
    o.train_set = ds;
    o.val_set = ds;
    o.comm = std::move(comm);
    return o;
}

std::vector<float> flat_weights(train::trainer& t)
{
    std::vector<float> w;
    for (auto& p : t.model().params()) w.insert(w.end(), p.value->begin(), p.value->end());
    return w;
}
std::vector<float> flat_ema(train::trainer& t)
{
    t.ema()->swap_into(t.model().params());
    auto w = flat_weights(t);
    t.ema()->swap_into(t.model().params());
    return w;
}

// Every rank holds the same vector as rank 0.
bool same_on_all_ranks(std::vector<float> v)
{
    std::vector<float> root = v;
    world_comm->broadcast(root.data(), static_cast<index_t>(root.size()), 0);
    std::int64_t differ = root != v;
    world_comm->allreduce_sum(&differ, 1);
    return differ == 0;
}

} // namespace

TEST_CASE("2 ranks x micro-batch b equal 1 process with update_freq 2, bit for bit (AdamW + EMA)", "[mpi]")
{
    REQUIRE(world_comm->size() == 2);
    auto ds = std::make_shared<synthetic_set>(16);  // batch 4 x 2 ranks -> 2 steps/epoch, 3 epochs
    recipe r = tiny_recipe(shared_dir("dist"));
    train::trainer dist(options(r, ds, world_comm));
    auto s = dist.run();
    REQUIRE(s.epochs_done == 3);
    auto w = flat_weights(dist), e = flat_ema(dist);
    CHECK(same_on_all_ranks(w));
    CHECK(same_on_all_ranks(e));
    if (world_comm->rank() == 0) {
        recipe r1 = tiny_recipe(r.ckpt_save_dir + "_single");
        r1.update_freq = 2;
        train::trainer single(options(r1, std::make_shared<synthetic_set>(16), nullptr));
        auto s1 = single.run();
        CHECK(flat_weights(single) == w);
        CHECK(flat_ema(single) == e);
        CHECK(s1.final_eval.top1 == s.final_eval.top1);
        CHECK(s1.final_eval.loss == s.final_eval.loss);
        CHECK(fs::exists(train::checkpoint_path(r.ckpt_save_dir, r.model, 3)));
        fs::remove_all(r1.ckpt_save_dir);
        fs::remove_all(r.ckpt_save_dir);
    }
    world_comm->barrier();
}

TEST_CASE("sharding: each sample once per epoch across ranks; sharded validation equals one process", "[mpi]")
{
    auto ds = std::make_shared<synthetic_set>(24);  // batch 4 x 2 ranks -> 3 steps, every sample used
    recipe r = tiny_recipe(shared_dir("shard"));
    r.epoch_size = 1;
    r.val_while_train = false;
    auto o = options(r, ds, world_comm);
    o.val_set = nullptr;
    train::trainer t(o);
    t.run();
    auto seen = ds->seen();
    world_comm->allreduce_sum(seen.data(), static_cast<index_t>(seen.size()));
    for (std::size_t i = 0; i < seen.size(); ++i) {
        CAPTURE(i);
        CHECK(seen[i] == 1);
    }
    // 18 samples in eval batches of 4: 5 batches (the last partial), 3 on rank 0 and 2 on rank 1.
    auto val = std::make_shared<synthetic_set>(18);
    auto d = train::evaluate(t.model(), *val, 4, world_comm.get());
    auto l = train::evaluate(t.model(), *val, 4, nullptr);
    CHECK(d.count == 18);
    CHECK(d.count == l.count);
    CHECK(d.top1 == l.top1);
    CHECK(d.top5 == l.top5);
    CHECK(d.loss == l.loss);
    auto df = train::evaluate(t.model(), *val, 4, world_comm.get(), true);  // flip test-time augmentation
    auto lf = train::evaluate(t.model(), *val, 4, nullptr, true);
    REQUIRE(df.has_hflip);
    CHECK(df.top1 == l.top1);
    CHECK(df.hflip_top1 == lf.hflip_top1);
    CHECK(df.hflip_top5 == lf.hflip_top5);
    CHECK(df.hflip_loss == lf.hflip_loss);
    world_comm->barrier();
    if (world_comm->rank() == 0) fs::remove_all(r.ckpt_save_dir);
}

TEST_CASE("resume under 2 ranks equals the uninterrupted run", "[mpi]")
{
    auto ds = std::make_shared<synthetic_set>(16);
    recipe r = tiny_recipe(shared_dir("straight"));
    train::trainer straight(options(r, ds, world_comm));
    REQUIRE(straight.run().epochs_done == 3);

    recipe r2 = tiny_recipe(shared_dir("resumed"));
    {
        auto o = options(r2, ds, world_comm);
        o.stop_after_epochs = 1;
        train::trainer first(o);
        REQUIRE(first.run().epochs_done == 1);
    }
    auto o = options(r2, ds, world_comm);
    o.resume = "auto";
    train::trainer resumed(o);
    REQUIRE(resumed.run().epochs_done == 3);
    CHECK(flat_weights(straight) == flat_weights(resumed));
    CHECK(flat_ema(straight) == flat_ema(resumed));
    world_comm->barrier();
    if (world_comm->rank() == 0) {
        fs::remove_all(r.ckpt_save_dir);
        fs::remove_all(r2.ckpt_save_dir);
    }
}

TEST_CASE("a recipe that differs between ranks is a collective error on every rank", "[mpi]")
{
    auto ds = std::make_shared<synthetic_set>(16);
    recipe r = tiny_recipe(shared_dir("mismatch"));
    if (world_comm->rank() == 1) r.lr *= 2;
    r.num_threads = world_comm->rank() + 1;  // rank-local: allowed to differ
    REQUIRE_THROWS_AS(train::trainer(options(r, ds, world_comm)), train::collective_error);
    try {
        train::trainer t(options(r, ds, world_comm));
    } catch (const std::exception& e) {
        CHECK_THAT(e.what(), Catch::Contains("recipe hash differs between ranks") && !Catch::Contains("model hash"));
    }
    world_comm->barrier();
    if (world_comm->rank() == 0) fs::remove_all(r.ckpt_save_dir);
}

TEST_CASE("FCMAE pretraining: 2 ranks equal 1 process with update_freq 2, bit for bit (masks, weights, val loss)", "[mpi][fcmae]")
{
    auto ds = std::make_shared<synthetic_set>(16);
    recipe r = test::tiny_fcmae_recipe(shared_dir("fcmae"));
    r.recon_images = 0;
    auto po = [&](const recipe& rr, std::shared_ptr<train::communicator> comm) {
        train::pretrain_options o;
        o.r = rr;
        o.verbose = false;
        o.train_set = ds;
        o.val_set = ds;
        o.comm = std::move(comm);
        return o;
    };
    train::pretrainer<sparse_sites> dist(po(r, world_comm));
    auto s = dist.run();
    std::vector<float> w;
    for (auto& p : dist.model().params()) w.insert(w.end(), p.value->begin(), p.value->end());
    CHECK(same_on_all_ranks(w));
    if (world_comm->rank() == 0) {
        recipe r1 = test::tiny_fcmae_recipe(r.ckpt_save_dir + "_single");
        r1.recon_images = 0;
        r1.update_freq = 2;
        train::pretrainer<sparse_sites> single(po(r1, nullptr));
        auto s1 = single.run();
        std::vector<float> w1;
        for (auto& p : single.model().params()) w1.insert(w1.end(), p.value->begin(), p.value->end());
        CHECK(w1 == w);
        CHECK(s1.train_loss == s.train_loss);
        CHECK(s1.val_loss == s.val_loss);
        CHECK(fs::exists(s.encoder_path));
        fs::remove_all(r1.ckpt_save_dir);
        fs::remove_all(r.ckpt_save_dir);
    }
    world_comm->barrier();
}

int main(int argc, char** argv)
{
    train::mpi_session mpi(&argc, &argv);
    thread_limit one(1);  // bit-identity needs the same thread count on every rank and the reference
    world_comm = std::make_shared<train::mpi_communicator>();
    int rc = Catch::Session().run(argc, argv);
    std::int64_t failed = rc != 0;
    world_comm->allreduce_sum(&failed, 1);
    world_comm.reset();
    return failed ? 1 : 0;
}
