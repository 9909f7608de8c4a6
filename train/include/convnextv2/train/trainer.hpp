// SPDX-License-Identifier: MIT
// The supervised training loop behind `train` and `validate` (MindCV's train.py/validate.py
// workflow): recipe -> model -> AdamW with layer-wise lr decay and warmup-cosine schedule ->
// label-smoothing cross entropy -> gradient accumulation -> EMA -> per-epoch evaluation,
// metrics.jsonl, plot, crash-safe checkpoints and exact resume.
// Every random choice is a pure function of (seed, epoch, sample) or (seed, block, step), so a
// resumed run repeats the uninterrupted one exactly at a fixed thread count.
#pragma once
#include "checkpoint.hpp"
#include "communicator.hpp"
#include "finite_check.hpp"
#include "report.hpp"
#include "run_support.hpp"

#include <convnextv2/data/dataset.hpp>
#include <convnextv2/data/fashion_mnist.hpp>
#include <convnextv2/data/image_folder.hpp>
#include <convnextv2/io/recipe.hpp>
#include <convnextv2/kernels/cross_entropy.hpp>
#include <convnextv2/models/convnextv2.hpp>
#include <convnextv2/optim/schedule.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>

namespace convnextv2::train {

struct train_options {
    recipe r;
    std::string config_path;         // for messages
    std::string output_dir;          // "" -> r.ckpt_save_dir
    std::string resume;              // "" (fresh), "auto" (latest in output_dir) or a checkpoint path
    std::int64_t stop_after_epochs = -1;  // stop early after this many completed epochs (tests, time budgets)
    bool verbose = true;
    // Datasets supplied by the caller (embedding, tests); otherwise built from the recipe.
    std::shared_ptr<const dataset> train_set, val_set;
    // Data parallel: nullptr = single process. See "Distributed rules" above class trainer.
    std::shared_ptr<communicator> comm;
};

inline model_config model_config_of(const recipe& r)
{
    model_config c;
    if (!r.depths.empty()) {
        c.name = r.model.empty() ? "custom" : r.model;
        c.depths = r.depths;
        c.dims.assign(r.dims.begin(), r.dims.end());
    } else {
        c = variant_config(r.model);
    }
    c.num_classes = r.num_classes;
    c.in_chans = r.in_chans;
    c.drop_path_rate = r.drop_path_rate;
    c.head_init_scale = r.head_init_scale;
    c.stem_kernel = r.stem_kernel;
    return c;
}

// Datasets by recipe name. The ImageFolder pipeline plugs in here without touching the loop.
inline std::unique_ptr<dataset> make_dataset(const recipe& r, const std::string& data_dir, bool train_split)
{
    if (r.dataset == "fashion_mnist") {
        fashion_mnist_options o;
        if (!data_dir.empty()) o.dir = data_dir;
        o.split = train_split ? "train" : "test";
        o.image_size = r.image_resize;
        o.in_chans = r.in_chans;
        o.random_crop_padding = r.random_crop_padding;
        o.hflip = r.hflip;
        o.re_prob = r.re_prob;
        o.re_random_fill = r.re_value != "0";
        return std::make_unique<fashion_mnist_dataset>(o);
    }
    if (r.dataset == "imagefolder") {
        image_folder_options o;
        o.root = data_dir;
        o.split = train_split ? "train" : "val";
        o.image_size = r.image_resize;
        o.scale = r.scale;
        o.ratio = r.ratio;
        o.interpolation = r.interpolation;
        o.hflip = r.hflip;
        o.re_prob = r.re_prob;
        o.re_value = r.re_value;
        o.crop_pct = r.crop_pct;
        o.auto_augment = r.auto_augment;
        CONVNEXTV2_CHECK(r.in_chans == 3, "imagefolder: in_chans must be 3 (RGB), got ", r.in_chans);
        CONVNEXTV2_CHECK(!data_dir.empty(), "imagefolder: data_dir is not set");
        return std::make_unique<image_folder_dataset>(o);
    }
    detail::throw_error("", "dataset '", r.dataset, "' is not available in this build (supported: fashion_mnist, imagefolder)");
}

// The training and (with val_while_train) validation sets: the caller's, else the recipe's.
inline void open_datasets(const recipe& r, std::shared_ptr<const dataset> given_train, std::shared_ptr<const dataset> given_val,
                          std::shared_ptr<const dataset>& train_set, std::shared_ptr<const dataset>& val_set)
{
    train_set = given_train ? std::move(given_train) : std::shared_ptr<const dataset>(make_dataset(r, r.data_dir, true));
    if (r.val_while_train) val_set = given_val ? std::move(given_val) : std::shared_ptr<const dataset>(make_dataset(r, r.data_dir, false));
}

struct eval_result {
    double loss = 0, top1 = 0, top5 = 0;  // top-k in percent
    index_t count = 0;
    double seconds = 0;
    // With flip test-time augmentation (evaluate(..., hflip = true)): the same metrics for the
    // mean of the class probabilities of each image and of its mirror image.
    bool has_hflip = false;
    double hflip_loss = 0, hflip_top1 = 0, hflip_top5 = 0;
    double images_per_s() const { return seconds > 0 ? count / seconds : 0; }
};

// out = x mirrored left-right ([N, H, W, C]).
inline void hflip_batch(const tensor<float>& x, tensor<float>& out)
{
    out.resize(x.shape());
    const index_t rows = x.dim(0) * x.dim(1), W = x.dim(2), C = x.dim(3);
    parallel_for(0, rows, 16, [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r)
            for (index_t w = 0; w < W; ++w)
                std::copy_n(x.data() + (r * W + W - 1 - w) * C, C, out.data() + (r * W + w) * C);
    });
}

// Evaluates `m` (eval mode) over the whole dataset; loss is plain cross entropy. With `comm`,
// rank r evaluates batches r, r+world, ... and the results are reduced; per-batch losses are
// summed in batch order after the reduction, so every number equals the single-process one.
// With `hflip` each batch also runs mirrored, and the mean of the two softmax outputs gives the
// hflip_* metrics (the plain ones are unchanged; evaluation takes twice as long).
inline eval_result evaluate(convnextv2_model<float>& m, const dataset& ds, index_t batch_size, communicator* comm = nullptr,
                            bool hflip = false)
{
    const int rank = comm ? comm->rank() : 0, world = comm ? comm->size() : 1;
    const bool was_training = m.training();
    m.set_training(false);
    batch_loader_options lo;
    lo.batch_size = batch_size;
    lo.shuffle = false;
    lo.drop_remainder = false;
    lo.train = false;
    batch_loader loader(ds, lo, 0);
    tensor<float> x, logits, targets, xf, logits_f;
    std::vector<double> probs;
    std::vector<int> labels;
    eval_result r;
    const std::size_t nb = static_cast<std::size_t>(loader.num_batches());
    std::vector<double> batch_loss(hflip ? 2 * nb : nb, 0.0);  // plain, then flip-averaged
    std::int64_t counts[5] = {0, 0, 0, 0, 0};  // samples, top-1 hits, top-5 hits, flip-averaged top-1, top-5
    auto t0 = std::chrono::steady_clock::now();
    const index_t K = m.config().num_classes, k5 = std::min<index_t>(5, K);
    for (index_t b = rank; b < loader.num_batches(); b += world) {
        loader.load(b, x, labels);
        m.forward(x, logits);
        const index_t n = x.dim(0);
        targets.resize({n, K});
        kernels::smooth_targets(labels.data(), n, K, 0.0, targets.data());
        batch_loss[static_cast<std::size_t>(b)] =
            kernels::softmax_cross_entropy<float>(logits.data(), n, K, targets.data(), nullptr) * static_cast<double>(n);
        counts[1] += kernels::top_k_correct(logits.data(), n, K, labels.data(), 1);
        counts[2] += kernels::top_k_correct(logits.data(), n, K, labels.data(), k5);
        counts[0] += n;
        if (!hflip) continue;
        hflip_batch(x, xf);
        m.forward(xf, logits_f);
        probs.assign(static_cast<std::size_t>(n * K), 0.0);
        double loss = 0;
        for (index_t i = 0; i < n; ++i) {
            double* p = probs.data() + i * K;
            for (const tensor<float>* z : {&logits, &logits_f}) {
                const float* zi = z->data() + i * K;
                const double mx = *std::max_element(zi, zi + K);
                double sum = 0;
                for (index_t j = 0; j < K; ++j) sum += std::exp(static_cast<double>(zi[j]) - mx);
                for (index_t j = 0; j < K; ++j) p[j] += 0.5 * std::exp(static_cast<double>(zi[j]) - mx) / sum;
            }
            loss -= std::log(std::max(p[labels[static_cast<std::size_t>(i)]], 1e-300));
        }
        batch_loss[nb + static_cast<std::size_t>(b)] = loss;
        counts[3] += kernels::top_k_correct(probs.data(), n, K, labels.data(), 1);
        counts[4] += kernels::top_k_correct(probs.data(), n, K, labels.data(), k5);
    }
    if (world > 1) {
        comm->allreduce_sum(batch_loss.data(), static_cast<index_t>(batch_loss.size()));
        comm->allreduce_sum(counts, 5);
    }
    double loss_sum = 0, hflip_loss_sum = 0;
    for (std::size_t i = 0; i < nb; ++i) loss_sum += batch_loss[i];
    if (hflip)
        for (std::size_t i = 0; i < nb; ++i) hflip_loss_sum += batch_loss[nb + i];
    r.count = counts[0];
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double count = static_cast<double>(std::max<index_t>(r.count, 1));
    r.loss = loss_sum / count;
    r.top1 = 100.0 * static_cast<double>(counts[1]) / count;
    r.top5 = 100.0 * static_cast<double>(counts[2]) / count;
    if (hflip) {
        r.has_hflip = true;
        r.hflip_loss = hflip_loss_sum / count;
        r.hflip_top1 = 100.0 * static_cast<double>(counts[3]) / count;
        r.hflip_top5 = 100.0 * static_cast<double>(counts[4]) / count;
    }
    m.set_training(was_training);
    return r;
}

struct train_summary {
    std::string model;
    double params_m = 0;
    int batch_size = 0, resolution = 0;
    double ms_per_step = 0, images_per_s = 0;
    eval_result final_eval;       // of the weights used for the reported accuracy
    bool final_is_ema = false;
    double wall_seconds = 0;
    std::int64_t epochs_done = 0;
};

// Distributed rules (train_options::comm with world W > 1, update_freq u, batch_size b):
// - the epoch's order is cut into global batches of b; step s uses global batches s*u*W ..
//   (s+1)*u*W - 1, and rank r's micro-batch j of the step is global batch s*u*W + j*W + r, i.e.
//   exactly the batches a single process with update_freq u*W uses (leftover batches are dropped);
// - each micro-batch's gradient (loss scaled by 1/(u*W)) is added to a fused buffer that starts
//   at 0; one allreduce per step sums the buffers, so 2 ranks with u = 1 give bit-identical
//   weights to 1 process with u = 2; drop path uses the global micro-batch index;
// - rank 0's initial weights are broadcast; on resume every rank loads the checkpoint file that
//   rank 0 picked (it must be readable by all ranks: shared or copied output_dir);
// - only rank 0 writes checkpoints, metrics and the plot, and prints;
// - recipe, model and dataset sizes are hashed and compared at start-up.
class trainer {
public:
    explicit trainer(train_options o) : o_(std::move(o)), r_(o_.r)
    {
        comm_ = o_.comm ? o_.comm : local_communicator();
        rank_ = comm_->rank();
        world_ = comm_->size();
        o_.verbose = o_.verbose && rank_ == 0;
        if (o_.output_dir.empty()) o_.output_dir = r_.ckpt_save_dir;
        if (rank_ == 0) prepare_output_dir(o_.output_dir);

        open_datasets(r_, o_.train_set, o_.val_set, train_set_, val_set_);
        if (auto* f = dynamic_cast<const image_folder_dataset*>(train_set_.get()); f && rank_ == 0)
            write_classes_json(o_.output_dir, f->classes());
        CONVNEXTV2_CHECK(train_set_->num_classes() == r_.num_classes, o_.config_path, ": num_classes is ", r_.num_classes,
                         " but the dataset has ", train_set_->num_classes(), " classes");

        cfg_ = model_config_of(r_);
        model_ = std::make_unique<convnextv2_model<float>>(cfg_, static_cast<std::uint64_t>(r_.seed));
        if (world_ > 1) check_same_config(*comm_, r_, model_->params(), *train_set_, val_set_.get());
        if (!r_.ckpt_path.empty() && rank_ == 0) load_initial_weights(r_.ckpt_path);
        if (world_ > 1) broadcast_params(model_->params(), *comm_);
        acc_.assign(static_cast<std::size_t>(model_->num_params()) + 1, 0.f);  // + 1: non-finite loss count
        auto groups = make_param_groups(model_->params(), r_.filter_bias_and_bn, r_.layer_decay, cfg_.depths, r_.layer_decay_type);
        adamw_options ao;
        ao.lr = r_.lr;
        ao.beta1 = r_.beta1;
        ao.beta2 = r_.beta2;
        ao.eps = r_.eps;
        ao.weight_decay = r_.weight_decay;
        opt_ = std::make_unique<adamw<float>>(model_->params(), groups, ao);
        if (r_.ema) ema_ = std::make_unique<model_ema<float>>(model_->params());
    }

    convnextv2_model<float>& model() { return *model_; }
    model_ema<float>* ema() { return ema_.get(); }
    const std::string& output_dir() const { return o_.output_dir; }

    train_summary run()
    {
        auto wall0 = std::chrono::steady_clock::now();
        const scoped_matmul_precision precision(recipe_matmul_precision(r_));  // the products of this run
        checkpoint_state st;
        st.recipe = to_json(r_);
        if (!o_.resume.empty()) st = resume_from(o_.resume);
        if (rank_ == 0) rewrite_metrics(st.history);

        batch_loader_options lo;
        lo.batch_size = r_.batch_size;
        lo.seed = static_cast<std::uint64_t>(r_.seed);
        lo.shuffle = r_.shuffle;
        lo.drop_remainder = r_.drop_remainder;
        lo.train = true;
        lo.aug_repeats = r_.aug_repeats;
        lo.repeat_group = r_.batch_size;  // copies fill consecutive global batches: different ranks, same order for any world
        batch_loader loader(*train_set_, lo, st.epochs_done);
        const index_t micro_per_epoch = loader.num_batches();
        const index_t micro_per_step = static_cast<index_t>(r_.update_freq) * world_;
        const index_t steps_per_epoch = micro_per_epoch / micro_per_step;
        CONVNEXTV2_CHECK(steps_per_epoch >= 1, o_.config_path, ": batch_size ", r_.batch_size, " x update_freq ", r_.update_freq,
                         " x ranks ", world_, " is larger than the training set (", train_set_->size(), " samples)");
        const bool fused = micro_per_step > 1;
        const index_t K = cfg_.num_classes;
        progress_printer progress(r_.log_interval > 0 ? r_.log_interval : static_cast<int>(steps_per_epoch), o_.verbose);
        if (o_.verbose)
            std::fprintf(stderr, "%s: %.2fM parameters, %ld training images, %ld steps/epoch, output %s%s\n", cfg_.name.c_str(),
                         model_->num_params() / 1e6, (long)train_set_->size(), (long)steps_per_epoch, o_.output_dir.c_str(),
                         world_ > 1 ? (", " + std::to_string(world_) + " ranks (" + comm_->name() + ")").c_str() : "");

        train_summary sum;
        tensor<float> x, logits, targets, dlogits;
        std::vector<int> labels;
        double step_seconds_total = 0;
        index_t images_total = 0;
        std::int64_t steps_timed = 0;
        std::optional<eval_result> final_eval;  // the last epoch's, when the loop reaches it
        model_->set_training(true);
        for (std::int64_t epoch = st.epochs_done; epoch < r_.epoch_size; ++epoch) {
            if (o_.stop_after_epochs >= 0 && epoch >= o_.stop_after_epochs) break;
            loader.set_epoch(epoch);
            // This rank's batches in the order the loop below takes them, prepared in the background.
            auto prefetch = epoch_prefetcher(loader, steps_per_epoch, r_.update_freq, world_, rank_, r_.prefetch_batches);
            double data_wait = 0, epoch_step_seconds = 0;  // seconds waiting for batches / in steps
            auto e0 = std::chrono::steady_clock::now();
            double loss_sum = 0, lr = 0;
            index_t loss_count = 0;
            index_t epoch_images = 0;
            for (index_t s = 0; s < steps_per_epoch; ++s) {
                auto s0 = std::chrono::steady_clock::now();
                model_->zero_grad();
                if (fused) std::fill(acc_.begin(), acc_.end(), 0.f);
                double step_loss = 0;
                for (int u = 0; u < r_.update_freq; ++u) {
                    const index_t micro = static_cast<index_t>(u) * world_ + rank_;  // index within the global step
                    const index_t b = s * micro_per_step + micro;  // global batch index in the epoch
                    const auto w0 = std::chrono::steady_clock::now();
                    if (prefetch) CONVNEXTV2_CHECK(prefetch->next(x, labels) == b, "trainer: prefetched batch out of order");
                    else loader.load(b, x, labels);
                    data_wait += std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
                    const index_t n = x.dim(0);
                    if (fused) model_->zero_grad();
                    model_->set_step(static_cast<std::uint64_t>(st.global_step) * static_cast<std::uint64_t>(micro_per_step) +
                                     static_cast<std::uint64_t>(micro));
                    targets.resize({n, K});
                    dlogits.resize({n, K});
                    // Mixup/CutMix mixes the images in place: before the forward pass.
                    if (r_.mixup > 0 || r_.cutmix > 0) {
                        mix_options mo{r_.mixup, r_.cutmix, r_.mixup_prob, r_.mixup_switch_prob, r_.label_smoothing};
                        mix_batch(x, labels, K, mo, hash_combine(loader.current_epoch_seed(), static_cast<std::uint64_t>(b)), targets);
                    } else {
                        kernels::smooth_targets(labels.data(), n, K, r_.label_smoothing, targets.data());
                    }
                    model_->forward(x, logits);
                    double loss = kernels::softmax_cross_entropy(logits.data(), n, K, targets.data(), dlogits.data());
                    if (!std::isfinite(loss) && world_ > 1) {
                        acc_.back() += 1;  // all ranks stop together after the allreduce
                        continue;
                    }
                    if (!std::isfinite(loss)) {
                        progress.finish_line();
                        auto last = list_checkpoints(o_.output_dir, cfg_.name);
                        // check_finite: the same batch again, layer by layer, to name where it starts.
                        const std::string where = r_.check_finite ? locate_non_finite(*model_, x).text() : std::string();
                        detail::throw_error("", "loss is ", loss, " at epoch ", epoch + 1, ", step ", s + 1, " (global step ",
                                            st.global_step + 1, ")", where, "; training stopped. The last good checkpoint is ",
                                            last.empty() ? std::string("(none written yet)") : last.back().second);
                    }
                    if (micro_per_step > 1)
                        for (auto& g : dlogits) g /= static_cast<float>(micro_per_step);
                    model_->backward(dlogits);
                    if (fused) accumulate_grads(model_->params(), acc_);
                    step_loss += loss / r_.update_freq;
                    epoch_images += n;
                }
                if (fused) {
                    if (world_ > 1) comm_->allreduce_sum(acc_.data(), static_cast<index_t>(acc_.size()));
                    if (acc_.back() > 0) {
                        progress.finish_line();
                        auto last = list_checkpoints(o_.output_dir, cfg_.name);
                        throw collective_error("loss is not finite on " + std::to_string(static_cast<long>(acc_.back())) +
                                               " micro-batch(es) at epoch " + std::to_string(epoch + 1) + ", step " +
                                               std::to_string(s + 1) + " (global step " + std::to_string(st.global_step + 1) +
                                               "); training stopped. The last good checkpoint is " +
                                               (last.empty() ? std::string("(none written yet)") : last.back().second));
                    }
                    grads_from_acc(model_->params(), acc_);
                }
                const double e = static_cast<double>(epoch) + static_cast<double>(s) / static_cast<double>(steps_per_epoch);
                lr = recipe_lr(r_, e);
                opt_->step(lr);
                if (ema_) ema_->update(model_->params(), r_.ema_decay);
                ++st.global_step;
                loss_sum += step_loss;
                ++loss_count;
                double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
                step_seconds_total += dt;
                epoch_step_seconds += dt;
                ++steps_timed;
                images_total += static_cast<index_t>(r_.batch_size) * micro_per_step;
                const double ips = images_total / std::max(step_seconds_total, 1e-9);
                const double remaining_steps = static_cast<double>((r_.epoch_size - epoch - 1) * steps_per_epoch + (steps_per_epoch - s - 1));
                progress.update(static_cast<int>(epoch + 1), r_.epoch_size, static_cast<long>(s + 1), static_cast<long>(steps_per_epoch),
                                loss_sum / static_cast<double>(loss_count), lr, ips,
                                remaining_steps * step_seconds_total / static_cast<double>(steps_timed));
            }
            progress.finish_line();
            if (world_ > 1) {
                double red[2] = {loss_sum, static_cast<double>(epoch_images)};
                comm_->allreduce_sum(red, 2);
                loss_sum = red[0] / world_;
                epoch_images = static_cast<index_t>(red[1]);
            }
            const double epoch_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();
            nlohmann::json row{{"epoch", epoch + 1},
                               {"global_step", st.global_step},
                               {"train_loss", loss_sum / static_cast<double>(std::max<index_t>(loss_count, 1))},
                               {"lr", lr},
                               {"epoch_seconds", epoch_seconds},
                               {"train_images_per_s", epoch_images / std::max(epoch_seconds, 1e-9)},
                               {"data_wait_fraction", data_wait / std::max(epoch_step_seconds, 1e-9)}};  // rank 0's
            if (auto* f = dynamic_cast<const image_folder_dataset*>(train_set_.get())) row["skipped_images"] = f->skipped_count();
            if (val_set_ && (r_.val_interval <= 1 || (epoch + 1) % r_.val_interval == 0 || epoch + 1 == r_.epoch_size)) {
                // The last epoch's evaluation of the weights the summary reports (EMA ones when kept)
                // also runs the flip pass, and the summary reuses it instead of evaluating again.
                const bool last = epoch + 1 == r_.epoch_size;
                eval_result ev = evaluate(*model_, *val_set_, recipe_eval_batch_size(r_), comm_.get(), last && !ema_ && r_.tta_hflip);
                if (last && !ema_) final_eval = ev;
                row["val_loss"] = ev.loss;
                row["val_top1"] = ev.top1;
                row["val_top5"] = ev.top5;
                if (ema_) {
                    ema_->swap_into(model_->params());
                    eval_result ee = evaluate(*model_, *val_set_, recipe_eval_batch_size(r_), comm_.get(), last && r_.tta_hflip);
                    ema_->swap_into(model_->params());
                    if (last) final_eval = ee;
                    row["ema_val_top1"] = ee.top1;
                    row["ema_val_top5"] = ee.top5;
                    row["ema_val_loss"] = ee.loss;
                }
                if (o_.verbose) {
                    char ema_text[48] = "";
                    if (ema_) std::snprintf(ema_text, sizeof ema_text, "  EMA top-1 %.2f%%", row["ema_val_top1"].get<double>());
                    std::fprintf(stderr, "epoch %ld: train loss %.4f  val loss %.4f  top-1 %.2f%%  top-5 %.2f%%%s  data wait %.1f%%  (%.0f s)\n",
                                 (long)(epoch + 1), row["train_loss"].get<double>(), ev.loss, ev.top1, ev.top5, ema_text,
                                 100.0 * row["data_wait_fraction"].get<double>(), epoch_seconds);
                }
            } else if (o_.verbose) {
                std::fprintf(stderr, "epoch %ld: train loss %.4f  data wait %.1f%%  (%.0f s)\n", (long)(epoch + 1),
                             row["train_loss"].get<double>(), 100.0 * row["data_wait_fraction"].get<double>(), epoch_seconds);
            }
            st.history.push_back(row);
            st.epochs_done = epoch + 1;
            // Checkpoint first (atomic), then the human-facing files derived from its history.
            if (rank_ == 0) {
                save_checkpoint(checkpoint_path(o_.output_dir, cfg_.name, st.epochs_done), model_->params(), *opt_, ema_.get(), st);
                prune_checkpoints(o_.output_dir, cfg_.name, r_.keep_checkpoint_max);
                append_jsonl(metrics_path(), row);
                write_plot(st.history);
            }
        }

        sum.model = cfg_.name;
        sum.params_m = model_->num_params() / 1e6;
        sum.batch_size = static_cast<int>(r_.batch_size * micro_per_step);
        sum.resolution = r_.image_resize;
        sum.ms_per_step = steps_timed ? 1000.0 * step_seconds_total / static_cast<double>(steps_timed) : 0;
        sum.images_per_s = step_seconds_total > 0 ? images_total / step_seconds_total : 0;
        sum.epochs_done = st.epochs_done;
        if (final_eval) {
            sum.final_eval = *final_eval;
            sum.final_is_ema = ema_ != nullptr;
        } else if (val_set_) {  // e.g. resumed after the last epoch: nothing evaluated in this run
            if (ema_) ema_->swap_into(model_->params());
            sum.final_eval = evaluate(*model_, *val_set_, recipe_eval_batch_size(r_), comm_.get(), r_.tta_hflip);
            sum.final_is_ema = ema_ != nullptr;
            if (ema_) ema_->swap_into(model_->params());
        }
        sum.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
        return sum;
    }

    std::string metrics_path() const { return (std::filesystem::path(o_.output_dir) / "metrics.jsonl").string(); }

private:
    void load_initial_weights(const std::string& path)
    {
        io::load_options lo;
        lo.skip_head = true;            // a different num_classes re-initialises the head
        lo.allow_missing_head = true;   // FCMAE encoder files have no norm/head
        lo.prefer_ema = true;
        // Fine-tuning rule (SPEC §1.7): the loaded model's head is re-initialised with std 2e-5.
        auto rep = io::load_weights(model_->params(), path, lo);
        bool head_loaded = false;
        for (auto& n : rep.loaded) head_loaded = head_loaded || n.rfind("head.", 0) == 0;
        if (!head_loaded) {
            for (auto& p : model_->params()) {
                if (p.name == "head.weight") {
                    counter_rng rng(static_cast<std::uint64_t>(r_.seed), 0x6865616477ULL);
                    for (auto& v : *p.value) v = static_cast<float>(rng.trunc_normal(2e-5, 2.0));
                }
                if (p.name == "head.bias") p.value->zero();
            }
        }
        if (o_.verbose)
            std::fprintf(stderr, "loaded %zu tensors from %s%s\n", rep.loaded.size(), path.c_str(),
                         head_loaded ? "" : " (head re-initialised, std 2e-5)");
    }

    checkpoint_state resume_from(const std::string& what)
    {
        const std::string path = resume_path(what, o_.output_dir, cfg_.name, *comm_);
        if (path.empty()) {
            if (o_.verbose) std::fprintf(stderr, "resume auto: no checkpoint in %s, starting fresh\n", o_.output_dir.c_str());
            checkpoint_state st;
            st.recipe = to_json(r_);
            return st;
        }
        checkpoint_state st = load_checkpoint(path, model_->params(), *opt_, ema_.get());
        if (o_.verbose)
            std::fprintf(stderr, "resumed from %s: %ld epochs done, step %ld\n", path.c_str(), (long)st.epochs_done,
                         (long)st.global_step);
        st.recipe = to_json(r_);
        return st;
    }

    void rewrite_metrics(const nlohmann::json& history)
    {
        rewrite_jsonl(metrics_path(), history);
        write_plot(history);
    }

    void write_plot(const nlohmann::json& history)
    {
        plot_series train{"train loss", "#1f77b4", {}}, val{"val loss", "#ff7f0e", {}};
        plot_series top1{"val top-1", "#2ca02c", {}}, ema1{"EMA val top-1", "#d62728", {}};
        for (auto& row : history) {
            auto num = [&](const char* k) { return row.contains(k) && row[k].is_number() ? row[k].get<double>() : NAN; };
            train.values.push_back(num("train_loss"));
            val.values.push_back(num("val_loss"));
            top1.values.push_back(num("val_top1"));
            ema1.values.push_back(num("ema_val_top1"));
        }
        std::vector<plot_series> acc{top1};
        if (ema_) acc.push_back(ema1);
        write_text_atomic((std::filesystem::path(o_.output_dir) / "metrics.svg").string(),
                          plot_svg(cfg_.name + " on " + r_.dataset, {train, val}, acc));
    }

    train_options o_;
    std::shared_ptr<communicator> comm_;
    int rank_ = 0, world_ = 1;
    std::vector<float> acc_;
    recipe r_;
    model_config cfg_;
    std::shared_ptr<const dataset> train_set_, val_set_;
    std::unique_ptr<convnextv2_model<float>> model_;
    std::unique_ptr<adamw<float>> opt_;
    std::unique_ptr<model_ema<float>> ema_;
};

inline void print_summary(const train_summary& s, std::FILE* out = stdout)
{
    std::fprintf(out, "\n| model | params (M) | batch size | resolution | ms/step | img/s | acc@top1 | acc@top5 |\n");
    std::fprintf(out, "|---|---:|---:|---:|---:|---:|---:|---:|\n");
    std::fprintf(out, "| %s | %.2f | %d | %d | %.1f | %.1f | %.2f%% | %.2f%% |\n", s.model.c_str(), s.params_m, s.batch_size,
                 s.resolution, s.ms_per_step, s.images_per_s, s.final_eval.top1, s.final_eval.top5);
    std::fprintf(out, "%ld epochs, wall time %s%s\n", (long)s.epochs_done, format_duration(s.wall_seconds).c_str(),
                 s.final_is_ema ? " (accuracy of the EMA weights)" : "");
    if (s.final_eval.has_hflip)
        std::fprintf(out, "with horizontal-flip test-time augmentation (tta_hflip): acc@top1 %.2f%%, acc@top5 %.2f%%, loss %.4f\n",
                     s.final_eval.hflip_top1, s.final_eval.hflip_top5, s.final_eval.hflip_loss);
}

} // namespace convnextv2::train
