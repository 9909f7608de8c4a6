// SPDX-License-Identifier: MIT
// The FCMAE pretraining loop behind `pretrain` (official main_pretrain.py / engine_pretrain.py,
// SPEC §3.9) with the machinery of `train`: recipe, AdamW + warmup-cosine per step, update_freq,
// MPI data parallelism (same batch rule as the trainer), NaN stop, crash-safe checkpoints with
// exact resume, progress line, metrics.jsonl + SVG plot, plus a reconstruction PNG grid and the
// encoder exported in the official dense layout for `train --ckpt_path`.
// Masks are a pure function of (seed, global micro-batch index): a resumed or distributed run
// draws exactly the masks of the uninterrupted single-process run.
#pragma once
#include "pretrain_report.hpp"
#include "run_support.hpp"
#include "trainer.hpp"

#include <convnextv2/fcmae/fcmae.hpp>

namespace convnextv2::train {

struct pretrain_options {
    recipe r;
    std::string config_path;
    std::string output_dir;               // "" -> r.ckpt_save_dir
    std::string resume;                   // "" | "auto" | checkpoint path
    std::int64_t stop_after_epochs = -1;
    bool verbose = true;
    std::shared_ptr<const dataset> train_set, val_set;
    std::shared_ptr<communicator> comm;
};

struct pretrain_summary {
    std::string model, encoder_mode;
    double params_m = 0, encoder_params_m = 0;
    int batch_size = 0, resolution = 0, patch_size = 0;
    double ms_per_step = 0, images_per_s = 0;
    double train_loss = NAN, val_loss = NAN;
    double wall_seconds = 0;
    std::int64_t epochs_done = 0;
    std::string encoder_path, reconstruction_path;
};

inline fcmae_config fcmae_config_of(const recipe& r)
{
    fcmae_config c;
    c.encoder = model_config_of(r);
    c.encoder.drop_path_rate = 0;  // FCMAE builds its encoder without drop path (SPEC §3.4)
    c.decoder_dim = r.decoder_dim;
    c.decoder_depth = r.decoder_depth;
    c.mask_ratio = r.mask_ratio;
    c.norm_pix_loss = r.norm_pix_loss;
    c.encoder_grn = r.sparse_grn == "batch" ? grn_scope::batch : grn_scope::per_sample;
    return c;
}

// Checkpoint / file stem: "fcmae_<model>".
inline std::string pretrain_name(const recipe& r) { return "fcmae_" + model_config_of(r).name; }

// The recipe's pixel normalisation, undone for pictures: ImageFolder uses ImageNet mean/std,
// Fashion-MNIST plain /255.
inline pixel_denorm denorm_of(const recipe& r)
{
    pixel_denorm d;
    if (r.dataset == "imagefolder") {
        d.mean = {imagenet_mean[0], imagenet_mean[1], imagenet_mean[2]};
        d.std = {imagenet_std[0], imagenet_std[1], imagenet_std[2]};
    }
    return d;
}

template <class Mode>
class pretrainer {
public:
    explicit pretrainer(pretrain_options o) : o_(std::move(o)), r_(o_.r)
    {
        comm_ = o_.comm ? o_.comm : local_communicator();
        rank_ = comm_->rank();
        world_ = comm_->size();
        o_.verbose = o_.verbose && rank_ == 0;
        if (o_.output_dir.empty()) o_.output_dir = r_.ckpt_save_dir;
        if (rank_ == 0) prepare_output_dir(o_.output_dir);
        open_datasets(r_, o_.train_set, o_.val_set, train_set_, val_set_);
        const shape_t s = train_set_->sample_shape();
        CONVNEXTV2_CHECK(s.size() == 3 && s[0] == s[1] && s[2] == r_.in_chans, o_.config_path, ": FCMAE needs square images with in_chans = ",
                         r_.in_chans, " channels, the dataset gives ", to_string(s));
        cfg_ = fcmae_config_of(r_);
        CONVNEXTV2_CHECK(s[0] % cfg_.patch_size() == 0 && s[0] / cfg_.patch_size() >= 1, o_.config_path, ": image_resize ", s[0],
                         " must be a multiple of the patch size ", cfg_.patch_size(), " (stem_kernel x 8)");
        model_ = std::make_unique<fcmae_model<float, Mode>>(cfg_, static_cast<std::uint64_t>(r_.seed));
        name_ = pretrain_name(r_);
        if (world_ > 1) {
            check_same_config(*comm_, r_, model_->params(), *train_set_, val_set_.get());
            broadcast_params(model_->params(), *comm_);
        }
        acc_.assign(static_cast<std::size_t>(model_->num_params()) + 1, 0.f);  // + 1: non-finite loss count
        // timm add_weight_decay as in main_pretrain: no decay on 1-D parameters and biases (GRN
        // and the mask token are decayed there; filter_bias_and_bn also spares GRN, see README).
        auto groups = make_param_groups(model_->params(), r_.filter_bias_and_bn);
        adamw_options ao;
        ao.lr = r_.lr;
        ao.beta1 = r_.beta1;
        ao.beta2 = r_.beta2;
        ao.eps = r_.eps;
        ao.weight_decay = r_.weight_decay;
        opt_ = std::make_unique<adamw<float>>(model_->params(), groups, ao);
    }

    fcmae_model<float, Mode>& model() { return *model_; }
    const std::string& output_dir() const { return o_.output_dir; }
    std::string metrics_path() const { return (std::filesystem::path(o_.output_dir) / "metrics.jsonl").string(); }
    std::string encoder_path() const { return (std::filesystem::path(o_.output_dir) / (name_ + "_encoder.safetensors")).string(); }

    pretrain_summary run()
    {
        auto wall0 = std::chrono::steady_clock::now();
        const scoped_matmul_precision precision(recipe_matmul_precision(r_));  // the products of this run
        checkpoint_state st;
        st.recipe = to_json(r_);
        if (!o_.resume.empty()) {
            const std::string path = resume_path(o_.resume, o_.output_dir, name_, *comm_);
            if (path.empty()) {
                if (o_.verbose) std::fprintf(stderr, "resume auto: no checkpoint in %s, starting fresh\n", o_.output_dir.c_str());
            } else {
                st = load_checkpoint(path, model_->params(), *opt_, static_cast<model_ema<float>*>(nullptr));
                st.recipe = to_json(r_);
                if (o_.verbose)
                    std::fprintf(stderr, "resumed from %s: %ld epochs done, step %ld\n", path.c_str(), (long)st.epochs_done, (long)st.global_step);
            }
        }
        if (rank_ == 0) rewrite_metrics(st.history);

        batch_loader_options lo;
        lo.batch_size = r_.batch_size;
        lo.seed = static_cast<std::uint64_t>(r_.seed);
        lo.shuffle = r_.shuffle;
        lo.drop_remainder = r_.drop_remainder;
        lo.train = true;
        batch_loader loader(*train_set_, lo, st.epochs_done);
        const index_t micro_per_step = static_cast<index_t>(r_.update_freq) * world_;
        const index_t steps_per_epoch = loader.num_batches() / micro_per_step;
        CONVNEXTV2_CHECK(steps_per_epoch >= 1, o_.config_path, ": batch_size ", r_.batch_size, " x update_freq ", r_.update_freq, " x ranks ",
                         world_, " is larger than the training set (", train_set_->size(), " samples)");
        const bool fused = micro_per_step > 1;
        const index_t side = train_set_->sample_shape()[0];
        progress_printer progress(r_.log_interval > 0 ? r_.log_interval : static_cast<int>(steps_per_epoch), o_.verbose);
        if (o_.verbose)
            std::fprintf(stderr, "%s (%s encoder): %.2fM parameters, patch %ld, %ld of %ld patches visible, %ld images, %ld steps/epoch, output %s\n",
                         name_.c_str(), r_.encoder_mode.c_str(), model_->num_params() / 1e6, (long)cfg_.patch_size(),
                         (long)fcmae_len_keep((side / cfg_.patch_size()) * (side / cfg_.patch_size()), cfg_.mask_ratio),
                         (long)((side / cfg_.patch_size()) * (side / cfg_.patch_size())), (long)train_set_->size(), (long)steps_per_epoch,
                         o_.output_dir.c_str());

        pretrain_summary sum;
        tensor<float> x;
        std::vector<int> labels;
        double step_seconds = 0;
        index_t images_total = 0;
        std::int64_t steps_timed = 0;
        for (std::int64_t epoch = st.epochs_done; epoch < r_.epoch_size; ++epoch) {
            if (o_.stop_after_epochs >= 0 && epoch >= o_.stop_after_epochs) break;
            loader.set_epoch(epoch);
            // This rank's batches in loop order, prepared in the background (as in the trainer).
            auto prefetch = epoch_prefetcher(loader, steps_per_epoch, r_.update_freq, world_, rank_, r_.prefetch_batches);
            double data_wait = 0;
            auto e0 = std::chrono::steady_clock::now();
            double loss_sum = 0, lr = 0;
            index_t loss_count = 0;
            for (index_t s = 0; s < steps_per_epoch; ++s) {
                auto s0 = std::chrono::steady_clock::now();
                model_->zero_grad();
                if (fused) std::fill(acc_.begin(), acc_.end(), 0.f);
                double step_loss = 0;
                for (int u = 0; u < r_.update_freq; ++u) {
                    const index_t micro = static_cast<index_t>(u) * world_ + rank_;
                    const index_t b = s * micro_per_step + micro;
                    const auto w0 = std::chrono::steady_clock::now();
                    if (prefetch) CONVNEXTV2_CHECK(prefetch->next(x, labels) == b, "pretrainer: prefetched batch out of order");
                    else loader.load(b, x, labels);
                    data_wait += std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
                    if (fused) model_->zero_grad();
                    const std::uint64_t key =
                        static_cast<std::uint64_t>(st.global_step) * static_cast<std::uint64_t>(micro_per_step) + static_cast<std::uint64_t>(micro);
                    const fcmae_mask mask = model_->make_mask(x.dim(0), side, static_cast<std::uint64_t>(r_.seed), key);
                    const double loss = model_->forward(x, mask);
                    if (!std::isfinite(loss)) {
                        if (world_ > 1) { acc_.back() += 1; continue; }
                        progress.finish_line();
                        throw error(non_finite_message(loss, epoch, s, st.global_step));
                    }
                    model_->backward(1.0 / static_cast<double>(micro_per_step));
                    if (fused) accumulate_grads(model_->params(), acc_);
                    step_loss += loss / r_.update_freq;
                }
                if (fused) {
                    if (world_ > 1) comm_->allreduce_sum(acc_.data(), static_cast<index_t>(acc_.size()));
                    if (acc_.back() > 0) {
                        progress.finish_line();
                        throw collective_error(non_finite_message(NAN, epoch, s, st.global_step));
                    }
                    grads_from_acc(model_->params(), acc_);
                }
                lr = recipe_lr(r_, static_cast<double>(epoch) + static_cast<double>(s) / static_cast<double>(steps_per_epoch));
                opt_->step(lr);
                ++st.global_step;
                loss_sum += step_loss;
                ++loss_count;
                step_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
                ++steps_timed;
                images_total += static_cast<index_t>(r_.batch_size) * micro_per_step;
                const double remaining = static_cast<double>((r_.epoch_size - epoch - 1) * steps_per_epoch + (steps_per_epoch - s - 1));
                progress.update(static_cast<int>(epoch + 1), r_.epoch_size, static_cast<long>(s + 1), static_cast<long>(steps_per_epoch),
                                loss_sum / static_cast<double>(loss_count), lr, images_total / std::max(step_seconds, 1e-9),
                                remaining * step_seconds / static_cast<double>(steps_timed));
            }
            progress.finish_line();
            if (world_ > 1) {
                comm_->allreduce_sum(&loss_sum, 1);
                loss_sum /= world_;
            }
            const double epoch_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();
            nlohmann::json row{{"epoch", epoch + 1},
                               {"global_step", st.global_step},
                               {"train_loss", loss_sum / static_cast<double>(std::max<index_t>(loss_count, 1))},
                               {"lr", lr},
                               {"epoch_seconds", epoch_seconds},
                               {"data_wait_fraction", data_wait / std::max(epoch_seconds, 1e-9)},  // rank 0's
                               {"train_images_per_s", static_cast<double>(steps_per_epoch * r_.batch_size * micro_per_step) /
                                                          std::max(epoch_seconds, 1e-9)}};
            if (val_set_ && (r_.val_interval <= 1 || (epoch + 1) % r_.val_interval == 0 || epoch + 1 == r_.epoch_size)) {
                row["val_loss"] = validation_loss();
                if (o_.verbose)
                    std::fprintf(stderr, "epoch %ld: train loss %.4f  val loss %.4f  (%.0f s)\n", (long)(epoch + 1),
                                 row["train_loss"].get<double>(), row["val_loss"].get<double>(), epoch_seconds);
            }
            st.history.push_back(row);
            st.epochs_done = epoch + 1;
            if (rank_ == 0) {
                save_checkpoint(checkpoint_path(o_.output_dir, name_, st.epochs_done), model_->params(), *opt_,
                                static_cast<const model_ema<float>*>(nullptr), st);
                prune_checkpoints(o_.output_dir, name_, r_.keep_checkpoint_max);
                append_jsonl(metrics_path(), row);
                write_plot(st.history);
                if (r_.recon_interval > 0 && st.epochs_done % r_.recon_interval == 0)
                    write_reconstructions(reconstruction_path(st.epochs_done));
            }
        }

        if (rank_ == 0) {
            io::save_weights(model_->encoder_params(), encoder_path(),
                             {{"format", "convnextv2-cpp/fcmae-encoder-v1"}, {"epochs_done", std::to_string(st.epochs_done)}});
            sum.encoder_path = encoder_path();
            if (r_.recon_images > 0) {
                sum.reconstruction_path = (std::filesystem::path(o_.output_dir) / "reconstruction.png").string();
                write_reconstructions(sum.reconstruction_path);
            }
        }
        sum.model = name_;
        sum.encoder_mode = r_.encoder_mode;
        sum.params_m = model_->num_params() / 1e6;
        index_t enc = 0;
        for (auto& p : model_->encoder_params()) enc += p.value->size();
        sum.encoder_params_m = enc / 1e6;
        sum.batch_size = static_cast<int>(r_.batch_size * micro_per_step);
        sum.resolution = static_cast<int>(side);
        sum.patch_size = static_cast<int>(cfg_.patch_size());
        sum.ms_per_step = steps_timed ? 1000.0 * step_seconds / static_cast<double>(steps_timed) : 0;
        sum.images_per_s = step_seconds > 0 ? images_total / step_seconds : 0;
        if (!st.history.empty()) {
            sum.train_loss = st.history.back().value("train_loss", NAN);
            if (st.history.back().contains("val_loss")) sum.val_loss = st.history.back()["val_loss"].get<double>();
        }
        sum.epochs_done = st.epochs_done;
        sum.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
        return sum;
    }

    // Masked-patch loss over the validation set with fixed masks (key per batch), reduced over
    // ranks in batch order, so it equals the single-process number.
    double validation_loss()
    {
        batch_loader_options lo;
        lo.batch_size = recipe_eval_batch_size(r_);
        lo.shuffle = false;
        lo.drop_remainder = false;
        lo.train = false;
        batch_loader loader(*val_set_, lo, 0);
        std::vector<double> part(static_cast<std::size_t>(loader.num_batches() * 2), 0.0);
        tensor<float> x;
        std::vector<int> labels;
        const index_t side = val_set_->sample_shape()[0];
        for (index_t b = rank_; b < loader.num_batches(); b += world_) {
            loader.load(b, x, labels);
            const fcmae_mask m = model_->make_mask(x.dim(0), side, static_cast<std::uint64_t>(r_.seed), val_key + static_cast<std::uint64_t>(b));
            part[static_cast<std::size_t>(2 * b)] = model_->forward(x, m) * static_cast<double>(m.masked_total());
            part[static_cast<std::size_t>(2 * b + 1)] = static_cast<double>(m.masked_total());
        }
        if (world_ > 1) comm_->allreduce_sum(part.data(), static_cast<index_t>(part.size()));
        double s = 0, n = 0;
        for (std::size_t i = 0; i < part.size(); i += 2) { s += part[i]; n += part[i + 1]; }
        return n > 0 ? s / n : NAN;
    }

    // Original | masked input | reconstruction | reconstruction with the visible patches pasted,
    // one row per image: the first recon_images of the validation (else training) set, eval
    // transform, a fixed mask.
    void write_reconstructions(const std::string& path)
    {
        const dataset& ds = val_set_ ? *val_set_ : *train_set_;
        const index_t n = std::min<index_t>(r_.recon_images, ds.size());
        if (n <= 0) return;
        const shape_t s = ds.sample_shape();
        tensor<float> x({n, s[0], s[1], s[2]}), rec, rec_paste;
        for (index_t i = 0; i < n; ++i) {
            int label = 0;
            ds.get(i, 0, false, x.data() + i * s[0] * s[1] * s[2], &label);
        }
        const fcmae_mask m = model_->make_mask(n, s[0], static_cast<std::uint64_t>(r_.seed), recon_key);
        model_->forward(x, m);
        model_->reconstruction(x, rec, false);
        model_->reconstruction(x, rec_paste, true);
        write_reconstruction_grid(path, x, m, cfg_.patch_size(), rec, rec_paste, denorm_of(r_));
    }

    std::string reconstruction_path(std::int64_t epoch) const
    {
        return (std::filesystem::path(o_.output_dir) / ("reconstruction-epoch" + std::to_string(epoch) + ".png")).string();
    }

private:
    static constexpr std::uint64_t val_key = 0x76616c0000000000ULL;    // "val": disjoint from training keys
    static constexpr std::uint64_t recon_key = 0x7265630000000000ULL;  // "rec"

    std::string non_finite_message(double loss, std::int64_t epoch, index_t s, std::int64_t global_step) const
    {
        auto last = list_checkpoints(o_.output_dir, name_);
        return "loss is " + std::to_string(loss) + " at epoch " + std::to_string(epoch + 1) + ", step " + std::to_string(s + 1) +
               " (global step " + std::to_string(global_step + 1) + "); pretraining stopped. The last good checkpoint is " +
               (last.empty() ? std::string("(none written yet)") : last.back().second);
    }

    void rewrite_metrics(const nlohmann::json& history)
    {
        rewrite_jsonl(metrics_path(), history);
        write_plot(history);
    }

    void write_plot(const nlohmann::json& history)
    {
        plot_series train{"train loss", "#1f77b4", {}}, val{"val loss", "#ff7f0e", {}}, lr{"learning rate", "#2ca02c", {}};
        for (auto& row : history) {
            auto num = [&](const char* k) { return row.contains(k) ? row[k].get<double>() : NAN; };
            train.values.push_back(num("train_loss"));
            val.values.push_back(num("val_loss"));
            lr.values.push_back(num("lr"));
        }
        write_text_atomic((std::filesystem::path(o_.output_dir) / "metrics.svg").string(),
                          plot_svg(name_ + " FCMAE on " + r_.dataset + " (masked-patch loss)", {train, val}, {lr}, "learning rate (end of epoch)"));
    }

    pretrain_options o_;
    recipe r_;
    std::shared_ptr<communicator> comm_;
    int rank_ = 0, world_ = 1;
    fcmae_config cfg_;
    std::string name_;
    std::shared_ptr<const dataset> train_set_, val_set_;
    std::unique_ptr<fcmae_model<float, Mode>> model_;
    std::unique_ptr<adamw<float>> opt_;
    std::vector<float> acc_;
};

// Runs the pretraining in the recipe's encoder_mode (sparse or the dense-masked emulation).
inline pretrain_summary run_pretrain(const pretrain_options& o)
{
    if (o.r.encoder_mode == "dense_masked") return pretrainer<masked_sites>(o).run();
    return pretrainer<sparse_sites>(o).run();
}

inline void print_pretrain_summary(const pretrain_summary& s, std::FILE* out = stdout)
{
    std::fprintf(out, "\n| model | encoder | params (M) | encoder (M) | batch size | resolution | patch | ms/step | img/s | train loss | val loss |\n");
    std::fprintf(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    std::fprintf(out, "| %s | %s | %.2f | %.2f | %d | %d | %d | %.1f | %.1f | %.4f | %.4f |\n", s.model.c_str(), s.encoder_mode.c_str(),
                 s.params_m, s.encoder_params_m, s.batch_size, s.resolution, s.patch_size, s.ms_per_step, s.images_per_s, s.train_loss,
                 s.val_loss);
    std::fprintf(out, "%ld epochs, wall time %s\n", (long)s.epochs_done, format_duration(s.wall_seconds).c_str());
    if (!s.encoder_path.empty()) std::fprintf(out, "encoder (official dense names, for train --ckpt_path): %s\n", s.encoder_path.c_str());
    if (!s.reconstruction_path.empty()) std::fprintf(out, "reconstructions: %s\n", s.reconstruction_path.c_str());
}

} // namespace convnextv2::train
